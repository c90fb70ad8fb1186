//! ESMTP parameters of MAIL FROM and RCPT TO, typed.
//!
//! ```text
//! Mail-parameters = esmtp-param *(SP esmtp-param)          ; RFC 5321 §4.1.2
//! Rcpt-parameters = esmtp-param *(SP esmtp-param)
//! esmtp-param     = esmtp-keyword ["=" esmtp-value]
//! esmtp-keyword   = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
//! esmtp-value     = 1*(%d33-60 / %d62-126)                  ; =/ UTF8-non-ascii (RFC 6531)
//! ```
//!
//! Known keywords are decoded into typed fields; unknown ones are kept, in
//! order, as keyword/value pairs so a server can answer `555` for them and a
//! proxy can pass them through. A keyword given twice (in any case) and a
//! malformed value of a known keyword are errors.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::error::SyntaxError;
use crate::grammar::{ESMTP_VALUE, KEYWORD, all_in};
use crate::reply::push_u64;

/// `BODY=` (RFC 6152, RFC 3030).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Body {
    /// `7BIT`
    SevenBit,
    /// `8BITMIME`
    EightBitMime,
    /// `BINARYMIME` (requires BDAT).
    BinaryMime,
}

impl Body {
    /// The keyword value as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Body::SevenBit => "7BIT",
            Body::EightBitMime => "8BITMIME",
            Body::BinaryMime => "BINARYMIME",
        }
    }

    /// Parses the keyword value, case-insensitively.
    pub fn from_keyword(value: &str) -> Option<Body> {
        [Body::SevenBit, Body::EightBitMime, Body::BinaryMime]
            .into_iter()
            .find(|b| b.as_str().eq_ignore_ascii_case(value))
    }
}

/// `RET=` (RFC 3461 §4.3): how much of the message a DSN returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ret {
    /// `FULL`: the whole message.
    Full,
    /// `HDRS`: only the headers.
    Headers,
}

impl Ret {
    /// The keyword value as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Headers => "HDRS",
        }
    }

    /// Parses the keyword value, case-insensitively.
    pub fn from_keyword(value: &str) -> Option<Ret> {
        [Ret::Full, Ret::Headers]
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(value))
    }
}

/// `NOTIFY=` (RFC 3461 §4.1): when to send a DSN for a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Notify {
    /// `NEVER`
    Never,
    /// A non-empty combination of `SUCCESS`, `FAILURE` and `DELAY`.
    On {
        /// `SUCCESS`
        success: bool,
        /// `FAILURE`
        failure: bool,
        /// `DELAY`
        delay: bool,
    },
}

impl Notify {
    /// Parses the keyword value: `NEVER`, or a comma-separated list of
    /// `SUCCESS`, `FAILURE` and `DELAY`, each at most once
    /// (case-insensitive).
    pub fn from_keyword(value: &str) -> Option<Notify> {
        notify_value(value).ok()
    }
}

/// The value of `NOTIFY=`, or why it is malformed.
fn notify_value(v: &str) -> Result<Notify, &'static str> {
    if v.eq_ignore_ascii_case("NEVER") {
        return Ok(Notify::Never);
    }
    let (mut success, mut failure, mut delay) = (false, false, false);
    for word in v.as_bytes().split(|&b| b == b',') {
        let slot = if word.eq_ignore_ascii_case(b"SUCCESS") {
            &mut success
        } else if word.eq_ignore_ascii_case(b"FAILURE") {
            &mut failure
        } else if word.eq_ignore_ascii_case(b"DELAY") {
            &mut delay
        } else {
            return Err("expected NEVER or a list of SUCCESS, FAILURE, DELAY");
        };
        if *slot {
            return Err("keyword repeated");
        }
        *slot = true;
    }
    Ok(Notify::On {
        success,
        failure,
        delay,
    })
}

impl std::fmt::Display for Notify {
    /// The keyword value as sent on the wire (`NEVER`, `SUCCESS,DELAY`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Notify::Never => f.write_str("NEVER"),
            Notify::On {
                success,
                failure,
                delay,
            } => {
                let mut first = true;
                for (on, word) in [(success, "SUCCESS"), (failure, "FAILURE"), (delay, "DELAY")] {
                    if on {
                        if !first {
                            f.write_str(",")?;
                        }
                        f.write_str(word)?;
                        first = false;
                    }
                }
                Ok(())
            }
        }
    }
}

