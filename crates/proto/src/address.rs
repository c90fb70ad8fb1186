//! Envelope addresses: paths, mailboxes, local parts, domains and address
//! literals (RFC 5321 §4.1.2–4.1.3), with SMTPUTF8 (RFC 6531).
//!
//! Every type here is validated on construction, so encoding one can never
//! produce a line the grammar would refuse, or inject a second command.

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use nom::Parser;
use nom::character::complete::char;
use nom::combinator::recognize;
use nom::multi::many0_count;
use nom::sequence::{pair, preceded};

use crate::grammar::{
    ATEXT, DCONTENT, LDH, PResult, QTEXT, Why, because, fail, span, take_class0, take_class1,
};

/// Longest domain name (RFC 1035 §2.3.4, RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN_LEN: usize = 255;
/// Longest label of a domain name (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// A domain name: `Domain = sub-domain *("." sub-domain)`.
///
/// ```text
/// sub-domain = Let-dig [Ldh-str]        ; RFC 5321
/// sub-domain =/ U-label                 ; RFC 6531
/// Let-dig    = ALPHA / DIGIT
/// Ldh-str    = *( ALPHA / DIGIT / "-" ) Let-dig
/// ```
/// Labels are at most 63 octets and the name at most 255. U-labels are
/// accepted as any run of non-ASCII characters, letters, digits and hyphens;
/// IDNA validity is left to the embedder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Domain<'a>(Cow<'a, str>);

impl<'a> Domain<'a> {
    /// Validates `name` as a domain.
    pub fn new(name: impl Into<Cow<'a, str>>) -> Result<Self, AddressError> {
        let name = name.into();
        match domain(&name) {
            Ok(("", _)) => Ok(Self(name)),
            Ok(_) => Err(AddressError("trailing characters after domain")),
            Err(nom::Err::Error(w) | nom::Err::Failure(w)) => Err(AddressError(w.0)),
            Err(nom::Err::Incomplete(_)) => Err(AddressError("incomplete domain")),
        }
    }

    /// The domain as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when the domain holds a U-label (non-ASCII characters).
    pub fn is_utf8(&self) -> bool {
        !self.0.is_ascii()
    }

    /// Case-insensitive comparison of ASCII names (domains are case-insensitive).
    pub fn eq_ignore_ascii_case(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }

    /// Converts borrowed text into owned text.
    pub fn into_owned(self) -> Domain<'static> {
        Domain(Cow::Owned(self.0.into_owned()))
    }
}

impl fmt::Display for Domain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An address literal (RFC 5321 §4.1.3).
///
/// ```text
/// address-literal  = "[" ( IPv4-address-literal / IPv6-address-literal /
///                          General-address-literal ) "]"
/// IPv6-address-literal    = "IPv6:" IPv6-addr
/// General-address-literal = Standardized-tag ":" 1*dcontent
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AddressLiteral<'a> {
    /// `[192.0.2.1]`
    V4(Ipv4Addr),
    /// `[IPv6:2001:db8::1]`
    V6(Ipv6Addr),
    /// `[tag:content]` for a tag registered with IANA (or not yet).
    General {
        /// The `Standardized-tag`.
        tag: Cow<'a, str>,
        /// The `1*dcontent` after the colon.
        content: Cow<'a, str>,
    },
}

impl AddressLiteral<'_> {
    /// Converts borrowed text into owned text.
    pub fn into_owned(self) -> AddressLiteral<'static> {
        match self {
            AddressLiteral::V4(a) => AddressLiteral::V4(a),
            AddressLiteral::V6(a) => AddressLiteral::V6(a),
            AddressLiteral::General { tag, content } => AddressLiteral::General {
                tag: Cow::Owned(tag.into_owned()),
                content: Cow::Owned(content.into_owned()),
            },
        }
    }
}

impl fmt::Display for AddressLiteral<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressLiteral::V4(a) => write!(f, "[{a}]"),
            AddressLiteral::V6(a) => write!(f, "[IPv6:{a}]"),
            AddressLiteral::General { tag, content } => write!(f, "[{tag}:{content}]"),
        }
    }
}

