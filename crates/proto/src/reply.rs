//! SMTP replies: reply codes, enhanced status codes (RFC 3463), single and
//! multi-line replies, incremental parsing and wire encoding.
//!
//! ```text
//! Reply-line     = *( Reply-code "-" [ textstring ] CRLF )
//!                  Reply-code [ SP textstring ] CRLF        ; RFC 5321 §4.2
//! Reply-code     = %x32-35 %x30-35 %x30-39
//! status-code    = class "." subject "." detail             ; RFC 3463 §2
//! class          = "2" / "4" / "5"
//! subject, detail = 1*3digit
//! ```

use std::borrow::Cow;
use std::fmt;

use memchr::memchr;

/// A three-digit SMTP reply code (`Reply-code` in RFC 5321 §4.2).
///
/// The first digit is 2 to 5, the second 0 to 5, the third 0 to 9; other
/// values cannot be constructed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplyCode(u16);

impl ReplyCode {
    /// 220 Service ready.
    pub const SERVICE_READY: Self = Self(220);
    /// 221 Service closing transmission channel.
    pub const CLOSING: Self = Self(221);
    /// 235 Authentication succeeded (RFC 4954).
    pub const AUTH_OK: Self = Self(235);
    /// 250 Requested mail action okay, completed.
    pub const OK: Self = Self(250);
    /// 252 Cannot VRFY user, but will accept message and attempt delivery.
    pub const CANNOT_VRFY: Self = Self(252);
    /// 334 Server challenge during AUTH (RFC 4954).
    pub const AUTH_CHALLENGE: Self = Self(334);
    /// 354 Start mail input; end with `<CRLF>.<CRLF>`.
    pub const START_DATA: Self = Self(354);
    /// 421 Service not available, closing transmission channel.
    pub const SERVICE_UNAVAILABLE: Self = Self(421);
    /// 452 Requested action not taken: insufficient system storage / too many recipients.
    pub const INSUFFICIENT_STORAGE: Self = Self(452);
    /// 454 Temporary authentication failure / TLS not available.
    pub const TEMPORARY_AUTH_FAILURE: Self = Self(454);
    /// 500 Syntax error, command unrecognized (also: line too long).
    pub const SYNTAX_ERROR: Self = Self(500);
    /// 501 Syntax error in parameters or arguments.
    pub const PARAM_SYNTAX_ERROR: Self = Self(501);
    /// 502 Command not implemented.
    pub const NOT_IMPLEMENTED: Self = Self(502);
    /// 503 Bad sequence of commands.
    pub const BAD_SEQUENCE: Self = Self(503);
    /// 504 Command parameter not implemented (e.g. unsupported AUTH mechanism).
    pub const PARAM_NOT_IMPLEMENTED: Self = Self(504);
    /// 530 Authentication required / must issue STARTTLS first.
    pub const AUTH_REQUIRED: Self = Self(530);
    /// 535 Authentication credentials invalid (RFC 4954).
    pub const AUTH_INVALID: Self = Self(535);
    /// 538 Encryption required for requested authentication mechanism (RFC 4954).
    pub const ENCRYPTION_REQUIRED: Self = Self(538);
    /// 550 Requested action not taken: mailbox unavailable or policy rejection.
    pub const MAILBOX_UNAVAILABLE: Self = Self(550);
    /// 552 Requested mail action aborted: exceeded storage allocation (message too big).
    pub const EXCEEDED_STORAGE: Self = Self(552);
    /// 553 Requested action not taken: mailbox name not allowed.
    pub const MAILBOX_NAME_NOT_ALLOWED: Self = Self(553);
    /// 554 Transaction failed.
    pub const TRANSACTION_FAILED: Self = Self(554);
    /// 555 MAIL FROM/RCPT TO parameters not recognized or not implemented.
    pub const PARAMS_NOT_RECOGNIZED: Self = Self(555);

    /// Builds a reply code, or `None` when `code` is not a valid `Reply-code`.
    pub const fn new(code: u16) -> Option<Self> {
        let (a, b) = (code / 100, (code / 10) % 10);
        if code >= 200 && code < 600 && a >= 2 && a <= 5 && b <= 5 {
            Some(Self(code))
        } else {
            None
        }
    }

    /// The numeric value.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The first digit: 2 positive completion, 3 intermediate, 4 transient
    /// negative, 5 permanent negative.
    pub const fn class(self) -> u8 {
        (self.0 / 100) as u8
    }

