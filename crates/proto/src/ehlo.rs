//! The EHLO reply: the server's name, greeting and typed capability set.
//!
//! ```text
//! ehlo-ok-rsp = ( "250" SP Domain [ SP ehlo-greet ] CRLF )
//!             / ( "250-" Domain [ SP ehlo-greet ] CRLF
//!                 *( "250-" ehlo-line CRLF )
//!                 "250" SP ehlo-line CRLF )                  ; RFC 5321 §4.1.1.1
//! ehlo-line   = ehlo-keyword *( SP ehlo-param )
//! ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
//! ehlo-param  = 1*(%d33-126)
//! ```

use std::borrow::Cow;

use crate::command::Mechanism;
use crate::grammar::{KEYWORD, all_in};
use crate::reply::{EnhancedCode, Reply, ReplyCode};

/// The extensions a server advertises, typed.
///
/// Flags are plain booleans rather than a bitmask so a match on them reads as
/// the RFCs do; keywords this type does not know are kept in `unknown`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities<'a> {
    /// `SIZE [n]` (RFC 1870). `Some(0)` means advertised without a fixed limit.
    pub size: Option<u64>,
    /// `PIPELINING` (RFC 2920).
    pub pipelining: bool,
    /// `8BITMIME` (RFC 6152).
    pub eight_bit_mime: bool,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `CHUNKING` (RFC 3030).
    pub chunking: bool,
    /// `BINARYMIME` (RFC 3030).
    pub binary_mime: bool,
    /// `DSN` (RFC 3461).
    pub dsn: bool,
    /// `ENHANCEDSTATUSCODES` (RFC 2034).
    pub enhanced_status_codes: bool,
    /// `STARTTLS` (RFC 3207).
    pub starttls: bool,
    /// `REQUIRETLS` (RFC 8689).
    pub requiretls: bool,
    /// `AUTH mech...` (RFC 4954); `None` when AUTH is not advertised.
    pub auth: Option<Vec<Mechanism<'a>>>,
    /// Other extensions: keyword and its parameters as written.
    pub unknown: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// A parsed EHLO reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EhloResponse<'a> {
    /// The domain the server names itself with (first word of the first line).
    pub domain: Cow<'a, str>,
    /// The rest of the first line, if any.
    pub greeting: Option<Cow<'a, str>>,
    /// The advertised extensions.
    pub capabilities: Capabilities<'a>,
    /// An enhanced status code the server put on its reply. RFC 2034 §3
    /// exempts EHLO replies from them, but some servers send one anyway; it
    /// is kept so that encoding gives back the same reply.
    pub enhanced: Option<EnhancedCode>,
}

/// Why an EHLO reply could not be read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EhloError {
    /// The reply is not a 250.
    #[error("EHLO was refused with {0}")]
    NotOk(u16),
    /// The first line names no domain.
    #[error("EHLO reply does not name the server")]
    NoDomain,
    /// An extension line is malformed; the field names the line.
    #[error("malformed EHLO extension line: {0}")]
    BadLine(String),
}

impl<'a> EhloResponse<'a> {
    /// Reads a 250 reply to EHLO (or LHLO).
    pub fn from_reply(reply: &Reply<'a>) -> Result<Self, EhloError> {
        if reply.code() != ReplyCode::OK {
            return Err(EhloError::NotOk(reply.code().get()));
        }
        let lines = reply.lines();
        let first: &str = &lines[0];
        let (domain, greeting) = match first.split_once(' ') {
            Some((d, g)) => (d, Some(g)),
            None => (first, None),
        };
        if domain.is_empty() {
            return Err(EhloError::NoDomain);
        }
        // Keep text borrowed from the reply when the reply itself borrows;
        // `s` is always a sub-slice of `whole` (or empty).
        let borrow = |s: &str, whole: &Cow<'a, str>| -> Cow<'a, str> {
            if let Cow::Borrowed(b) = whole {
                let offset = (s.as_ptr() as usize).wrapping_sub(b.as_ptr() as usize);
                if let Some(sub) = b.get(offset..offset.wrapping_add(s.len())) {
                    return Cow::Borrowed(sub);
                }
            }
            Cow::Owned(s.to_owned())
        };
        let mut caps = Capabilities::default();
        for line in &lines[1..] {
            parse_line(line, &mut caps, |s| borrow(s, line))?;
        }
        Ok(EhloResponse {
            domain: borrow(domain, &lines[0]),
            greeting: greeting.map(|g| borrow(g, &lines[0])),
            capabilities: caps,
            enhanced: reply.enhanced(),
        })
    }