/// `ORCPT=addr-type;xtext` (RFC 3461 §4.2): the original recipient.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Orcpt<'a> {
    /// The address type, usually `rfc822`.
    pub addr_type: Cow<'a, str>,
    /// The decoded address.
    pub address: Cow<'a, str>,
}

/// A parameter this grammar has no type for, kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnknownParam<'a> {
    /// The keyword, in the case the client sent.
    pub keyword: Cow<'a, str>,
    /// The value, when `=` was given.
    pub value: Option<Cow<'a, str>>,
}

/// The parameters of MAIL FROM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MailParams<'a> {
    /// `SIZE=n` (RFC 1870): the declared message size in octets.
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152, RFC 3030).
    pub body: Option<Body>,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `RET=` (RFC 3461).
    pub ret: Option<Ret>,
    /// `ENVID=` (RFC 3461), xtext-decoded.
    pub envid: Option<Cow<'a, str>>,
    /// `AUTH=` (RFC 4954 §5), xtext-decoded: `<>` or a mailbox.
    pub auth: Option<Cow<'a, str>>,
    /// `REQUIRETLS` (RFC 8689).
    pub requiretls: bool,
    /// `MT-PRIORITY=` (RFC 6710), -9 to 9.
    pub mt_priority: Option<i8>,
    /// Parameters without a typed field, in order.
    pub unknown: Vec<UnknownParam<'a>>,
}

/// The parameters of RCPT TO.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RcptParams<'a> {
    /// `NOTIFY=` (RFC 3461).
    pub notify: Option<Notify>,
    /// `ORCPT=` (RFC 3461).
    pub orcpt: Option<Orcpt<'a>>,
    /// Parameters without a typed field, in order.
    pub unknown: Vec<UnknownParam<'a>>,
}

impl MailParams<'_> {
    /// True when no parameter is set.
    pub fn is_empty(&self) -> bool {
        *self == MailParams::default()
    }

    /// Converts borrowed text into owned text.
    pub fn into_owned(self) -> MailParams<'static> {
        MailParams {
            size: self.size,
            body: self.body,
            smtputf8: self.smtputf8,
            ret: self.ret,
            envid: self.envid.map(owned),
            auth: self.auth.map(owned),
            requiretls: self.requiretls,
            mt_priority: self.mt_priority,
            unknown: self
                .unknown
                .into_iter()
                .map(UnknownParam::into_owned)
                .collect(),
        }
    }

    /// Appends ` KEY=VALUE` for every parameter set.
    pub fn encode(&self, out: &mut Vec<u8>) {
        if let Some(size) = self.size {
            out.extend_from_slice(b" SIZE=");
            push_u64(out, size);
        }
        if let Some(body) = self.body {
            out.extend_from_slice(b" BODY=");
            out.extend_from_slice(body.as_str().as_bytes());
        }
        if self.smtputf8 {
            out.extend_from_slice(b" SMTPUTF8");
        }
        if let Some(ret) = self.ret {
            out.extend_from_slice(b" RET=");
            out.extend_from_slice(ret.as_str().as_bytes());
        }
        if let Some(envid) = &self.envid {
            out.extend_from_slice(b" ENVID=");
            xtext_encode(envid, out);
        }
        if let Some(auth) = &self.auth {
            out.extend_from_slice(b" AUTH=");
            xtext_encode(auth, out);
        }
        if self.requiretls {
            out.extend_from_slice(b" REQUIRETLS");
        }
        if let Some(p) = self.mt_priority {
            let _ = write!(VecWriter(out), " MT-PRIORITY={p}");
        }
        encode_unknown(&self.unknown, out);
    }
}