    /// 2yz: the command succeeded.
    pub const fn is_positive(self) -> bool {
        self.class() == 2
    }

    /// 3yz: the server waits for more input (354, 334).
    pub const fn is_intermediate(self) -> bool {
        self.class() == 3
    }

    /// 4yz: the command failed, trying again later may succeed.
    pub const fn is_transient(self) -> bool {
        self.class() == 4
    }

    /// 5yz: the command failed and must not be retried as is.
    pub const fn is_permanent(self) -> bool {
        self.class() == 5
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An enhanced mail system status code, `class.subject.detail` (RFC 3463).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnhancedCode {
    class: u8,
    subject: u16,
    detail: u16,
}

impl EnhancedCode {
    /// Builds a status code; `None` unless class is 2, 4 or 5 and subject and
    /// detail have at most three digits.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Option<Self> {
        if (class == 2 || class == 4 || class == 5) && subject <= 999 && detail <= 999 {
            Some(Self {
                class,
                subject,
                detail,
            })
        } else {
            None
        }
    }

    /// Builds a code known valid at compile time; panics in const context otherwise.
    pub(crate) const fn of(class: u8, subject: u16, detail: u16) -> Self {
        match Self::new(class, subject, detail) {
            Some(code) => code,
            None => panic!("invalid enhanced status code"),
        }
    }

    /// The class: 2 success, 4 persistent transient failure, 5 permanent failure.
    pub const fn class(self) -> u8 {
        self.class
    }

    /// The subject (e.g. 7 for security or policy status).
    pub const fn subject(self) -> u16 {
        self.subject
    }

    /// The detail within the subject.
    pub const fn detail(self) -> u16 {
        self.detail
    }

    /// Parses `class.subject.detail` at the start of `text`, returning the code
    /// and the number of bytes it used. The code must be followed by a space
    /// or the end of the text.
    pub fn parse_prefix(text: &str) -> Option<(Self, usize)> {
        let b = text.as_bytes();
        let class = match b.first()? {
            c @ (b'2' | b'4' | b'5') => c - b'0',
            _ => return None,
        };
        if b.get(1) != Some(&b'.') {
            return None;
        }
        let (subject, n1) = parse_digits3(&b[2..])?;
        let after_subject = 2 + n1;
        if b.get(after_subject) != Some(&b'.') {
            return None;
        }
        let (detail, n2) = parse_digits3(&b[after_subject + 1..])?;
        let end = after_subject + 1 + n2;
        match b.get(end) {
            None | Some(b' ') => Some((Self::new(class, subject, detail)?, end)),
            _ => None,
        }
    }
}

fn parse_digits3(b: &[u8]) -> Option<(u16, usize)> {
    let n = b.iter().take(4).take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 3 {
        return None;
    }
    let v = b[..n]
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    Some((v, n))
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// A complete SMTP reply: a code, an optional enhanced status code and one
/// or more lines of text.
///
/// The enhanced code, when present, is written at the start of every line
/// (RFC 2034 §3) and stripped from the text when parsing. Text lines never
/// contain CR or LF; [`Reply::new`] rejects them so a reply cannot be used to
/// inject protocol lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reply<'a> {
    code: ReplyCode,
    enhanced: Option<EnhancedCode>,
    lines: Vec<Cow<'a, str>>,
}

/// Why a reply could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The line does not start with a valid three-digit reply code.
    #[error("reply line does not start with a valid reply code")]
    BadCode,
    /// The separator after the code is neither SP, `-` nor the end of the line.
    #[error("reply code is not followed by SP, '-' or CRLF")]
    BadSeparator,
    /// A continuation line carries a different code from the first line.
    #[error("multi-line reply mixes reply codes {first} and {other}")]
    MixedCodes {
        /// The code of the first line.
        first: u16,
        /// The differing code.
        other: u16,
    },
    /// The enhanced status code's class differs from the reply code's class.
    #[error("enhanced status code class does not match the reply code")]
    EnhancedClassMismatch,
    /// A line is longer than the configured limit.
    #[error("reply line longer than {limit} octets")]
    LineTooLong {
        /// The limit in octets, including CRLF.
        limit: usize,
    },
    /// The reply has more lines than the configured limit.
    #[error("reply has more than {limit} lines")]
    TooManyLines {
        /// The limit in lines.
        limit: usize,
    },
    /// A line ends in a bare LF, or contains a bare CR.
    #[error("reply line is not terminated by CRLF")]
    BareLineEnding,
    /// The text is not valid UTF-8.
    #[error("reply text is not valid UTF-8")]
    InvalidUtf8,
    /// Text contains a control character (CR, LF or NUL) that would break framing.
    #[error("reply text contains CR, LF or NUL")]
    ControlInText,
    /// A reply needs at least one line.
    #[error("a reply has at least one line")]
    NoLines,
}