/// The part after `@`: a domain or an address literal. Also the argument of
/// HELO, EHLO and LHLO.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host<'a> {
    /// A domain name.
    Domain(Domain<'a>),
    /// An address literal.
    Literal(AddressLiteral<'a>),
}

impl<'a> Host<'a> {
    /// Parses a domain or an address literal.
    pub fn parse(s: &'a str) -> Result<Self, AddressError> {
        complete(host, s)
    }

    /// True when the host is a domain holding a U-label.
    pub fn is_utf8(&self) -> bool {
        matches!(self, Host::Domain(d) if d.is_utf8())
    }

    /// The domain, when the host is one.
    pub fn domain(&self) -> Option<&Domain<'a>> {
        match self {
            Host::Domain(d) => Some(d),
            Host::Literal(_) => None,
        }
    }

    /// Converts borrowed text into owned text.
    pub fn into_owned(self) -> Host<'static> {
        match self {
            Host::Domain(d) => Host::Domain(d.into_owned()),
            Host::Literal(l) => Host::Literal(l.into_owned()),
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => d.fmt(f),
            Host::Literal(l) => l.fmt(f),
        }
    }
}

/// The local part of a mailbox: `Local-part = Dot-string / Quoted-string`.
///
/// A quoted local part is stored unescaped (the value, not the wire form);
/// encoding quotes and escapes it again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LocalPart<'a> {
    /// `Dot-string = Atom *("." Atom)`.
    DotString(Cow<'a, str>),
    /// `Quoted-string = DQUOTE *QcontentSMTP DQUOTE`, unescaped.
    Quoted(Cow<'a, str>),
}

impl<'a> LocalPart<'a> {
    /// Builds a local part from its value: a dot-string when the value is one,
    /// otherwise a quoted string. Fails for characters no quoted string may
    /// hold (controls such as CR, LF, NUL, DEL).
    pub fn new(value: impl Into<Cow<'a, str>>) -> Result<Self, AddressError> {
        let value = value.into();
        if matches!(dot_string(&value), Ok(("", _))) {
            return Ok(LocalPart::DotString(value));
        }
        if value
            .bytes()
            .all(|b| QTEXT[usize::from(b)] || b == b'"' || b == b'\\')
        {
            Ok(LocalPart::Quoted(value))
        } else {
            Err(AddressError("control character in local part"))
        }
    }

    /// The value (unescaped for quoted local parts).
    pub fn as_str(&self) -> &str {
        match self {
            LocalPart::DotString(s) | LocalPart::Quoted(s) => s,
        }
    }

    /// True when the local part holds non-ASCII characters (needs SMTPUTF8).
    pub fn is_utf8(&self) -> bool {
        !self.as_str().is_ascii()
    }

    /// Converts borrowed text into owned text.
    pub fn into_owned(self) -> LocalPart<'static> {
        match self {
            LocalPart::DotString(s) => LocalPart::DotString(Cow::Owned(s.into_owned())),
            LocalPart::Quoted(s) => LocalPart::Quoted(Cow::Owned(s.into_owned())),
        }
    }
}

impl fmt::Display for LocalPart<'_> {
    /// The wire form: quoted strings are quoted and escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalPart::DotString(s) => f.write_str(s),
            LocalPart::Quoted(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    if c == '"' || c == '\\' {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("\"")
            }
        }
    }
}

/// `Mailbox = Local-part "@" ( Domain / address-literal )`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox<'a> {
    local_part: LocalPart<'a>,
    host: Host<'a>,
}

impl<'a> Mailbox<'a> {
    /// Builds a mailbox from validated parts.
    pub fn new(local_part: LocalPart<'a>, host: Host<'a>) -> Self {
        Self { local_part, host }
    }

    /// Parses `local@domain` (without angle brackets).
    pub fn parse(s: &'a str) -> Result<Self, AddressError> {
        complete(mailbox, s)
    }

