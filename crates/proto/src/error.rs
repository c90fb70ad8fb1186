//! Typed grammar errors and the SMTP reply each one maps to.

use std::borrow::Cow;

use crate::reply::{EnhancedCode, Reply, ReplyCode};

/// Why a command line was refused by the grammar.
///
/// Every variant maps to one precise reply through [`SyntaxError::reply`], so a
/// server never has to invent a reply for a grammar failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyntaxError {
    /// The line is longer than the configured limit (RFC 5321 §4.5.3.1.4).
    /// The rest of the line is discarded without being buffered.
    #[error("line longer than {limit} octets")]
    LineTooLong {
        /// The limit in octets, CRLF included.
        limit: usize,
    },
    /// A LF not preceded by CR ended the line.
    #[error("line ended by a bare LF")]
    BareLf,
    /// A CR not followed by LF appears inside the line.
    #[error("bare CR inside a command line")]
    BareCr,
    /// The line is not valid UTF-8.
    #[error("command line is not valid UTF-8")]
    InvalidUtf8,
    /// A NUL or other control character appears in the line.
    #[error("control character in command line")]
    ControlCharacter,
    /// The verb is not an SMTP command this grammar knows.
    #[error("unrecognised command")]
    UnknownCommand,
    /// The command is known but its syntax is wrong.
    #[error("syntax error: {0}")]
    Syntax(&'static str),
    /// An argument is malformed.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The reverse-path of MAIL FROM is malformed.
    #[error("invalid sender address: {0}")]
    InvalidSender(&'static str),
    /// The forward-path of RCPT TO is malformed.
    #[error("invalid recipient address: {0}")]
    InvalidRecipient(&'static str),
    /// A non-ASCII address was given without the SMTPUTF8 parameter (RFC 6531 §3.4).
    #[error("non-ASCII address without SMTPUTF8")]
    Utf8WithoutSmtputf8,
    /// A parameter appears twice.
    #[error("duplicate parameter {0}")]
    DuplicateParameter(Cow<'static, str>),
    /// A known parameter has a malformed or missing value.
    #[error("invalid value for parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter keyword, upper-cased.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A parameter the server does not implement (raised by servers, after
    /// parsing, for the unknown parameters the grammar keeps).
    #[error("unrecognised parameter {0}")]
    UnrecognisedParameter(Cow<'static, str>),
    /// The AUTH mechanism is not offered (raised by servers).
    #[error("unsupported authentication mechanism")]
    UnsupportedMechanism,
    /// An AUTH response is not valid base64.
    #[error("invalid base64")]
    InvalidBase64,
}

const SYNTAX: EnhancedCode = EnhancedCode::of(5, 5, 2);
const LINE_LENGTH: EnhancedCode = EnhancedCode::of(5, 5, 6);
const ARGS: EnhancedCode = EnhancedCode::of(5, 5, 4);
const INVALID_COMMAND: EnhancedCode = EnhancedCode::of(5, 5, 1);

impl SyntaxError {
    /// The reply a server sends for this error.
    ///
    /// | error | reply |
    /// |---|---|
    /// | line too long | `500 5.5.6` |
    /// | bare LF, bare CR, control character, invalid UTF-8, syntax | `500 5.5.2` |
    /// | unknown command | `500 5.5.1` |
    /// | bad argument, duplicate or invalid parameter | `501 5.5.4` |
    /// | bad sender / recipient address | `501 5.1.7` / `501 5.1.3` |
    /// | UTF-8 address without SMTPUTF8 | `553 5.6.7` |
    /// | unrecognised parameter | `555 5.5.4` |
    ///
    /// `postern-session` does not send this reply for a bare LF or bare
    /// CR: it answers `521 5.5.2` and closes, so nothing after it is taken
    /// for a command.
    /// | unsupported AUTH mechanism | `504 5.5.4` |
    /// | invalid base64 in AUTH | `501 5.5.2` |
    pub fn reply(&self) -> Reply<'static> {
        let (code, enhanced, text): (ReplyCode, EnhancedCode, Cow<'static, str>) = match self {
            SyntaxError::LineTooLong { .. } => {
                (ReplyCode::SYNTAX_ERROR, LINE_LENGTH, "Line too long".into())
            }
            SyntaxError::BareLf | SyntaxError::BareCr => (
                ReplyCode::SYNTAX_ERROR,
                SYNTAX,
                "Bare CR or LF not allowed; lines end with CRLF".into(),
            ),
            SyntaxError::InvalidUtf8 => (
                ReplyCode::SYNTAX_ERROR,
                SYNTAX,
                "Invalid UTF-8 in command".into(),
            ),
            SyntaxError::ControlCharacter => (
                ReplyCode::SYNTAX_ERROR,
                SYNTAX,
                "Control character in command".into(),
            ),
            SyntaxError::UnknownCommand => (
                ReplyCode::SYNTAX_ERROR,
                INVALID_COMMAND,
                "Command unrecognized".into(),
            ),
            SyntaxError::Syntax(what) => (
                ReplyCode::SYNTAX_ERROR,
                SYNTAX,
                format!("Syntax error: {what}").into(),
            ),
            SyntaxError::InvalidArgument(what) => (
                ReplyCode::PARAM_SYNTAX_ERROR,
                ARGS,
                format!("Invalid argument: {what}").into(),
            ),
            SyntaxError::InvalidSender(what) => (
                ReplyCode::PARAM_SYNTAX_ERROR,
                EnhancedCode::of(5, 1, 7),
                format!("Bad sender address syntax: {what}").into(),
            ),
            SyntaxError::InvalidRecipient(what) => (
                ReplyCode::PARAM_SYNTAX_ERROR,
                EnhancedCode::of(5, 1, 3),
                format!("Bad recipient address syntax: {what}").into(),
            ),
            SyntaxError::Utf8WithoutSmtputf8 => (
                ReplyCode::MAILBOX_NAME_NOT_ALLOWED,
                EnhancedCode::of(5, 6, 7),
                "Non-ASCII address requires SMTPUTF8".into(),
            ),
            SyntaxError::DuplicateParameter(name) => (
                ReplyCode::PARAM_SYNTAX_ERROR,
                ARGS,
                format!("Duplicate parameter {name}").into(),
            ),
            SyntaxError::InvalidParameter { name, reason } => (
                ReplyCode::PARAM_SYNTAX_ERROR,
                ARGS,
                format!("Invalid {name} parameter: {reason}").into(),
            ),
            SyntaxError::UnrecognisedParameter(name) => (
                ReplyCode::PARAMS_NOT_RECOGNIZED,
                ARGS,
                format!("Unsupported parameter {name}").into(),
            ),
            SyntaxError::UnsupportedMechanism => (
                ReplyCode::PARAM_NOT_IMPLEMENTED,
                ARGS,
                "Unrecognized authentication mechanism".into(),
            ),
            SyntaxError::InvalidBase64 => (
                ReplyCode::PARAM_SYNTAX_ERROR,
                SYNTAX,
                "Invalid base64 data".into(),
            ),
        };
        let text = sanitize(text);
        Reply::fixed(code, Some(enhanced), text)
    }
}

/// Parameter names echoed into reply text come from the peer: keep only
/// printable ASCII so a reply can never carry the peer's control bytes.
fn sanitize(text: Cow<'static, str>) -> Cow<'static, str> {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        text
    } else {
        text.chars()
            .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
            .collect::<String>()
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_its_reply() {
        let cases: Vec<(SyntaxError, &str)> = vec![
            (
                SyntaxError::LineTooLong { limit: 512 },
                "500 5.5.6 Line too long\r\n",
            ),
            (
                SyntaxError::BareLf,
                "500 5.5.2 Bare CR or LF not allowed; lines end with CRLF\r\n",
            ),
            (
                SyntaxError::UnknownCommand,
                "500 5.5.1 Command unrecognized\r\n",
            ),
            (
                SyntaxError::InvalidArgument("x"),
                "501 5.5.4 Invalid argument: x\r\n",
            ),
            (
                SyntaxError::InvalidSender("x"),
                "501 5.1.7 Bad sender address syntax: x\r\n",
            ),
            (
                SyntaxError::InvalidRecipient("x"),
                "501 5.1.3 Bad recipient address syntax: x\r\n",
            ),
            (
                SyntaxError::Utf8WithoutSmtputf8,
                "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n",
            ),
            (
                SyntaxError::UnrecognisedParameter("FOO".into()),
                "555 5.5.4 Unsupported parameter FOO\r\n",
            ),
            (
                SyntaxError::UnsupportedMechanism,
                "504 5.5.4 Unrecognized authentication mechanism\r\n",
            ),
            (
                SyntaxError::InvalidBase64,
                "501 5.5.2 Invalid base64 data\r\n",
            ),
        ];
        for (error, wire) in cases {
            assert_eq!(
                String::from_utf8(error.reply().to_vec()).unwrap(),
                wire,
                "{error:?}"
            );
        }
    }

    #[test]
    fn peer_text_is_sanitized() {
        let r = SyntaxError::DuplicateParameter("X\u{7}\u{e9}".into()).reply();
        assert_eq!(r.lines()[0], "Duplicate parameter X??");
    }
}