/// Limits applied while parsing replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplyLimits {
    /// Longest reply line accepted, including CRLF. RFC 5321 §4.5.3.1.5 sets
    /// 512 octets as the minimum a client must accept; the default is more
    /// generous because real servers exceed it in EHLO and greeting banners.
    pub max_line: usize,
    /// Most lines in one reply (bounds memory on hostile servers).
    pub max_lines: usize,
}

impl ReplyLimits {
    /// The longest line (CRLF included) and the most lines accepted.
    pub const fn new(max_line: usize, max_lines: usize) -> Self {
        Self {
            max_line,
            max_lines,
        }
    }
}

impl Default for ReplyLimits {
    fn default() -> Self {
        Self {
            max_line: 4096,
            max_lines: 256,
        }
    }
}

impl<'a> Reply<'a> {
    /// Builds a reply. Fails when `lines` is empty or a line contains CR, LF
    /// or NUL, or when the enhanced code's class differs from the reply's.
    pub fn new<I, S>(
        code: ReplyCode,
        enhanced: Option<EnhancedCode>,
        lines: I,
    ) -> Result<Self, ReplyError>
    where
        I: IntoIterator<Item = S>,
        S: Into<Cow<'a, str>>,
    {
        let lines: Vec<Cow<'a, str>> = lines.into_iter().map(Into::into).collect();
        if lines.is_empty() {
            return Err(ReplyError::NoLines);
        }
        if lines
            .iter()
            .any(|l| l.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)))
        {
            return Err(ReplyError::ControlInText);
        }
        if let Some(e) = enhanced
            && e.class() != code.class()
        {
            return Err(ReplyError::EnhancedClassMismatch);
        }
        Ok(Self {
            code,
            enhanced,
            lines,
        })
    }

    /// Builds a one-line reply that is valid whatever it is given: CR, LF
    /// and NUL in `text` become spaces, and an enhanced code of another
    /// class than `code` is dropped. Checked in every build, so text from
    /// anywhere can never put a second line on the wire; use
    /// [`Reply::new`] to have such text refused instead.
    pub fn fixed(
        code: ReplyCode,
        enhanced: Option<EnhancedCode>,
        text: impl Into<Cow<'a, str>>,
    ) -> Self {
        let mut text = text.into();
        if text.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            text = Cow::Owned(text.replace(['\r', '\n', '\0'], " "));
        }
        Self {
            code,
            enhanced: enhanced.filter(|e| e.class() == code.class()),
            lines: vec![text],
        }
    }

    /// The reply code.
    pub fn code(&self) -> ReplyCode {
        self.code
    }

    /// The enhanced status code, when the reply carries one.
    pub fn enhanced(&self) -> Option<EnhancedCode> {
        self.enhanced
    }

    /// The text lines, without codes or enhanced codes.
    pub fn lines(&self) -> &[Cow<'a, str>] {
        &self.lines
    }

    /// The lines joined with a single space, for logs and error messages.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// 2yz.
    pub fn is_positive(&self) -> bool {
        self.code.is_positive()
    }

    /// 4yz: a later retry may succeed.
    pub fn is_transient(&self) -> bool {
        self.code.is_transient()
    }

    /// 5yz: retrying will not help.
    pub fn is_permanent(&self) -> bool {
        self.code.is_permanent()
    }

    /// Converts borrowed text into owned text.
    pub fn into_owned(self) -> Reply<'static> {
        Reply {
            code: self.code,
            enhanced: self.enhanced,
            lines: self
                .lines
                .into_iter()
                .map(|l| Cow::Owned(l.into_owned()))
                .collect(),
        }
    }

    /// Appends the wire form (every line ending in CRLF) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let last = self.lines.len() - 1;
        let code = self.code.get();
        let digits = [
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
        ];
        for (i, line) in self.lines.iter().enumerate() {
            out.extend_from_slice(&digits);
            out.push(if i == last { b' ' } else { b'-' });
            if let Some(e) = self.enhanced {
                write_enhanced(out, e);
                if !line.is_empty() {
                    out.push(b' ');
                }
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.lines.iter().map(|l| l.len() + 16).sum());
        self.encode(&mut out);
        out
    }
}