    /// The local part.
    #[inline]
    pub fn local_part(&self) -> &LocalPart<'a> {
        &self.local_part
    }

    /// The domain or address literal.
    pub fn host(&self) -> &Host<'a> {
        &self.host
    }

    /// The domain, when the mailbox is not at an address literal.
    pub fn domain(&self) -> Option<&Domain<'a>> {
        self.host.domain()
    }

    /// True when any part is non-ASCII, so the mailbox needs SMTPUTF8.
    pub fn is_utf8(&self) -> bool {
        self.local_part.is_utf8() || self.host.is_utf8()
    }

    /// Converts borrowed text into owned text.
    pub fn into_owned(self) -> Mailbox<'static> {
        Mailbox {
            local_part: self.local_part.into_owned(),
            host: self.host.into_owned(),
        }
    }
}

impl fmt::Display for Mailbox<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local_part, self.host)
    }
}

/// The argument of MAIL FROM: `Reverse-path = Path / "<>"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReversePath<'a> {
    /// `<>`: the null sender of bounces and notifications.
    Null,
    /// A sender mailbox.
    Mailbox(Mailbox<'a>),
}

impl ReversePath<'_> {
    /// True when the sender mailbox is non-ASCII.
    pub fn is_utf8(&self) -> bool {
        matches!(self, ReversePath::Mailbox(m) if m.is_utf8())
    }

    /// Converts borrowed text into owned text.
    pub fn into_owned(self) -> ReversePath<'static> {
        match self {
            ReversePath::Null => ReversePath::Null,
            ReversePath::Mailbox(m) => ReversePath::Mailbox(m.into_owned()),
        }
    }
}

impl fmt::Display for ReversePath<'_> {
    /// The wire form, with angle brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => f.write_str("<>"),
            ReversePath::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

/// The argument of RCPT TO: a mailbox, or the domain-less `<Postmaster>`
/// (RFC 5321 §4.1.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ForwardPath<'a> {
    /// `<Postmaster>` without a domain: the server's own postmaster.
    Postmaster,
    /// A recipient mailbox.
    Mailbox(Mailbox<'a>),
}

impl<'a> ForwardPath<'a> {
    /// True when the recipient mailbox is non-ASCII.
    pub fn is_utf8(&self) -> bool {
        matches!(self, ForwardPath::Mailbox(m) if m.is_utf8())
    }

    /// The mailbox, unless this is the domain-less postmaster.
    pub fn mailbox(&self) -> Option<&Mailbox<'a>> {
        match self {
            ForwardPath::Postmaster => None,
            ForwardPath::Mailbox(m) => Some(m),
        }
    }

    /// Converts borrowed text into owned text.
    pub fn into_owned(self) -> ForwardPath<'static> {
        match self {
            ForwardPath::Postmaster => ForwardPath::Postmaster,
            ForwardPath::Mailbox(m) => ForwardPath::Mailbox(m.into_owned()),
        }
    }
}

impl fmt::Display for ForwardPath<'_> {
    /// The wire form, with angle brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPath::Postmaster => f.write_str("<Postmaster>"),
            ForwardPath::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

/// An address failed validation; the text says which rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid address: {0}")]
pub struct AddressError(pub &'static str);

fn complete<'a, T>(
    parser: impl Fn(&'a str) -> PResult<'a, T>,
    s: &'a str,
) -> Result<T, AddressError> {
    match parser(s) {
        Ok(("", v)) => Ok(v),
        Ok(_) => Err(AddressError("unexpected characters after address")),
        Err(nom::Err::Error(w) | nom::Err::Failure(w)) => Err(AddressError(w.0)),
        Err(nom::Err::Incomplete(_)) => Err(AddressError("incomplete address")),
    }
}

/// `Domain = sub-domain *("." sub-domain)`, at most 255 octets, with
/// `sub-domain = Let-dig [Ldh-str]` (or a U-label) of at most 63 octets.
///
/// A hand-written scanner rather than nom combinators: domains are on the
/// hot path of every MAIL and RCPT, and one pass over the bytes is several
/// times faster than backtracking combinators.
pub(crate) fn domain(i: &str) -> PResult<'_, &str> {
    let b = i.as_bytes();
    let mut label_start = 0;
    let mut end = b.len();
    for (pos, &c) in b.iter().enumerate() {
        if LDH[usize::from(c)] {
            continue;
        }
        if c == b'.' {
            check_label(&b[label_start..pos])?;
            label_start = pos + 1;
            continue;
        }
        end = pos;
        break;
    }
    check_label(&b[label_start..end])?;
    if end > MAX_DOMAIN_LEN {
        return fail("domain longer than 255 octets");
    }
    Ok((&i[end..], &i[..end]))
}

