//! Shared nom plumbing: the error type every grammar rule returns, and the
//! character classes of RFC 5321 §4.1.2 (extended by RFC 6531 for UTF-8).

use nom::error::{ErrorKind, ParseError};
use nom::{IResult, Parser};

/// A grammar failure with a fixed, human-readable reason.
///
/// nom's own error kinds name combinators, not SMTP rules; the reason names
/// what the peer got wrong, and ends up in the reply text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Why(pub(crate) &'static str);

impl<I> ParseError<I> for Why {
    fn from_error_kind(_: I, _: ErrorKind) -> Self {
        Why("malformed")
    }

    fn append(_: I, _: ErrorKind, other: Self) -> Self {
        other
    }
}

/// The result type of every grammar rule.
pub(crate) type PResult<'a, T> = IResult<&'a str, T, Why>;

/// Runs `parser`, replacing any failure reason with `reason`.
pub(crate) fn because<'a, T>(
    reason: &'static str,
    mut parser: impl Parser<&'a str, Output = T, Error = Why>,
) -> impl FnMut(&'a str) -> PResult<'a, T> {
    move |i| parser.parse(i).map_err(|e| e.map(|_| Why(reason)))
}

/// Fails with `reason` at the current input.
pub(crate) fn fail<T>(reason: &'static str) -> Result<T, nom::Err<Why>> {
    Err(nom::Err::Error(Why(reason)))
}

/// Views a line as text: invalid UTF-8 is an error, never replaced.
///
/// Command lines are nearly always ASCII, and checking for ASCII is several
/// times cheaper than full UTF-8 validation on lines this short, so ASCII
/// lines take that path.
#[inline]
#[allow(unsafe_code)]
pub(crate) fn line_str(line: &[u8]) -> Result<&str, std::str::Utf8Error> {
    if line.is_ascii() {
        // SAFETY: every byte is below 0x80, and a sequence of ASCII bytes is
        // valid UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked(line) })
    } else {
        std::str::from_utf8(line)
    }
}

/// A set of bytes, as a lookup table: the grammar's character classes.
///
/// Classes that admit UTF-8 (RFC 6531) admit every byte >= 0x80; the input
/// is already valid UTF-8, so a run of such bytes is whole characters and a
/// run always ends on a character boundary.
pub(crate) type Class = [bool; 256];

const fn class(ascii: &[u8], utf8: bool, alnum: bool) -> Class {
    let mut t = [false; 256];
    let mut i = 0;
    while i < ascii.len() {
        t[ascii[i] as usize] = true;
        i += 1;
    }
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if (alnum && c.is_ascii_alphanumeric()) || (utf8 && c >= 0x80) {
            t[b] = true;
        }
        b += 1;
    }
    t
}

const fn range(mut t: Class, from: u8, to: u8) -> Class {
    let mut b = from as usize;
    while b <= to as usize {
        t[b] = true;
        b += 1;
    }
    t
}

const fn without(mut t: Class, bytes: &[u8]) -> Class {
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = false;
        i += 1;
    }
    t
}

/// `atext` (RFC 5322 §3.2.3), plus `UTF8-non-ascii` (RFC 6531 §3.3).
pub(crate) static ATEXT: Class = class(b"!#$%&'*+-/=?^_`{|}~", true, true);
/// `qtextSMTP = %d32-33 / %d35-91 / %d93-126` (RFC 5321), plus UTF-8 (RFC 6531).
pub(crate) static QTEXT: Class = without(range(class(b"", true, false), 32, 126), b"\"\\");
/// `dcontent = %d33-90 / %d94-126` (RFC 5321 §4.1.3).
pub(crate) static DCONTENT: Class = without(range(class(b"", false, false), 33, 126), b"[\\]");
/// Letters, digits and `-`: `Ldh-str`, plus non-ASCII for U-labels (RFC 6531 §3.3).
pub(crate) static LDH: Class = class(b"-", true, true);
/// `esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`.
pub(crate) static KEYWORD: Class = class(b"-", false, true);
/// `esmtp-value = 1*(%d33-60 / %d62-126)`, plus UTF-8 (RFC 6531 §3.3).
pub(crate) static ESMTP_VALUE: Class = without(range(class(b"", true, false), 33, 126), b"=");
/// Printable ASCII, SP and UTF-8: what free-text arguments (VRFY, HELP, NOOP) may hold.
pub(crate) static TEXT: Class = range(class(b"", true, false), 32, 126);

/// Length of the longest prefix of `s` whose bytes are all in `class`.
#[inline]
pub(crate) fn span(s: &str, class: &Class) -> usize {
    s.bytes()
        .position(|b| !class[usize::from(b)])
        .unwrap_or(s.len())
}

/// True when every byte of `s` is in `class`.
#[inline]
pub(crate) fn all_in(s: &str, class: &Class) -> bool {
    span(s, class) == s.len()
}

/// nom rule: one or more bytes of `class`; fails with `reason`.
pub(crate) fn take_class1(
    class: &'static Class,
    reason: &'static str,
) -> impl Fn(&str) -> PResult<'_, &str> {
    move |i| match span(i, class) {
        0 => fail(reason),
        n => Ok((&i[n..], &i[..n])),
    }
}

/// nom rule: zero or more bytes of `class`.
pub(crate) fn take_class0(class: &'static Class) -> impl Fn(&str) -> PResult<'_, &str> {
    move |i| {
        let n = span(i, class);
        Ok((&i[n..], &i[..n]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_match_the_abnf() {
        for b in 0u8..=255 {
            let c = b as char;
            let i = usize::from(b);
            let utf8 = b >= 0x80;
            assert_eq!(
                ATEXT[i],
                c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || utf8,
                "atext {b}"
            );
            assert_eq!(
                QTEXT[i],
                matches!(b, 32 | 33 | 35..=91 | 93..=126) || utf8,
                "qtext {b}"
            );
            assert_eq!(DCONTENT[i], matches!(b, 33..=90 | 94..=126), "dcontent {b}");
            assert_eq!(
                LDH[i],
                c.is_ascii_alphanumeric() || b == b'-' || utf8,
                "ldh {b}"
            );
            assert_eq!(
                KEYWORD[i],
                c.is_ascii_alphanumeric() || b == b'-',
                "keyword {b}"
            );
            assert_eq!(
                ESMTP_VALUE[i],
                matches!(b, 33..=60 | 62..=126) || utf8,
                "value {b}"
            );
            assert_eq!(TEXT[i], matches!(b, 32..=126) || utf8, "text {b}");
        }
    }
}