fn write_enhanced(out: &mut Vec<u8>, e: EnhancedCode) {
    out.push(b'0' + e.class);
    out.push(b'.');
    push_u16(out, e.subject);
    out.push(b'.');
    push_u16(out, e.detail);
}

pub(crate) fn push_u16(out: &mut Vec<u8>, v: u16) {
    push_u64(out, u64::from(v));
}

pub(crate) fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

impl fmt::Display for Reply<'_> {
    /// The wire form without the final CRLF, lines joined by CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wire = self.to_vec();
        let s = String::from_utf8_lossy(&wire[..wire.len() - 2]);
        f.write_str(&s)
    }
}

/// The outcome of feeding bytes to [`parse_reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyParse<'a> {
    /// A complete reply, and how many input bytes it used (through the final CRLF).
    Complete(Reply<'a>, usize),
    /// The input ends before the reply does; read more and call again with
    /// the whole buffer.
    Incomplete,
}

/// Parses one reply from the front of `input`.
///
/// Incremental: returns [`ReplyParse::Incomplete`] until the last line of the
/// reply (the one with SP or nothing after the code) has arrived, and fails as
/// soon as a partial line exceeds `limits.max_line`, so a hostile server cannot
/// make the caller buffer without bound.
///
/// An enhanced status code is recognised when the first line's text starts with
/// one whose class matches the reply code; it is then stripped from every line
/// that repeats it.
pub fn parse_reply<'a>(
    input: &'a [u8],
    limits: &ReplyLimits,
) -> Result<ReplyParse<'a>, ReplyError> {
    let mut pos = 0;
    let mut first_code: Option<u16> = None;
    let mut raw_lines: Vec<&'a str> = Vec::new();
    loop {
        let rest = &input[pos..];
        let Some(lf) = memchr(b'\n', rest) else {
            if rest.len() >= limits.max_line {
                return Err(ReplyError::LineTooLong {
                    limit: limits.max_line,
                });
            }
            return Ok(ReplyParse::Incomplete);
        };
        if lf + 1 > limits.max_line {
            return Err(ReplyError::LineTooLong {
                limit: limits.max_line,
            });
        }
        if lf == 0 || rest[lf - 1] != b'\r' {
            return Err(ReplyError::BareLineEnding);
        }
        let line = &rest[..lf - 1];
        if memchr(b'\r', line).is_some() {
            return Err(ReplyError::BareLineEnding);
        }
        pos += lf + 1;
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return Err(ReplyError::BadCode);
        }
        let code = u16::from(line[0] - b'0') * 100
            + u16::from(line[1] - b'0') * 10
            + u16::from(line[2] - b'0');
        if ReplyCode::new(code).is_none() {
            return Err(ReplyError::BadCode);
        }
        match first_code {
            None => first_code = Some(code),
            Some(first) if first != code => {
                return Err(ReplyError::MixedCodes { first, other: code });
            }
            Some(_) => {}
        }
        let (last, text) = match line.get(3) {
            None => (true, &line[3..]),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Err(ReplyError::BadSeparator),
        };
        if text.contains(&0) {
            return Err(ReplyError::ControlInText);
        }
        let text = std::str::from_utf8(text).map_err(|_| ReplyError::InvalidUtf8)?;
        if raw_lines.len() == limits.max_lines {
            return Err(ReplyError::TooManyLines {
                limit: limits.max_lines,
            });
        }
        raw_lines.push(text);
        if last {
            break;
        }
    }
    let code = ReplyCode(first_code.unwrap_or(500));
    let enhanced = EnhancedCode::parse_prefix(raw_lines[0])
        .map(|(e, _)| e)
        .filter(|e| e.class() == code.class());
    let lines = raw_lines
        .into_iter()
        .map(|l| Cow::Borrowed(strip_enhanced(l, enhanced)))
        .collect();
    Ok(ReplyParse::Complete(
        Reply {
            code,
            enhanced,
            lines,
        },
        pos,
    ))
}