#[inline]
fn check_label(label: &[u8]) -> Result<(), nom::Err<Why>> {
    match label {
        [] => fail("expected a domain label"),
        [b'-', ..] | [.., b'-'] => fail("domain label starts or ends with '-'"),
        l if l.len() > MAX_LABEL_LEN => fail("domain label longer than 63 octets"),
        _ => Ok(()),
    }
}

/// `address-literal = "[" ( IPv4 / "IPv6:" IPv6 / General ) "]"`.
pub(crate) fn address_literal(i: &str) -> PResult<'_, AddressLiteral<'_>> {
    let (rest, inner) = (
        char('['),
        take_class1(&DCONTENT, "malformed address literal"),
        because("address literal is not closed by ']'", char(']')),
    )
        .parse(i)
        .map(|(rest, (_, inner, _))| (rest, inner))?;
    let literal = if let Some(v6) = strip_prefix_ignore_case(inner, "IPv6:") {
        AddressLiteral::V6(
            v6.parse()
                .map_err(|_| nom::Err::Error(Why("invalid IPv6 address literal")))?,
        )
    } else if let Some((tag_str, content)) = inner.split_once(':') {
        let tag_ok = !tag_str.is_empty()
            && tag_str
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !tag_str.ends_with('-');
        if !tag_ok || content.is_empty() {
            return fail("malformed general address literal");
        }
        AddressLiteral::General {
            tag: Cow::Borrowed(tag_str),
            content: Cow::Borrowed(content),
        }
    } else {
        AddressLiteral::V4(
            inner
                .parse()
                .map_err(|_| nom::Err::Error(Why("invalid IPv4 address literal")))?,
        )
    };
    Ok((rest, literal))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `Domain / address-literal`.
#[inline]
pub(crate) fn host(i: &str) -> PResult<'_, Host<'_>> {
    if i.starts_with('[') {
        let (rest, lit) = address_literal(i)?;
        Ok((rest, Host::Literal(lit)))
    } else {
        let (rest, d) = domain(i)?;
        Ok((rest, Host::Domain(Domain(Cow::Borrowed(d)))))
    }
}

/// `Dot-string = Atom *("." Atom)`, `Atom = 1*atext`: the longest prefix
/// of `i` of that shape (a trailing dot is left for the caller to refuse).
fn dot_string(i: &str) -> PResult<'_, &str> {
    let b = i.as_bytes();
    let mut end = 0;
    let mut pos = 0;
    loop {
        let n = span(&i[pos..], &ATEXT);
        if n == 0 {
            break;
        }
        end = pos + n;
        if b.get(end) != Some(&b'.') {
            break;
        }
        pos = end + 1;
    }
    if end == 0 {
        return fail("invalid local part");
    }
    Ok((&i[end..], &i[..end]))
}

/// `Quoted-string = DQUOTE *QcontentSMTP DQUOTE`, with
/// `QcontentSMTP = qtextSMTP / quoted-pairSMTP` and
/// `quoted-pairSMTP = %d92 %d32-126`. Returns the unescaped value, borrowed
/// when it holds no escape.
fn quoted_string(i: &str) -> PResult<'_, Cow<'_, str>> {
    let (mut rest, _) = char('"').parse(i)?;
    let start = rest;
    let mut owned: Option<String> = None;
    loop {
        let (r, run) = take_class0(&QTEXT)(rest)?;
        if let Some(o) = owned.as_mut() {
            o.push_str(run);
        }
        rest = r;
        let mut chars = rest.chars();
        match chars.next() {
            Some('"') => {
                let value = match owned {
                    Some(o) => Cow::Owned(o),
                    None => Cow::Borrowed(&start[..start.len() - rest.len()]),
                };
                return Ok((&rest[1..], value));
            }
            Some('\\') => match chars.next() {
                Some(c @ ' '..='~') => {
                    let o =
                        owned.get_or_insert_with(|| start[..start.len() - rest.len()].to_owned());
                    o.push(c);
                    rest = &rest[2..];
                }
                _ => return fail("invalid quoted-pair in local part"),
            },
            None => return fail("unterminated quoted local part"),
            Some(_) => return fail("invalid character in quoted local part"),
        }
    }
}

