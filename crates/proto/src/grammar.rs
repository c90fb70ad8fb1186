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

/// `atext` (RFC 5322 §3.2.3), plus any non-ASCII character (RFC 6531 §3.3,
/// `UTF8-non-ascii`). The input is already valid UTF-8, so every non-ASCII
/// `char` is a well-formed UTF-8 sequence.
pub(crate) fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '!' | '#'
                | '$'
                | '%'
                | '&'
                | '\''
                | '*'
                | '+'
                | '-'
                | '/'
                | '='
                | '?'
                | '^'
                | '_'
                | '`'
                | '{'
                | '|'
                | '}'
                | '~'
        )
        || !c.is_ascii()
}

/// `qtextSMTP = %d32-33 / %d35-91 / %d93-126` (RFC 5321), plus UTF-8 (RFC 6531).
pub(crate) fn is_qtext(c: char) -> bool {
    matches!(c, ' ' | '!' | '#'..='[' | ']'..='~') || !c.is_ascii()
}

/// `dcontent = %d33-90 / %d94-126` (RFC 5321 §4.1.3).
pub(crate) fn is_dcontent(c: char) -> bool {
    matches!(c, '!'..='Z' | '^'..='~')
}

/// Letters, digits and `-`: the characters of `Ldh-str`, plus non-ASCII for
/// U-labels (RFC 6531 §3.3).
pub(crate) fn is_ldh(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii()
}

/// `esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`.
pub(crate) fn is_keyword_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

/// `esmtp-value = 1*(%d33-60 / %d62-126)`, plus UTF-8 (RFC 6531 §3.3).
pub(crate) fn is_esmtp_value_char(c: char) -> bool {
    matches!(c, '!'..='<' | '>'..='~') || !c.is_ascii()
}

/// Printable ASCII and SP: what free-text arguments (VRFY, HELP, NOOP) may hold.
pub(crate) fn is_text_char(c: char) -> bool {
    matches!(c, ' '..='~') || !c.is_ascii()
}