fn strip_enhanced(line: &str, enhanced: Option<EnhancedCode>) -> &str {
    match (enhanced, EnhancedCode::parse_prefix(line)) {
        (Some(want), Some((got, n))) if want == got => {
            let rest = &line[n..];
            rest.strip_prefix(' ').unwrap_or(rest)
        }
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str) -> Result<ReplyParse<'_>, ReplyError> {
        parse_reply(input.as_bytes(), &ReplyLimits::default())
    }

    fn complete(input: &str) -> (Reply<'_>, usize) {
        match parse(input) {
            Ok(ReplyParse::Complete(r, n)) => (r, n),
            other => panic!("expected a complete reply, got {other:?}"),
        }
    }

    #[test]
    fn reply_codes_are_validated() {
        assert!(ReplyCode::new(250).is_some());
        assert!(ReplyCode::new(554).is_some());
        assert!(ReplyCode::new(599).is_none());
        assert!(ReplyCode::new(199).is_none());
        assert!(ReplyCode::new(260).is_none());
        assert!(ReplyCode::new(600).is_none());
        assert!(ReplyCode::new(421).is_some_and(ReplyCode::is_transient));
    }

    #[test]
    fn single_line_with_enhanced_code() {
        let (r, n) = complete("250 2.1.0 Sender ok\r\nNEXT");
        assert_eq!(n, 21);
        assert_eq!(r.code().get(), 250);
        assert_eq!(r.enhanced(), EnhancedCode::new(2, 1, 0));
        assert_eq!(r.lines(), ["Sender ok"]);
    }

    #[test]
    fn multi_line_strips_repeated_enhanced_codes() {
        let (r, _) = complete("550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n");
        assert_eq!(r.lines(), ["first", "second", "third"]);
        assert_eq!(
            r.to_vec(),
            b"550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n"
        );
    }

    #[test]
    fn enhanced_class_must_match() {
        let (r, _) = complete("250 5.0.0 odd\r\n");
        assert_eq!(r.enhanced(), None);
        assert_eq!(r.lines(), ["5.0.0 odd"]);
    }

    #[test]
    fn bare_code_line_and_incomplete() {
        let (r, _) = complete("354\r\n");
        assert_eq!(r.lines(), [""]);
        assert_eq!(parse("250-a\r\n250 b"), Ok(ReplyParse::Incomplete));
        assert_eq!(parse("25"), Ok(ReplyParse::Incomplete));
    }

    #[test]
    fn malformed_replies_are_typed_errors() {
        assert_eq!(parse("2x0 a\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse("250xa\r\n"), Err(ReplyError::BadSeparator));
        assert_eq!(parse("250 a\n"), Err(ReplyError::BareLineEnding));
        assert_eq!(parse("250 a\rb\r\n"), Err(ReplyError::BareLineEnding));
        assert_eq!(
            parse("250-a\r\n251 b\r\n"),
            Err(ReplyError::MixedCodes {
                first: 250,
                other: 251
            })
        );
        assert_eq!(
            parse_reply(b"250 \xff\r\n", &ReplyLimits::default()),
            Err(ReplyError::InvalidUtf8)
        );
    }

    #[test]
    fn limits_are_enforced_before_the_line_ends() {
        let limits = ReplyLimits {
            max_line: 10,
            max_lines: 2,
        };
        assert_eq!(
            parse_reply(b"250 0123456789", &limits),
            Err(ReplyError::LineTooLong { limit: 10 })
        );
        assert_eq!(
            parse_reply(b"250-a\r\n250-b\r\n250 c\r\n", &limits),
            Err(ReplyError::TooManyLines { limit: 2 })
        );
    }

    #[test]
    fn new_rejects_injection() {
        let code = ReplyCode::OK;
        assert_eq!(
            Reply::new(code, None, ["ok\r\n250 injected"]),
            Err(ReplyError::ControlInText)
        );
        assert_eq!(
            Reply::new(code, None, Vec::<&str>::new()),
            Err(ReplyError::NoLines)
        );
        assert_eq!(
            Reply::new(code, EnhancedCode::new(5, 0, 0), ["x"]),
            Err(ReplyError::EnhancedClassMismatch)
        );
    }

    #[test]
    fn enhanced_prefix_parsing() {
        assert_eq!(
            EnhancedCode::parse_prefix("5.7.11 Encryption"),
            Some((EnhancedCode::of(5, 7, 11), 6))
        );
        assert_eq!(EnhancedCode::parse_prefix("5.7.1111 x"), None);
        assert_eq!(EnhancedCode::parse_prefix("3.0.0"), None);
        assert_eq!(EnhancedCode::parse_prefix("5.7.1x"), None);
    }
}