/// `Local-part = Dot-string / Quoted-string`.
fn local_part(i: &str) -> PResult<'_, LocalPart<'_>> {
    if i.starts_with('"') {
        let (rest, v) = quoted_string(i)?;
        Ok((rest, LocalPart::Quoted(v)))
    } else {
        let (rest, v) = because("invalid local part", dot_string).parse(i)?;
        Ok((rest, LocalPart::DotString(Cow::Borrowed(v))))
    }
}

/// `Mailbox = Local-part "@" ( Domain / address-literal )`.
#[inline]
pub(crate) fn mailbox(i: &str) -> PResult<'_, Mailbox<'_>> {
    let (i, local_part) = local_part(i)?;
    let (i, _) = because("expected '@' after the local part", char('@')).parse(i)?;
    let (i, host) = host(i)?;
    Ok((i, Mailbox { local_part, host }))
}

/// `A-d-l = At-domain *( "," At-domain )`, `At-domain = "@" Domain`:
/// an obsolete source route, parsed and dropped (RFC 5321 §4.1.2, §C).
fn source_route(i: &str) -> PResult<'_, ()> {
    let at_domain = |i| preceded(char('@'), domain).parse(i);
    let (i, _) =
        recognize(pair(at_domain, many0_count(preceded(char(','), at_domain)))).parse(i)?;
    let (i, _) = because("malformed source route", char(':')).parse(i)?;
    Ok((i, ()))
}

/// `Path = "<" [ A-d-l ":" ] Mailbox ">"`.
#[inline]
fn path(i: &str) -> PResult<'_, Mailbox<'_>> {
    let (i, _) = because("expected '<'", char('<')).parse(i)?;
    let (i, _) = if i.starts_with('@') {
        source_route(i)?
    } else {
        (i, ())
    };
    let (i, m) = mailbox(i)?;
    let (i, _) = because("expected '>' after the address", char('>')).parse(i)?;
    Ok((i, m))
}

/// `Reverse-path = Path / "<>"`.
#[inline]
pub(crate) fn reverse_path(i: &str) -> PResult<'_, ReversePath<'_>> {
    if let Some(rest) = i.strip_prefix("<>") {
        return Ok((rest, ReversePath::Null));
    }
    let (i, m) = path(i)?;
    Ok((i, ReversePath::Mailbox(m)))
}

/// `"<Postmaster@" Domain ">" / "<Postmaster>" / Forward-path`.
#[inline]
pub(crate) fn forward_path(i: &str) -> PResult<'_, ForwardPath<'_>> {
    const POSTMASTER: &[u8] = b"<postmaster>";
    let b = i.as_bytes();
    if b.len() >= POSTMASTER.len() && b[..POSTMASTER.len()].eq_ignore_ascii_case(POSTMASTER) {
        return Ok((&i[POSTMASTER.len()..], ForwardPath::Postmaster));
    }
    if i.starts_with("<>") {
        return fail("the null path is not a valid recipient");
    }
    let (i, m) = path(i)?;
    Ok((i, ForwardPath::Mailbox(m)))
}

/// Parses an optional path-like argument for tests and tools: `<local@domain>`.
pub fn parse_path(s: &str) -> Result<ReversePath<'_>, AddressError> {
    complete(reverse_path, s)
}