    /// Builds the 250 reply a server sends.
    pub fn to_reply(&self) -> Reply<'static> {
        let mut lines: Vec<Cow<'static, str>> = Vec::with_capacity(12);
        lines.push(match &self.greeting {
            Some(g) => format!("{} {}", self.domain, g).into(),
            None => self.domain.to_string().into(),
        });
        self.capabilities.lines(&mut lines);
        Reply::new(ReplyCode::OK, self.enhanced, lines)
            .unwrap_or_else(|_| Reply::fixed(ReplyCode::OK, None, "localhost"))
    }

    /// Converts borrowed text into owned text.
    pub fn into_owned(self) -> EhloResponse<'static> {
        EhloResponse {
            domain: Cow::Owned(self.domain.into_owned()),
            greeting: self.greeting.map(|g| Cow::Owned(g.into_owned())),
            capabilities: self.capabilities.into_owned(),
            enhanced: self.enhanced,
        }
    }
}

impl Capabilities<'_> {
    /// Appends one reply line per advertised extension, in a fixed order.
    pub fn lines(&self, out: &mut Vec<Cow<'static, str>>) {
        let flag = |out: &mut Vec<Cow<'static, str>>, on: bool, name: &'static str| {
            if on {
                out.push(Cow::Borrowed(name));
            }
        };
        flag(out, self.pipelining, "PIPELINING");
        match self.size {
            Some(0) => out.push("SIZE".into()),
            Some(n) => out.push(format!("SIZE {n}").into()),
            None => {}
        }
        flag(out, self.eight_bit_mime, "8BITMIME");
        flag(out, self.smtputf8, "SMTPUTF8");
        flag(out, self.enhanced_status_codes, "ENHANCEDSTATUSCODES");
        flag(out, self.chunking, "CHUNKING");
        flag(out, self.binary_mime, "BINARYMIME");
        flag(out, self.dsn, "DSN");
        flag(out, self.starttls, "STARTTLS");
        flag(out, self.requiretls, "REQUIRETLS");
        if let Some(mechs) = &self.auth {
            let mut line = String::from("AUTH");
            for m in mechs {
                line.push(' ');
                line.push_str(m.as_str());
            }
            out.push(line.into());
        }
        for (k, v) in &self.unknown {
            out.push(if v.is_empty() {
                k.to_string().into()
            } else {
                format!("{k} {v}").into()
            });
        }
    }

    /// True when `mechanism` is among the advertised AUTH mechanisms.
    pub fn supports_auth(&self, mechanism: &Mechanism<'_>) -> bool {
        self.auth
            .as_ref()
            .is_some_and(|m| m.iter().any(|x| x.as_str() == mechanism.as_str()))
    }

    /// Converts borrowed text into owned text.
    pub fn into_owned(self) -> Capabilities<'static> {
        Capabilities {
            size: self.size,
            pipelining: self.pipelining,
            eight_bit_mime: self.eight_bit_mime,
            smtputf8: self.smtputf8,
            chunking: self.chunking,
            binary_mime: self.binary_mime,
            dsn: self.dsn,
            enhanced_status_codes: self.enhanced_status_codes,
            starttls: self.starttls,
            requiretls: self.requiretls,
            auth: self
                .auth
                .map(|m| m.into_iter().map(Mechanism::into_owned).collect()),
            unknown: self
                .unknown
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned())))
                .collect(),
        }
    }
}

