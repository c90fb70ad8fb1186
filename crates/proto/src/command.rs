//! SMTP commands: the typed form, the parser and the encoder.
//!
//! ```text
//! ehlo     = "EHLO" SP ( Domain / address-literal ) CRLF      ; RFC 5321 §4.1.1.1
//! helo     = "HELO" SP Domain CRLF
//! lhlo     = "LHLO" SP ( Domain / address-literal ) CRLF      ; RFC 2033
//! mail     = "MAIL FROM:" Reverse-path [SP Mail-parameters] CRLF
//! rcpt     = "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" /
//!            Forward-path ) [SP Rcpt-parameters] CRLF
//! data     = "DATA" CRLF
//! bdat     = "BDAT" SP chunk-size [ SP end-marker ] CRLF      ; RFC 3030
//! rset     = "RSET" CRLF
//! vrfy     = "VRFY" SP String CRLF
//! expn     = "EXPN" SP String CRLF
//! help     = "HELP" [ SP String ] CRLF
//! noop     = "NOOP" [ SP String ] CRLF
//! quit     = "QUIT" CRLF
//! starttls = "STARTTLS" CRLF                                  ; RFC 3207
//! auth     = "AUTH" SP sasl-mech [SP initial-response] CRLF   ; RFC 4954
//! initial-response = base64 / "="
//! ```
//! Verbs and parameter keywords are case-insensitive. One leniency, shared
//! with Postfix, Exim and most servers: a single SP is accepted after
//! `FROM:` and `TO:`; it cannot change the meaning of the line.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;

use crate::address::{ForwardPath, Host, ReversePath, forward_path, host, reverse_path};
use crate::error::SyntaxError;
use crate::grammar::{TEXT, all_in, line_str};
use crate::line::{Frame, LineFramer, LineLimits};
use crate::params::{MailParams, RcptParams, parse_mail_params, parse_rcpt_params};
use crate::reply::push_u64;