/// Parses `<Postmaster>` or `<local@domain>`.
pub fn parse_forward_path(s: &str) -> Result<ForwardPath<'_>, AddressError> {
    complete(forward_path, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(s: &str) -> Mailbox<'_> {
        Mailbox::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn dot_string_and_domains() {
        let m = mb("john.doe+tag@mail.example.com");
        assert_eq!(m.local_part(), &LocalPart::DotString("john.doe+tag".into()));
        assert_eq!(m.domain().map(Domain::as_str), Some("mail.example.com"));
        assert!(!m.is_utf8());
        assert_eq!(m.to_string(), "john.doe+tag@mail.example.com");
    }

    #[test]
    fn malformed_dot_strings_are_refused() {
        for bad in [
            ".a@b.c", "a.@b.c", "a..b@b.c", "a@-b.c", "a@b-.c", "a@b..c", "a@b.c.", "@b.c",
            "a b@c.d", "a@", "a",
        ] {
            assert!(Mailbox::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn quoted_local_parts_are_unescaped_and_requoted() {
        let m = mb(r#""john \"q\" doe"@example.com"#);
        assert_eq!(m.local_part(), &LocalPart::Quoted(r#"john "q" doe"#.into()));
        assert_eq!(m.to_string(), r#""john \"q\" doe"@example.com"#);
        let plain = mb(r#""a b"@c.d"#);
        assert!(matches!(
            plain.local_part(),
            LocalPart::Quoted(Cow::Borrowed("a b"))
        ));
        assert!(Mailbox::parse("\"unterminated@c.d").is_err());
        assert!(Mailbox::parse("\"bad\\\u{1}\"@c.d").is_err());
    }

    #[test]
    fn address_literals() {
        assert_eq!(
            mb("a@[192.0.2.1]").host(),
            &Host::Literal(AddressLiteral::V4(Ipv4Addr::new(192, 0, 2, 1)))
        );
        assert_eq!(
            mb("a@[IPv6:2001:db8::1]").host(),
            &Host::Literal(AddressLiteral::V6("2001:db8::1".parse().unwrap()))
        );
        assert!(matches!(
            mb("a@[x-tag:some-content]").host(),
            Host::Literal(AddressLiteral::General { .. })
        ));
        for bad in [
            "a@[300.1.1.1]",
            "a@[IPv6:zz::]",
            "a@[1.2.3.4",
            "a@[]",
            "a@[01.2.3.4]",
        ] {
            assert!(Mailbox::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn utf8_addresses_are_reported() {
        let m = mb("josé@exämple.com");
        assert!(m.is_utf8());
        assert!(m.local_part().is_utf8());
        assert!(m.host().is_utf8());
    }

    #[test]
    fn label_and_domain_length_limits() {
        let label = "a".repeat(63);
        assert!(Domain::new(label.clone()).is_ok());
        assert_eq!(
            Domain::new(format!("{label}a")),
            Err(AddressError("domain label longer than 63 octets"))
        );
        let long = vec!["a".repeat(50); 6].join(".");
        assert!(long.len() > 255);
        assert_eq!(
            Domain::new(long),
            Err(AddressError("domain longer than 255 octets"))
        );
    }

    #[test]
    fn paths_null_postmaster_and_source_routes() {
        assert_eq!(parse_path("<>"), Ok(ReversePath::Null));
        assert_eq!(
            parse_forward_path("<POSTMASTER>"),
            Ok(ForwardPath::Postmaster)
        );
        assert!(parse_forward_path("<>").is_err());
        let routed = parse_path("<@relay.one,@relay.two:user@example.com>").unwrap();
        assert_eq!(routed.to_string(), "<user@example.com>");
        assert!(parse_path("user@example.com").is_err());
        assert!(parse_path("<user@example.com").is_err());
        assert!(parse_path("<@relay:>").is_err());
    }

    #[test]
    fn local_part_constructor_picks_the_form() {
        assert_eq!(
            LocalPart::new("abc"),
            Ok(LocalPart::DotString("abc".into()))
        );
        assert_eq!(LocalPart::new("a b"), Ok(LocalPart::Quoted("a b".into())));
        assert!(LocalPart::new("a\r\nb").is_err());
    }
}