impl RcptParams<'_> {
    /// True when no parameter is set.
    pub fn is_empty(&self) -> bool {
        *self == RcptParams::default()
    }

    /// Converts borrowed text into owned text.
    pub fn into_owned(self) -> RcptParams<'static> {
        RcptParams {
            notify: self.notify,
            orcpt: self.orcpt.map(|o| Orcpt {
                addr_type: owned(o.addr_type),
                address: owned(o.address),
            }),
            unknown: self
                .unknown
                .into_iter()
                .map(UnknownParam::into_owned)
                .collect(),
        }
    }

    /// Appends ` KEY=VALUE` for every parameter set.
    pub fn encode(&self, out: &mut Vec<u8>) {
        if let Some(notify) = self.notify {
            out.extend_from_slice(b" NOTIFY=");
            out.extend_from_slice(notify.to_string().as_bytes());
        }
        if let Some(orcpt) = &self.orcpt {
            out.extend_from_slice(b" ORCPT=");
            out.extend_from_slice(orcpt.addr_type.as_bytes());
            out.push(b';');
            xtext_encode(&orcpt.address, out);
        }
        encode_unknown(&self.unknown, out);
    }
}

impl UnknownParam<'_> {
    fn into_owned(self) -> UnknownParam<'static> {
        UnknownParam {
            keyword: owned(self.keyword),
            value: self.value.map(owned),
        }
    }
}

fn owned(c: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(c.into_owned())
}

fn encode_unknown(unknown: &[UnknownParam<'_>], out: &mut Vec<u8>) {
    for p in unknown {
        out.push(b' ');
        out.extend_from_slice(p.keyword.as_bytes());
        if let Some(v) = &p.value {
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
        }
    }
}

struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Splits `SP esmtp-param *(SP esmtp-param)` into keyword/value pairs,
/// validating the generic syntax. `rest` is what follows the path.
struct SplitParams<'a> {
    rest: Option<&'a str>,
}

fn split_params(rest: &str) -> SplitParams<'_> {
    SplitParams {
        rest: (!rest.is_empty()).then_some(rest),
    }
}

impl<'a> Iterator for SplitParams<'a> {
    type Item = Result<(&'a str, Option<&'a str>), SyntaxError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest.take()?;
        let b = rest.as_bytes();
        if b[0] != b' ' {
            return Some(Err(SyntaxError::Syntax("expected SP before parameters")));
        }
        // One pass: keyword characters, then optionally "=" and value
        // characters, then SP or the end of the line.
        let class_run = |from: usize, class: &[bool; 256]| {
            from + b[from..]
                .iter()
                .position(|&c| !class[usize::from(c)])
                .unwrap_or(b.len() - from)
        };
        let mut i = class_run(1, &KEYWORD);
        if i == 1 || b[1] == b'-' {
            return Some(Err(SyntaxError::Syntax(
                "malformed ESMTP parameter keyword",
            )));
        }
        let keyword = &rest[1..i];
        let mut value = None;
        if b.get(i) == Some(&b'=') {
            let start = i + 1;
            i = class_run(start, &ESMTP_VALUE);
            if i == start {
                return Some(Err(SyntaxError::Syntax("malformed ESMTP parameter value")));
            }
            value = Some(&rest[start..i]);
        }
        match b.get(i) {
            None => {}
            Some(b' ') => self.rest = Some(&rest[i..]),
            Some(b'=') => {
                return Some(Err(SyntaxError::Syntax("malformed ESMTP parameter value")));
            }
            Some(_) => {
                return Some(Err(SyntaxError::Syntax(if value.is_some() {
                    "malformed ESMTP parameter value"
                } else {
                    "malformed ESMTP parameter keyword"
                })));
            }
        }
        Some(Ok((keyword, value)))
    }
}

fn check_unknown_duplicate(unknown: &[UnknownParam<'_>], keyword: &str) -> Result<(), SyntaxError> {
    if unknown
        .iter()
        .any(|p| p.keyword.eq_ignore_ascii_case(keyword))
    {
        Err(SyntaxError::DuplicateParameter(
            keyword.to_ascii_uppercase().into(),
        ))
    } else {
        Ok(())
    }
}

fn set<T>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), SyntaxError> {
    if slot.is_some() {
        return Err(SyntaxError::DuplicateParameter(name.into()));
    }
    *slot = Some(value);
    Ok(())
}

fn set_flag(slot: &mut bool, name: &'static str, value: Option<&str>) -> Result<(), SyntaxError> {
    if value.is_some() {
        return Err(SyntaxError::InvalidParameter {
            name,
            reason: "takes no value",
        });
    }
    if *slot {
        return Err(SyntaxError::DuplicateParameter(name.into()));
    }
    *slot = true;
    Ok(())
}