/// An SMTP command, borrowing from the line it was parsed from.
///
/// `Command<'static>` ([`OwnedCommand`]) is the owned form, made with
/// [`Command::into_owned`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Command<'a> {
    /// `EHLO host`
    Ehlo(Host<'a>),
    /// `HELO host`
    Helo(Host<'a>),
    /// `LHLO host` (LMTP, RFC 2033)
    Lhlo(Host<'a>),
    /// `MAIL FROM:<path> params`
    Mail {
        /// The reverse-path.
        from: ReversePath<'a>,
        /// The ESMTP parameters.
        params: MailParams<'a>,
    },
    /// `RCPT TO:<path> params`
    Rcpt {
        /// The forward-path.
        to: ForwardPath<'a>,
        /// The ESMTP parameters.
        params: RcptParams<'a>,
    },
    /// `DATA`
    Data,
    /// `BDAT size [LAST]` (RFC 3030)
    Bdat {
        /// The chunk size in octets.
        size: u64,
        /// True for the last chunk.
        last: bool,
    },
    /// `RSET`
    Rset,
    /// `NOOP [text]`
    Noop(Option<Cow<'a, str>>),
    /// `QUIT`
    Quit,
    /// `VRFY text`
    Vrfy(Cow<'a, str>),
    /// `EXPN text`
    Expn(Cow<'a, str>),
    /// `HELP [topic]`
    Help(Option<Cow<'a, str>>),
    /// `STARTTLS` (RFC 3207)
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954)
    Auth {
        /// The SASL mechanism.
        mechanism: Mechanism<'a>,
        /// The initial response, when given on the command line.
        initial_response: Option<InitialResponse<'a>>,
    },
}

/// The owned form of [`Command`].
pub type OwnedCommand = Command<'static>;

/// A SASL mechanism name (`sasl-mech = 1*20mech-char`, RFC 4422 §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mechanism<'a> {
    /// `PLAIN` (RFC 4616)
    Plain,
    /// `LOGIN` (draft-murchison-sasl-login)
    Login,
    /// `CRAM-MD5` (RFC 2195)
    CramMd5,
    /// `SCRAM-SHA-1` (RFC 5802)
    ScramSha1,
    /// `SCRAM-SHA-256` (RFC 7677)
    ScramSha256,
    /// `XOAUTH2` (Google)
    XOauth2,
    /// `OAUTHBEARER` (RFC 7628)
    OauthBearer,
    /// Any other mechanism, upper-cased.
    Other(Cow<'a, str>),
}

impl<'a> Mechanism<'a> {
    /// Parses a mechanism name, case-insensitively.
    pub fn parse(name: &'a str) -> Result<Self, SyntaxError> {
        if name.is_empty()
            || name.len() > 20
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(SyntaxError::InvalidArgument(
                "malformed SASL mechanism name",
            ));
        }
        const KNOWN: [(&str, Mechanism<'static>); 7] = [
            ("PLAIN", Mechanism::Plain),
            ("LOGIN", Mechanism::Login),
            ("CRAM-MD5", Mechanism::CramMd5),
            ("SCRAM-SHA-1", Mechanism::ScramSha1),
            ("SCRAM-SHA-256", Mechanism::ScramSha256),
            ("XOAUTH2", Mechanism::XOauth2),
            ("OAUTHBEARER", Mechanism::OauthBearer),
        ];
        for (known, m) in KNOWN {
            if name.eq_ignore_ascii_case(known) {
                return Ok(m);
            }
        }
        Ok(Mechanism::Other(
            if name.bytes().any(|b| b.is_ascii_lowercase()) {
                Cow::Owned(name.to_ascii_uppercase())
            } else {
                Cow::Borrowed(name)
            },
        ))
    }

    /// The name as sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::XOauth2 => "XOAUTH2",
            Mechanism::OauthBearer => "OAUTHBEARER",
            Mechanism::Other(s) => s,
        }
    }

    /// Converts borrowed text into owned text.
    pub fn into_owned(self) -> Mechanism<'static> {
        match self {
            Mechanism::Plain => Mechanism::Plain,
            Mechanism::Login => Mechanism::Login,
            Mechanism::CramMd5 => Mechanism::CramMd5,
            Mechanism::ScramSha1 => Mechanism::ScramSha1,
            Mechanism::ScramSha256 => Mechanism::ScramSha256,
            Mechanism::XOauth2 => Mechanism::XOauth2,
            Mechanism::OauthBearer => Mechanism::OauthBearer,
            Mechanism::Other(s) => Mechanism::Other(Cow::Owned(s.into_owned())),
        }
    }
}

impl fmt::Display for Mechanism<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The initial response of AUTH (RFC 4954 §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InitialResponse<'a> {
    /// `=`: an empty initial response.
    Empty,
    /// Base64 text, not yet decoded (alphabet checked).
    Base64(Cow<'a, str>),
}

impl InitialResponse<'_> {
    /// Decodes the response; [`SyntaxError::InvalidBase64`] when it is not base64.
    pub fn decode(&self) -> Result<Vec<u8>, SyntaxError> {
        match self {
            InitialResponse::Empty => Ok(Vec::new()),
            InitialResponse::Base64(b) => decode_base64(b),
        }
    }

    /// Converts borrowed text into owned text.
    pub fn into_owned(self) -> InitialResponse<'static> {
        match self {
            InitialResponse::Empty => InitialResponse::Empty,
            InitialResponse::Base64(b) => InitialResponse::Base64(Cow::Owned(b.into_owned())),
        }
    }
}

/// A client's answer to a `334` challenge during AUTH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResponse {
    /// `*`: the client cancels the exchange (answered with 501, RFC 4954 §4).
    Cancel,
    /// The decoded response (empty for an empty line).
    Data(Vec<u8>),
}

/// Parses an AUTH continuation line (without CRLF).
pub fn parse_auth_response(line: &[u8]) -> Result<AuthResponse, SyntaxError> {
    if line == b"*" {
        return Ok(AuthResponse::Cancel);
    }
    let text = std::str::from_utf8(line).map_err(|_| SyntaxError::InvalidBase64)?;
    decode_base64(text).map(AuthResponse::Data)
}

fn decode_base64(text: &str) -> Result<Vec<u8>, SyntaxError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| SyntaxError::InvalidBase64)
}

/// Encodes `data` as an AUTH response line or initial response.
pub fn encode_base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