fn parse_line<'a>(
    line: &str,
    caps: &mut Capabilities<'a>,
    borrow: impl Fn(&str) -> Cow<'a, str>,
) -> Result<(), EhloError> {
    let (keyword, params) = match line.split_once(' ') {
        Some((k, p)) => (k, p),
        None => (line, ""),
    };
    if keyword.is_empty() || !all_in(keyword, &KEYWORD) {
        return Err(EhloError::BadLine(line.to_owned()));
    }
    let bare = |on: &mut bool| {
        // Parameters on a flag keyword are tolerated but not expected.
        *on = true;
    };
    match keyword.to_ascii_uppercase().as_str() {
        "SIZE" => {
            caps.size = Some(if params.is_empty() {
                0
            } else {
                params
                    .parse()
                    .map_err(|_| EhloError::BadLine(line.to_owned()))?
            });
        }
        "PIPELINING" => bare(&mut caps.pipelining),
        "8BITMIME" => bare(&mut caps.eight_bit_mime),
        "SMTPUTF8" => bare(&mut caps.smtputf8),
        "CHUNKING" => bare(&mut caps.chunking),
        "BINARYMIME" => bare(&mut caps.binary_mime),
        "DSN" => bare(&mut caps.dsn),
        "ENHANCEDSTATUSCODES" => bare(&mut caps.enhanced_status_codes),
        "STARTTLS" => bare(&mut caps.starttls),
        "REQUIRETLS" => bare(&mut caps.requiretls),
        "AUTH" => {
            let mechs = caps.auth.get_or_insert_with(Vec::new);
            for name in params.split(' ').filter(|s| !s.is_empty()) {
                let m = Mechanism::parse(name)
                    .map_err(|_| EhloError::BadLine(line.to_owned()))?
                    .into_owned();
                if !mechs.contains(&m) {
                    mechs.push(m);
                }
            }
        }
        _ => caps.unknown.push((borrow(keyword), borrow(params))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::{ReplyLimits, ReplyParse, parse_reply};

    const POSTFIX: &str = "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n";

    fn read(wire: &str) -> EhloResponse<'_> {
        let ReplyParse::Complete(reply, _) =
            parse_reply(wire.as_bytes(), &ReplyLimits::default()).unwrap()
        else {
            panic!("incomplete")
        };
        EhloResponse::from_reply(&reply).unwrap().into_owned()
    }

    #[test]
    fn postfix_ehlo_reply_is_typed() {
        let e = read(POSTFIX);
        assert_eq!(e.domain, "mx.example.org");
        let c = &e.capabilities;
        assert_eq!(c.size, Some(10_240_000));
        assert!(c.pipelining && c.starttls && c.enhanced_status_codes && c.eight_bit_mime);
        assert!(c.dsn && c.smtputf8 && c.chunking && !c.binary_mime && !c.requiretls);
        assert_eq!(c.auth, Some(vec![Mechanism::Plain, Mechanism::Login]));
        assert!(c.supports_auth(&Mechanism::Login));
        assert_eq!(
            c.unknown,
            vec![("VRFY".into(), "".into()), ("ETRN".into(), "".into())]
        );
    }

    #[test]
    fn encode_then_parse_gives_the_same_set() {
        let e = read(POSTFIX);
        let wire = e.to_reply().to_vec();
        let again = read(std::str::from_utf8(&wire).unwrap());
        assert_eq!(again, e);
    }

    #[test]
    fn enhanced_code_on_an_ehlo_reply_survives_encoding() {
        // Found by the `reply` fuzz target: the greeting text looked like an
        // enhanced code after the real one was stripped.
        let e = read("250 2.0.0 2.0.0 Ok as ABC\r\n");
        assert_eq!(e.enhanced, EnhancedCode::new(2, 0, 0));
        assert_eq!(e.domain, "2.0.0");
        let wire = e.to_reply().to_vec();
        assert_eq!(wire, b"250 2.0.0 2.0.0 Ok as ABC\r\n");
        assert_eq!(read(std::str::from_utf8(&wire).unwrap()), e);
    }

    #[test]
    fn refused_or_malformed_replies() {
        let ReplyParse::Complete(r, _) =
            parse_reply(b"502 5.5.1 no\r\n", &ReplyLimits::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(EhloResponse::from_reply(&r), Err(EhloError::NotOk(502)));
        let ReplyParse::Complete(r, _) =
            parse_reply(b"250-x\r\n250 SIZE big\r\n", &ReplyLimits::default()).unwrap()
        else {
            panic!()
        };
        assert!(matches!(
            EhloResponse::from_reply(&r),
            Err(EhloError::BadLine(_))
        ));
    }
}