fn need<'v>(name: &'static str, value: Option<&'v str>) -> Result<&'v str, SyntaxError> {
    value.ok_or(SyntaxError::InvalidParameter {
        name,
        reason: "needs a value",
    })
}

fn bad(name: &'static str, reason: &'static str) -> SyntaxError {
    SyntaxError::InvalidParameter { name, reason }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MailKeyword {
    Size,
    Body,
    Smtputf8,
    Requiretls,
    Ret,
    Envid,
    Auth,
    MtPriority,
}

/// Classifies a MAIL keyword by length first, so an unknown keyword costs
/// at most one case-insensitive comparison.
#[inline]
fn mail_keyword(k: &str) -> Option<MailKeyword> {
    let (name, kw) = match k.len() {
        3 => ("RET", MailKeyword::Ret),
        4 if k.as_bytes()[0] | 0x20 == b's' => ("SIZE", MailKeyword::Size),
        4 if k.as_bytes()[0] | 0x20 == b'b' => ("BODY", MailKeyword::Body),
        4 => ("AUTH", MailKeyword::Auth),
        5 => ("ENVID", MailKeyword::Envid),
        8 => ("SMTPUTF8", MailKeyword::Smtputf8),
        10 => ("REQUIRETLS", MailKeyword::Requiretls),
        11 => ("MT-PRIORITY", MailKeyword::MtPriority),
        _ => return None,
    };
    k.eq_ignore_ascii_case(name).then_some(kw)
}

/// Parses what follows `MAIL FROM:<path>`.
#[inline]
pub(crate) fn parse_mail_params(rest: &str) -> Result<MailParams<'_>, SyntaxError> {
    let mut p = MailParams::default();
    for item in split_params(rest) {
        let (k, v) = item?;
        let known = mail_keyword(k);
        if known == Some(MailKeyword::Size) {
            let v = need("SIZE", v)?;
            if v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("SIZE", "not a number"));
            }
            let n = v.parse().map_err(|_| bad("SIZE", "number too large"))?;
            set(&mut p.size, "SIZE", n)?;
        } else if known == Some(MailKeyword::Body) {
            let v = need("BODY", v)?;
            let body = Body::from_keyword(v)
                .ok_or_else(|| bad("BODY", "expected 7BIT, 8BITMIME or BINARYMIME"))?;
            set(&mut p.body, "BODY", body)?;
        } else if known == Some(MailKeyword::Smtputf8) {
            set_flag(&mut p.smtputf8, "SMTPUTF8", v)?;
        } else if known == Some(MailKeyword::Requiretls) {
            set_flag(&mut p.requiretls, "REQUIRETLS", v)?;
        } else if known == Some(MailKeyword::Ret) {
            let v = need("RET", v)?;
            let ret = Ret::from_keyword(v).ok_or_else(|| bad("RET", "expected FULL or HDRS"))?;
            set(&mut p.ret, "RET", ret)?;
        } else if known == Some(MailKeyword::Envid) {
            let v = need("ENVID", v)?;
            if v.len() > 100 {
                return Err(bad("ENVID", "longer than 100 characters"));
            }
            let decoded = xtext_decode(v).map_err(|why| bad("ENVID", why))?;
            set(&mut p.envid, "ENVID", decoded)?;
        } else if known == Some(MailKeyword::Auth) {
            let v = need("AUTH", v)?;
            let decoded = xtext_decode(v).map_err(|why| bad("AUTH", why))?;
            if decoded != "<>" && crate::address::Mailbox::parse(&decoded).is_err() {
                return Err(bad("AUTH", "expected <> or a mailbox"));
            }
            set(&mut p.auth, "AUTH", decoded)?;
        } else if known == Some(MailKeyword::MtPriority) {
            let v = need("MT-PRIORITY", v)?;
            let prio = match v.as_bytes() {
                [b'0'] => 0,
                [d @ b'1'..=b'9'] => (d - b'0') as i8,
                [b'-', d @ b'1'..=b'9'] => -((d - b'0') as i8),
                _ => return Err(bad("MT-PRIORITY", "expected an integer from -9 to 9")),
            };
            set(&mut p.mt_priority, "MT-PRIORITY", prio)?;
        } else {
            check_unknown_duplicate(&p.unknown, k)?;
            p.unknown.push(UnknownParam {
                keyword: Cow::Borrowed(k),
                value: v.map(Cow::Borrowed),
            });
        }
    }
    Ok(p)
}