impl<'a> Command<'a> {
    /// Parses one command line, without its CRLF.
    ///
    /// The line must already be framed (see [`CommandParser`] for framing and
    /// limits); a CR or LF inside it is an error.
    #[inline]
    pub fn parse(line: &'a [u8]) -> Result<Self, SyntaxError> {
        let line = line_str(line).map_err(|_| SyntaxError::InvalidUtf8)?;
        // No grammar rule admits a control character, so they only need
        // looking for once a line has failed, to name the failure precisely.
        parse_verb(line).map_err(|e| {
            if line.bytes().any(|b| b == b'\r' || b == b'\n') {
                SyntaxError::BareCr
            } else if line.bytes().any(|b| b < 0x20 || b == 0x7f) {
                SyntaxError::ControlCharacter
            } else {
                e
            }
        })
    }

    /// The verb as sent on the wire, e.g. `"MAIL"`.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Ehlo(_) => "EHLO",
            Command::Helo(_) => "HELO",
            Command::Lhlo(_) => "LHLO",
            Command::Mail { .. } => "MAIL",
            Command::Rcpt { .. } => "RCPT",
            Command::Data => "DATA",
            Command::Bdat { .. } => "BDAT",
            Command::Rset => "RSET",
            Command::Noop(_) => "NOOP",
            Command::Quit => "QUIT",
            Command::Vrfy(_) => "VRFY",
            Command::Expn(_) => "EXPN",
            Command::Help(_) => "HELP",
            Command::StartTls => "STARTTLS",
            Command::Auth { .. } => "AUTH",
        }
    }

    /// Converts borrowed text into owned text.
    pub fn into_owned(self) -> OwnedCommand {
        let text = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        match self {
            Command::Ehlo(h) => Command::Ehlo(h.into_owned()),
            Command::Helo(h) => Command::Helo(h.into_owned()),
            Command::Lhlo(h) => Command::Lhlo(h.into_owned()),
            Command::Mail { from, params } => Command::Mail {
                from: from.into_owned(),
                params: params.into_owned(),
            },
            Command::Rcpt { to, params } => Command::Rcpt {
                to: to.into_owned(),
                params: params.into_owned(),
            },
            Command::Data => Command::Data,
            Command::Bdat { size, last } => Command::Bdat { size, last },
            Command::Rset => Command::Rset,
            Command::Noop(t) => Command::Noop(t.map(text)),
            Command::Quit => Command::Quit,
            Command::Vrfy(t) => Command::Vrfy(text(t)),
            Command::Expn(t) => Command::Expn(text(t)),
            Command::Help(t) => Command::Help(t.map(text)),
            Command::StartTls => Command::StartTls,
            Command::Auth {
                mechanism,
                initial_response,
            } => Command::Auth {
                mechanism: mechanism.into_owned(),
                initial_response: initial_response.map(InitialResponse::into_owned),
            },
        }
    }

    /// Appends the wire form, CRLF included, to `out`.
    ///
    /// Fails, leaving `out` as it was, when a field built by hand would put a
    /// CR, LF or NUL on the line: an encoded command is always exactly one
    /// line, so it can never smuggle a second command.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        self.encode_unchecked(out);
        let line = &out[start..out.len() - 2];
        if memchr::memchr3(b'\r', b'\n', 0, line).is_some() {
            out.truncate(start);
            return Err(EncodeError);
        }
        Ok(())
    }

    /// The wire form as a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(64);
        self.encode(&mut out)?;
        Ok(out)
    }

    fn encode_unchecked(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        match self {
            Command::Ehlo(h) => {
                let _ = write!(out, "EHLO {h}");
            }
            Command::Helo(h) => {
                let _ = write!(out, "HELO {h}");
            }
            Command::Lhlo(h) => {
                let _ = write!(out, "LHLO {h}");
            }
            Command::Mail { from, params } => {
                let _ = write!(out, "MAIL FROM:{from}");
                params.encode(out);
            }
            Command::Rcpt { to, params } => {
                let _ = write!(out, "RCPT TO:{to}");
                params.encode(out);
            }
            Command::Data => out.extend_from_slice(b"DATA"),
            Command::Bdat { size, last } => {
                out.extend_from_slice(b"BDAT ");
                push_u64(out, *size);
                if *last {
                    out.extend_from_slice(b" LAST");
                }
            }
            Command::Rset => out.extend_from_slice(b"RSET"),
            Command::Noop(t) => text_command(out, "NOOP", t.as_deref()),
            Command::Quit => out.extend_from_slice(b"QUIT"),
            Command::Vrfy(t) => text_command(out, "VRFY", Some(t)),
            Command::Expn(t) => text_command(out, "EXPN", Some(t)),
            Command::Help(t) => text_command(out, "HELP", t.as_deref()),
            Command::StartTls => out.extend_from_slice(b"STARTTLS"),
            Command::Auth {
                mechanism,
                initial_response,
            } => {
                out.extend_from_slice(b"AUTH ");
                out.extend_from_slice(mechanism.as_str().as_bytes());
                match initial_response {
                    None => {}
                    Some(InitialResponse::Empty) => out.extend_from_slice(b" ="),
                    Some(InitialResponse::Base64(b)) => {
                        out.push(b' ');
                        out.extend_from_slice(b.as_bytes());
                    }
                }
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

fn text_command(out: &mut Vec<u8>, verb: &str, text: Option<&str>) {
    out.extend_from_slice(verb.as_bytes());
    if let Some(t) = text {
        out.push(b' ');
        out.extend_from_slice(t.as_bytes());
    }
}

/// A hand-built command would not encode to a single line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("command would contain CR, LF or NUL on the wire")]
pub struct EncodeError;

/// Lower-cases four ASCII bytes at once. Only letters change under `| 0x20`
/// into letters, so the result equals a lower-case keyword exactly when the
/// input is that keyword in any case.
#[inline]
fn keyword(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) | 0x2020_2020
}

const fn kw(s: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*s)
}

#[inline]
fn parse_verb(line: &str) -> Result<Command<'_>, SyntaxError> {
    let b = line.as_bytes();
    if b.len() < 4 {
        return Err(SyntaxError::UnknownCommand);
    }
    // What follows the verb: nothing, or SP and the arguments.
    let args = match b.get(4) {
        None => None,
        Some(b' ') => Some(&line[5..]),
        Some(_) => {
            if keyword(b) == kw(b"star") && b.len() >= 8 && keyword(&b[4..8]) == kw(b"ttls") {
                return match b.get(8) {
                    None => Ok(Command::StartTls),
                    Some(b' ') => Err(SyntaxError::InvalidArgument("STARTTLS takes no arguments")),
                    Some(_) => Err(SyntaxError::UnknownCommand),
                };
            }
            return Err(SyntaxError::UnknownCommand);
        }
    };
    const EHLO: u32 = kw(b"ehlo");
    const HELO: u32 = kw(b"helo");
    const LHLO: u32 = kw(b"lhlo");
    const MAIL: u32 = kw(b"mail");
    const RCPT: u32 = kw(b"rcpt");
    const DATA: u32 = kw(b"data");
    const BDAT: u32 = kw(b"bdat");
    const RSET: u32 = kw(b"rset");
    const NOOP: u32 = kw(b"noop");
    const QUIT: u32 = kw(b"quit");
    const VRFY: u32 = kw(b"vrfy");
    const EXPN: u32 = kw(b"expn");
    const HELP: u32 = kw(b"help");
    const AUTH: u32 = kw(b"auth");
    match keyword(b) {
        MAIL => parse_mail(args),
        RCPT => parse_rcpt(args),
        DATA => no_args(args, || Command::Data, "DATA takes no arguments"),
        BDAT => parse_bdat(args),
        EHLO => parse_hello(args).map(Command::Ehlo),
        HELO => parse_hello(args).map(Command::Helo),
        LHLO => parse_hello(args).map(Command::Lhlo),
        RSET => no_args(args, || Command::Rset, "RSET takes no arguments"),
        NOOP => optional_text(args).map(Command::Noop),
        QUIT => no_args(args, || Command::Quit, "QUIT takes no arguments"),
        VRFY => required_text(args, "VRFY needs an argument").map(Command::Vrfy),
        EXPN => required_text(args, "EXPN needs an argument").map(Command::Expn),
        HELP => optional_text(args).map(Command::Help),
        AUTH => parse_auth(args),
        _ => Err(SyntaxError::UnknownCommand),
    }
}

#[inline(always)]
fn no_args(
    args: Option<&str>,
    command: fn() -> Command<'static>,
    why: &'static str,
) -> Result<Command<'static>, SyntaxError> {
    match args {
        None => Ok(command()),
        Some(_) => Err(SyntaxError::InvalidArgument(why)),
    }
}

fn optional_text(args: Option<&str>) -> Result<Option<Cow<'_, str>>, SyntaxError> {
    match args {
        None => Ok(None),
        Some(t) => required_text(Some(t), "empty argument").map(Some),
    }
}

fn required_text<'a>(
    args: Option<&'a str>,
    why: &'static str,
) -> Result<Cow<'a, str>, SyntaxError> {
    match args {
        Some(t) if !t.is_empty() && all_in(t, &TEXT) => Ok(Cow::Borrowed(t)),
        Some(t) if !t.is_empty() => Err(SyntaxError::InvalidArgument(
            "invalid character in argument",
        )),
        _ => Err(SyntaxError::InvalidArgument(why)),
    }
}

fn parse_hello(args: Option<&str>) -> Result<Host<'_>, SyntaxError> {
    let Some(args) = args.filter(|a| !a.is_empty()) else {
        return Err(SyntaxError::InvalidArgument(
            "a domain or address literal is required",
        ));
    };
    match host(args) {
        Ok(("", h)) => Ok(h),
        Ok(_) => Err(SyntaxError::InvalidArgument(
            "expected a single domain or address literal",
        )),
        Err(nom::Err::Error(w) | nom::Err::Failure(w)) => Err(SyntaxError::InvalidArgument(w.0)),
        Err(nom::Err::Incomplete(_)) => Err(SyntaxError::InvalidArgument("incomplete domain")),
    }
}