/// Parses what follows `RCPT TO:<path>`.
#[inline]
pub(crate) fn parse_rcpt_params(rest: &str) -> Result<RcptParams<'_>, SyntaxError> {
    let mut p = RcptParams::default();
    for item in split_params(rest) {
        let (k, v) = item?;
        if k.eq_ignore_ascii_case("NOTIFY") {
            let v = need("NOTIFY", v)?;
            let notify = notify_value(v).map_err(|why| bad("NOTIFY", why))?;
            set(&mut p.notify, "NOTIFY", notify)?;
        } else if k.eq_ignore_ascii_case("ORCPT") {
            let v = need("ORCPT", v)?;
            let semi = v
                .bytes()
                .position(|b| b == b';')
                .ok_or(bad("ORCPT", "expected addr-type;address"))?;
            let (addr_type, xtext) = (&v[..semi], &v[semi + 1..]);
            if addr_type.is_empty() || !all_in(addr_type, &KEYWORD) {
                return Err(bad("ORCPT", "malformed address type"));
            }
            let address = xtext_decode(xtext).map_err(|why| bad("ORCPT", why))?;
            if address.is_empty() {
                return Err(bad("ORCPT", "empty address"));
            }
            set(
                &mut p.orcpt,
                "ORCPT",
                Orcpt {
                    addr_type: Cow::Borrowed(addr_type),
                    address,
                },
            )?;
        } else {
            check_unknown_duplicate(&p.unknown, k)?;
            p.unknown.push(UnknownParam {
                keyword: Cow::Borrowed(k),
                value: v.map(Cow::Borrowed),
            });
        }
    }
    Ok(p)
}

/// Decodes xtext (RFC 3461 §4):
///
/// ```text
/// xtext   = *( xchar / hexchar )
/// xchar   = any ASCII CHAR between "!" (33) and "~" (126) inclusive, except "+" and "="
/// hexchar = "+" 2(%x30-39 / %x41-46)    ; upper-case hex only
/// ```
/// Borrows when nothing is escaped. The decoded octets must be UTF-8.
pub fn xtext_decode(s: &str) -> Result<Cow<'_, str>, &'static str> {
    let mut escaped = false;
    for b in s.bytes() {
        if !(b'!'..=b'~').contains(&b) || b == b'=' {
            return Err("invalid character in xtext");
        }
        escaped |= b == b'+';
    }
    if !escaped {
        return Ok(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'+' {
            let hex = |c: u8| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            };
            let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) else {
                return Err("'+' in xtext not followed by two upper-case hex digits");
            };
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| "xtext does not decode to UTF-8")
}