/// Strips a case-insensitive `prefix` and at most one SP after it.
#[inline]
fn strip_keyword<'a>(args: Option<&'a str>, prefix: &str) -> Option<&'a str> {
    let a = args?;
    let head = a.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = &a[prefix.len()..];
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

#[inline]
fn parse_mail(args: Option<&str>) -> Result<Command<'_>, SyntaxError> {
    let rest =
        strip_keyword(args, "FROM:").ok_or(SyntaxError::Syntax("expected MAIL FROM:<address>"))?;
    let (rest, from) = reverse_path(rest).map_err(|e| match e {
        nom::Err::Error(w) | nom::Err::Failure(w) => SyntaxError::InvalidSender(w.0),
        nom::Err::Incomplete(_) => SyntaxError::InvalidSender("incomplete"),
    })?;
    let params = parse_mail_params(rest)?;
    if from.is_utf8() && !params.smtputf8 {
        return Err(SyntaxError::Utf8WithoutSmtputf8);
    }
    Ok(Command::Mail { from, params })
}

#[inline]
fn parse_rcpt(args: Option<&str>) -> Result<Command<'_>, SyntaxError> {
    let rest =
        strip_keyword(args, "TO:").ok_or(SyntaxError::Syntax("expected RCPT TO:<address>"))?;
    let (rest, to) = forward_path(rest).map_err(|e| match e {
        nom::Err::Error(w) | nom::Err::Failure(w) => SyntaxError::InvalidRecipient(w.0),
        nom::Err::Incomplete(_) => SyntaxError::InvalidRecipient("incomplete"),
    })?;
    let params = parse_rcpt_params(rest)?;
    Ok(Command::Rcpt { to, params })
}

fn parse_bdat(args: Option<&str>) -> Result<Command<'_>, SyntaxError> {
    let args = args.ok_or(SyntaxError::InvalidArgument("BDAT needs a chunk size"))?;
    let (size, last) = match args.split_once(' ') {
        None => (args, false),
        Some((size, marker)) if marker.eq_ignore_ascii_case("LAST") => (size, true),
        Some(_) => return Err(SyntaxError::InvalidArgument("expected BDAT size [LAST]")),
    };
    if size.is_empty() || size.len() > 20 || !size.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SyntaxError::InvalidArgument(
            "BDAT chunk size is not a number",
        ));
    }
    let size = size
        .parse()
        .map_err(|_| SyntaxError::InvalidArgument("BDAT chunk size too large"))?;
    Ok(Command::Bdat { size, last })
}

fn parse_auth(args: Option<&str>) -> Result<Command<'_>, SyntaxError> {
    let args = args.ok_or(SyntaxError::InvalidArgument("AUTH needs a mechanism"))?;
    let (mech, ir) = match args.split_once(' ') {
        None => (args, None),
        Some((m, ir)) => (m, Some(ir)),
    };
    let mechanism = Mechanism::parse(mech)?;
    let initial_response = match ir {
        None => None,
        Some("=") => Some(InitialResponse::Empty),
        Some(b64) => {
            let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
            let body = b64.trim_end_matches('=');
            if b64.is_empty() || b64.len() - body.len() > 2 || !body.bytes().all(alphabet) {
                return Err(SyntaxError::InvalidBase64);
            }
            Some(InitialResponse::Base64(Cow::Borrowed(b64)))
        }
    };
    Ok(Command::Auth {
        mechanism,
        initial_response,
    })
}

/// The outcome of [`CommandParser::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A command; drop `consumed` bytes from the buffer.
    Command {
        /// The command, borrowing from the buffer.
        command: Command<'a>,
        /// Bytes used, CRLF included.
        consumed: usize,
    },
    /// A line the grammar refused: reply with [`SyntaxError::reply`], drop
    /// `consumed` bytes and go on.
    Error {
        /// Why the line was refused.
        error: SyntaxError,
        /// Bytes used.
        consumed: usize,
    },
    /// No complete line yet: read more. `consumed` bytes (a discarded
    /// over-long line) can be dropped already.
    Incomplete {
        /// Bytes that can be dropped.
        consumed: usize,
    },
}

/// Incremental command parser: frames lines (CRLF only, bounded) and parses
/// them into [`Command`]s.
///
/// ```
/// use postern_proto::{Command, CommandParser, Parsed};
///
/// let mut parser = CommandParser::default();
/// let mut buf: &[u8] = b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT";
/// let mut verbs = Vec::new();
/// loop {
///     match parser.parse(buf) {
///         Parsed::Command { command, consumed } => {
///             verbs.push(command.verb());
///             buf = &buf[consumed..];
///         }
///         Parsed::Error { error, consumed } => {
///             let _reply = error.reply();
///             buf = &buf[consumed..];
///         }
///         Parsed::Incomplete { consumed } => {
///             buf = &buf[consumed..];
///             break;
///         }
///     }
/// }
/// assert_eq!(verbs, ["EHLO", "MAIL"]);
/// assert_eq!(buf, b"RCPT"); // waits for the rest of the line
/// ```
#[derive(Debug, Clone, Default)]
pub struct CommandParser {
    framer: LineFramer,
    limits: LineLimits,
}

impl CommandParser {
    /// A parser with the given line limits.
    pub fn new(limits: LineLimits) -> Self {
        Self {
            framer: LineFramer::new(),
            limits,
        }
    }

    /// A parser that also takes a bare LF as the end of a line, for
    /// legacy clients only (see [`LineFramer::with_bare_lf`]).
    pub fn with_bare_lf(mut self, allow: bool) -> Self {
        self.framer = self.framer.with_bare_lf(allow);
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> LineLimits {
        self.limits
    }

    /// Forgets partial-line state, e.g. when the stream restarts after STARTTLS.
    pub fn reset(&mut self) {
        self.framer.reset();
    }

    /// Parses the next command at the front of `buf`.
    ///
    /// AUTH lines may be longer than other commands (up to
    /// [`LineLimits::auth`]); every other line is held to
    /// [`LineLimits::command`].
    #[inline]
    pub fn parse<'b>(&mut self, buf: &'b [u8]) -> Parsed<'b> {
        let limit = if self.limits.auth > self.limits.command && starts_with_auth(buf) {
            self.limits.auth
        } else {
            self.limits.command
        };
        // Command::parse reports a CR inside the line as BareCr itself.
        match self.framer.frame_allowing_cr(buf, limit) {
            Frame::Line {
                start,
                len,
                consumed,
            } => {
                let line = &buf[start..start + len];
                match Command::parse(line) {
                    Ok(command) => Parsed::Command { command, consumed },
                    Err(error) => Parsed::Error { error, consumed },
                }
            }
            Frame::Incomplete { consumed } => Parsed::Incomplete { consumed },
            Frame::Error { error, consumed } => Parsed::Error { error, consumed },
        }
    }

    /// Frames one AUTH continuation line (a reply to `334`), held to
    /// [`LineLimits::auth`], and decodes it.
    pub fn parse_auth_response(&mut self, buf: &[u8]) -> AuthParsed {
        match self.framer.frame(buf, self.limits.auth) {
            Frame::Line {
                start,
                len,
                consumed,
            } => AuthParsed::Response {
                response: parse_auth_response(&buf[start..start + len]),
                consumed,
            },
            Frame::Incomplete { consumed } => AuthParsed::Incomplete { consumed },
            Frame::Error { error, consumed } => AuthParsed::Response {
                response: Err(error),
                consumed,
            },
        }
    }
}