/// Encodes `s` as xtext: `+`, `=`, controls, SP and non-ASCII octets become `+HH`.
pub fn xtext_encode(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'+', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_mail_parameters() {
        let p = parse_mail_params(
            " SIZE=1024 body=8bitmime SMTPUTF8 RET=HDRS ENVID=QQ+2B1 AUTH=<> REQUIRETLS MT-PRIORITY=-3 X-FOO=bar XBARE",
        )
        .unwrap();
        assert_eq!(p.size, Some(1024));
        assert_eq!(p.body, Some(Body::EightBitMime));
        assert!(p.smtputf8 && p.requiretls);
        assert_eq!(p.ret, Some(Ret::Headers));
        assert_eq!(p.envid.as_deref(), Some("QQ+1"));
        assert_eq!(p.auth.as_deref(), Some("<>"));
        assert_eq!(p.mt_priority, Some(-3));
        assert_eq!(p.unknown.len(), 2);
        assert_eq!(p.unknown[0].keyword, "X-FOO");
        assert_eq!(p.unknown[1].value, None);
        let mut wire = Vec::new();
        p.encode(&mut wire);
        assert_eq!(
            parse_mail_params(std::str::from_utf8(&wire).unwrap()).unwrap(),
            p
        );
    }

    #[test]
    fn malformed_and_duplicate_mail_parameters() {
        let cases: &[(&str, SyntaxError)] = &[
            (" SIZE=abc", bad("SIZE", "not a number")),
            (
                " SIZE=99999999999999999999",
                bad("SIZE", "number too large"),
            ),
            (" SIZE", bad("SIZE", "needs a value")),
            (
                " SIZE=1 size=2",
                SyntaxError::DuplicateParameter("SIZE".into()),
            ),
            (
                " BODY=9BIT",
                bad("BODY", "expected 7BIT, 8BITMIME or BINARYMIME"),
            ),
            (" SMTPUTF8=yes", bad("SMTPUTF8", "takes no value")),
            (
                " SMTPUTF8 SMTPUTF8",
                SyntaxError::DuplicateParameter("SMTPUTF8".into()),
            ),
            (" RET=ALL", bad("RET", "expected FULL or HDRS")),
            (
                " ENVID=a+2x",
                bad(
                    "ENVID",
                    "'+' in xtext not followed by two upper-case hex digits",
                ),
            ),
            (" AUTH=nobody", bad("AUTH", "expected <> or a mailbox")),
            (
                " MT-PRIORITY=+3",
                bad("MT-PRIORITY", "expected an integer from -9 to 9"),
            ),
            (
                " MT-PRIORITY=-0",
                bad("MT-PRIORITY", "expected an integer from -9 to 9"),
            ),
            (
                " X-A=1 x-a=2",
                SyntaxError::DuplicateParameter("X-A".into()),
            ),
            (
                "  SIZE=1",
                SyntaxError::Syntax("malformed ESMTP parameter keyword"),
            ),
            (
                " SIZE=1 ",
                SyntaxError::Syntax("malformed ESMTP parameter keyword"),
            ),
            (
                "SIZE=1",
                SyntaxError::Syntax("expected SP before parameters"),
            ),
            (
                " X=",
                SyntaxError::Syntax("malformed ESMTP parameter value"),
            ),
            (
                " -X=1",
                SyntaxError::Syntax("malformed ESMTP parameter keyword"),
            ),
            (
                " X\u{e9}=1",
                SyntaxError::Syntax("malformed ESMTP parameter keyword"),
            ),
            (
                " X=a=b",
                SyntaxError::Syntax("malformed ESMTP parameter value"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_mail_params(input).as_ref(), Err(want), "{input:?}");
        }
    }

    #[test]
    fn typed_rcpt_parameters() {
        let p = parse_rcpt_params(" NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a+2Bb@example.com").unwrap();
        assert_eq!(
            p.notify,
            Some(Notify::On {
                success: true,
                failure: false,
                delay: true
            })
        );
        let orcpt = p.orcpt.as_ref().unwrap();
        assert_eq!(orcpt.addr_type, "rfc822");
        assert_eq!(orcpt.address, "a+b@example.com");
        let mut wire = Vec::new();
        p.encode(&mut wire);
        assert_eq!(
            wire,
            b" NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a+2Bb@example.com"
        );
        assert_eq!(
            parse_rcpt_params(" NOTIFY=never").unwrap().notify,
            Some(Notify::Never)
        );
        assert!(parse_rcpt_params(" NOTIFY=NEVER,SUCCESS").is_err());
        assert!(parse_rcpt_params(" NOTIFY=FAILURE,FAILURE").is_err());
        assert!(parse_rcpt_params(" ORCPT=rfc822").is_err());
        assert!(parse_rcpt_params(" ORCPT=rfc822;").is_err());
    }

    #[test]
    fn xtext_round_trip_and_strictness() {
        let mut out = Vec::new();
        xtext_encode("a+b=c d\u{e9}", &mut out);
        assert_eq!(out, b"a+2Bb+3Dc+20d+C3+A9");
        assert_eq!(
            xtext_decode(std::str::from_utf8(&out).unwrap()).unwrap(),
            "a+b=c d\u{e9}"
        );
        assert_eq!(
            xtext_decode("a+2b"),
            Err("'+' in xtext not followed by two upper-case hex digits")
        );
        assert_eq!(xtext_decode("+FF"), Err("xtext does not decode to UTF-8"));
        assert_eq!(xtext_decode("a b"), Err("invalid character in xtext"));
        assert!(matches!(xtext_decode("plain"), Ok(Cow::Borrowed("plain"))));
    }
}