/// The outcome of [`CommandParser::parse_auth_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthParsed {
    /// A complete line, decoded or refused; drop `consumed` bytes.
    Response {
        /// The decoded response or why it was refused.
        response: Result<AuthResponse, SyntaxError>,
        /// Bytes used.
        consumed: usize,
    },
    /// No complete line yet; `consumed` bytes can be dropped.
    Incomplete {
        /// Bytes that can be dropped.
        consumed: usize,
    },
}

fn starts_with_auth(buf: &[u8]) -> bool {
    buf.len() >= 5 && keyword(buf) == kw(b"auth") && buf[4] == b' '
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{Domain, Mailbox};

    fn parse(s: &str) -> Result<Command<'_>, SyntaxError> {
        Command::parse(s.as_bytes())
    }

    fn round_trip(s: &str) {
        let c = parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        let wire = c.to_vec().unwrap();
        let again = Command::parse(&wire[..wire.len() - 2]).unwrap();
        assert_eq!(again, c, "{s}");
    }

    #[test]
    fn every_verb_parses_and_round_trips() {
        for s in [
            "EHLO client.example.org",
            "ehlo [192.0.2.7]",
            "HELO localhost",
            "LHLO [IPv6:::1]",
            "MAIL FROM:<>",
            "MAIL FROM:<a@b.c> SIZE=10 BODY=8BITMIME",
            "RCPT TO:<Postmaster>",
            "RCPT TO:<user@example.com> NOTIFY=FAILURE ORCPT=rfc822;user@example.com",
            "DATA",
            "BDAT 1000",
            "BDAT 0 LAST",
            "RSET",
            "NOOP",
            "NOOP anything goes",
            "QUIT",
            "VRFY postmaster",
            "EXPN list",
            "HELP",
            "HELP MAIL",
            "STARTTLS",
            "AUTH PLAIN",
            "AUTH PLAIN =",
            "AUTH PLAIN AHVzZXIAcGFzcw==",
            "AUTH x-custom",
        ] {
            round_trip(s);
        }
    }

    #[test]
    fn mail_from_fields() {
        let Command::Mail { from, params } = parse("mail from: <joe@example.org> SIZE=99").unwrap()
        else {
            panic!("not MAIL")
        };
        let ReversePath::Mailbox(m) = from else {
            panic!("null")
        };
        assert_eq!(m.domain().map(Domain::as_str), Some("example.org"));
        assert_eq!(params.size, Some(99));
    }

    #[test]
    fn utf8_sender_requires_smtputf8() {
        assert_eq!(
            parse("MAIL FROM:<jörg@example.org>"),
            Err(SyntaxError::Utf8WithoutSmtputf8)
        );
        assert!(parse("MAIL FROM:<jörg@exämple.org> SMTPUTF8").is_ok());
        assert_eq!(
            Command::parse(b"MAIL FROM:<j\xffrg@example.org>"),
            Err(SyntaxError::InvalidUtf8)
        );
    }

    #[test]
    fn grammar_errors_are_specific() {
        let cases: &[(&str, SyntaxError)] = &[
            ("", SyntaxError::UnknownCommand),
            ("FOO", SyntaxError::UnknownCommand),
            ("MAILX FROM:<a@b.c>", SyntaxError::UnknownCommand),
            (
                "STARTTLS now",
                SyntaxError::InvalidArgument("STARTTLS takes no arguments"),
            ),
            ("STARTTLSX", SyntaxError::UnknownCommand),
            (
                "DATA x",
                SyntaxError::InvalidArgument("DATA takes no arguments"),
            ),
            (
                "QUIT now",
                SyntaxError::InvalidArgument("QUIT takes no arguments"),
            ),
            (
                "EHLO",
                SyntaxError::InvalidArgument("a domain or address literal is required"),
            ),
            (
                "EHLO a b",
                SyntaxError::InvalidArgument("expected a single domain or address literal"),
            ),
            (
                "MAIL TO:<a@b.c>",
                SyntaxError::Syntax("expected MAIL FROM:<address>"),
            ),
            (
                "MAIL FROM:a@b.c",
                SyntaxError::InvalidSender("expected '<'"),
            ),
            (
                "RCPT TO:<>",
                SyntaxError::InvalidRecipient("the null path is not a valid recipient"),
            ),
            (
                "RCPT TO:<a@b.c",
                SyntaxError::InvalidRecipient("expected '>' after the address"),
            ),
            (
                "BDAT",
                SyntaxError::InvalidArgument("BDAT needs a chunk size"),
            ),
            (
                "BDAT x",
                SyntaxError::InvalidArgument("BDAT chunk size is not a number"),
            ),
            (
                "BDAT 1 FIRST",
                SyntaxError::InvalidArgument("expected BDAT size [LAST]"),
            ),
            (
                "VRFY",
                SyntaxError::InvalidArgument("VRFY needs an argument"),
            ),
            (
                "AUTH",
                SyntaxError::InvalidArgument("AUTH needs a mechanism"),
            ),
            (
                "AUTH PL@IN",
                SyntaxError::InvalidArgument("malformed SASL mechanism name"),
            ),
            ("AUTH PLAIN a*b", SyntaxError::InvalidBase64),
            ("NOOP \u{1}", SyntaxError::ControlCharacter),
            ("NOOP a\rb", SyntaxError::BareCr),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line).as_ref(), Err(want), "{line:?}");
        }
    }

    #[test]
    fn auth_fields_and_responses() {
        let Command::Auth {
            mechanism,
            initial_response,
        } = parse("auth plain AHUAcA==").unwrap()
        else {
            panic!("not AUTH")
        };
        assert_eq!(mechanism, Mechanism::Plain);
        assert_eq!(initial_response.unwrap().decode().unwrap(), b"\0u\0p");
        assert_eq!(parse_auth_response(b"*"), Ok(AuthResponse::Cancel));
        assert_eq!(parse_auth_response(b""), Ok(AuthResponse::Data(vec![])));
        assert_eq!(
            parse_auth_response(b"dXNlcg=="),
            Ok(AuthResponse::Data(b"user".to_vec()))
        );
        assert_eq!(parse_auth_response(b"!!"), Err(SyntaxError::InvalidBase64));
        assert_eq!(
            Mechanism::parse("scram-sha-256"),
            Ok(Mechanism::ScramSha256)
        );
        assert_eq!(
            Mechanism::parse("x-y").unwrap(),
            Mechanism::Other(Cow::Owned("X-Y".into()))
        );
    }

    #[test]
    fn encode_refuses_injected_fields() {
        let c = Command::Noop(Some("x\r\nRSET".into()));
        let mut out = b"keep".to_vec();
        assert_eq!(c.encode(&mut out), Err(EncodeError));
        assert_eq!(out, b"keep");
        let m = Mailbox::parse("a@b.c").unwrap();
        let ok = Command::Rcpt {
            to: ForwardPath::Mailbox(m),
            params: RcptParams::default(),
        };
        assert_eq!(ok.to_vec().unwrap(), b"RCPT TO:<a@b.c>\r\n");
    }

    #[test]
    fn parser_uses_the_auth_limit_for_auth_lines() {
        let mut p = CommandParser::new(LineLimits {
            command: 32,
            auth: 128,
        });
        let token = "A".repeat(80);
        let auth = format!("AUTH XOAUTH2 {token}\r\n");
        assert!(matches!(p.parse(auth.as_bytes()), Parsed::Command { .. }));
        let noop = format!("NOOP {token}\r\nQUIT\r\n");
        assert!(matches!(
            p.parse(noop.as_bytes()),
            Parsed::Error {
                error: SyntaxError::LineTooLong { limit: 32 },
                consumed: 87
            }
        ));
        let cont = format!("{token}\r\n");
        assert!(matches!(
            p.parse_auth_response(cont.as_bytes()),
            AuthParsed::Response {
                response: Ok(AuthResponse::Data(_)),
                ..
            }
        ));
    }
}
