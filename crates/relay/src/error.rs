//! Delivery errors, classified like lettre's: [`Error::is_transient`] (retry
//! later) and [`Error::is_permanent`] (bounce).
//!
//! The rule: a server reply decides by its class (4yz transient, 5yz
//! permanent). Failures this client detects itself are permanent only when
//! they are properties of the message that no retry to the same server can
//! change (too big, 8-bit or UTF-8 or binary content the server cannot take,
//! bare line endings refused by option, a domain that does not exist or
//! accepts no mail). Everything about the connection, TLS, DNS outages and
//! local configuration is transient: an operator can fix it, and a bounce
//! would lose the message.

use std::fmt;

use postern_proto::{EhloError, Reply, ReplyError};

use crate::policy::TlsVersion;

/// The step of the SMTP dialogue an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Looking up MX or address records.
    Resolve,
    /// Opening the TCP connection.
    Connect,
    /// Waiting for the server's greeting.
    Greeting,
    /// `EHLO`.
    Ehlo,
    /// `HELO`.
    Helo,
    /// `STARTTLS`.
    StartTls,
    /// The TLS handshake.
    Handshake,
    /// `AUTH`.
    Auth,
    /// Between messages, nothing outstanding.
    Idle,
    /// `RSET`.
    Rset,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// `DATA` (the reply before the body).
    Data,
    /// The body and its final reply (after `CRLF.CRLF`).
    DataEnd,
    /// `BDAT` chunks.
    Bdat,
    /// `QUIT`.
    Quit,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Resolve => "DNS lookup",
            Stage::Connect => "connect",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::Handshake => "TLS handshake",
            Stage::Auth => "AUTH",
            Stage::Idle => "idle connection",
            Stage::Rset => "RSET",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::DataEnd => "end of data",
            Stage::Bdat => "BDAT",
            Stage::Quit => "QUIT",
        })
    }
}

/// Why a message, a recipient or a connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a negative (or unexpected) reply.
    #[error("server refused {stage}: {reply}")]
    Rejected {
        /// Where.
        stage: Stage,
        /// The reply, as received.
        reply: Reply<'static>,
    },
    /// Policy requires TLS and the server does not offer STARTTLS.
    #[error("policy requires TLS but the server does not offer STARTTLS; nothing was sent")]
    TlsUnavailable,
    /// Policy requires TLS and the server refused STARTTLS.
    #[error("policy requires TLS but the server refused STARTTLS ({0}); nothing was sent")]
    StartTlsRefused(Reply<'static>),
    /// The TLS handshake failed (including a version outside the policy's
    /// set, or a certificate that does not verify).
    #[error("TLS handshake failed: {0}")]
    TlsHandshake(String),
    /// The server (or something on the path) sent bytes after its 220 reply
    /// to STARTTLS, before the handshake: response injection (RFC 3207 §5,
    /// CVE-2011-0411 class). The connection was aborted.
    #[error(
        "{bytes} octets received after the 220 reply to STARTTLS; connection aborted (response injection)"
    )]
    ResponseInjection {
        /// How many octets followed the 220 reply.
        bytes: usize,
    },
    /// The policy's versions leave nothing this stack can speak.
    #[error("no usable TLS version: the policy allows {}, which rustls cannot speak (it speaks TLSv1.2 and TLSv1.3)", crate::policy::join(.requested))]
    NoUsableTlsVersion {
        /// The versions the policy named.
        requested: Vec<TlsVersion>,
    },
    /// Credentials are configured but the connection is not encrypted and
    /// plaintext AUTH was not explicitly allowed.
    #[error("refusing to send credentials over an unencrypted connection")]
    AuthRequiresTls,
    /// Credentials are configured but the server offers neither PLAIN nor LOGIN.
    #[error("the server offers no AUTH mechanism this client speaks (PLAIN, LOGIN)")]
    AuthUnavailable,
    /// No reply in time (RFC 5321 §4.5.3.2).
    #[error("timed out waiting during {0}")]
    Timeout(Stage),
    /// A reply could not be parsed.
    #[error("malformed reply during {stage}: {error}")]
    MalformedReply {
        /// Where.
        stage: Stage,
        /// What was wrong.
        error: ReplyError,
    },
    /// The EHLO reply could not be read as one.
    #[error("malformed EHLO reply: {0}")]
    MalformedEhlo(EhloError),
    /// The server broke the protocol in another way (an unsolicited reply,
    /// a 354 where none belongs...).
    #[error("protocol violation during {stage}: {what}")]
    Protocol {
        /// Where.
        stage: Stage,
        /// What happened.
        what: String,
    },
    /// The server closed the connection.
    #[error("connection closed by the server during {0}")]
    Closed(Stage),
    /// A socket error.
    #[error("I/O error during {stage}: {message}")]
    Io {
        /// Where.
        stage: Stage,
        /// The operating system's message.
        message: String,
    },
    /// The message is larger than the server's advertised SIZE (RFC 1870).
    #[error("message of {size} octets exceeds the server's limit of {limit} octets")]
    MessageTooBig {
        /// The message size.
        size: u64,
        /// The server's limit.
        limit: u64,
    },
    /// The body has 8-bit octets and the server does not offer 8BITMIME.
    #[error("the body contains 8-bit data and the server does not offer 8BITMIME")]
    EightBitUnsupported,
    /// An address is UTF-8 and the server does not offer SMTPUTF8.
    #[error("an address needs SMTPUTF8 and the server does not offer it")]
    SmtpUtf8Unsupported,
    /// The body is BINARYMIME and the server lacks CHUNKING or BINARYMIME.
    #[error("the body is BINARYMIME and the server does not offer CHUNKING and BINARYMIME")]
    BinaryUnsupported,
    /// The body has a bare CR or LF and the options refuse to normalise it.
    #[error("the body contains a bare CR or LF and normalisation is disabled")]
    BareLineEnding,
    /// A command could not be encoded as one line.
    #[error("cannot encode {0} as a single command line")]
    Encode(Stage),
    /// The domain does not exist (NXDOMAIN).
    #[error("domain {0} does not exist")]
    NoSuchDomain(String),
    /// The domain publishes a null MX (RFC 7505): it accepts no mail.
    #[error("domain {0} accepts no mail (null MX, RFC 7505)")]
    NullMx(String),
    /// A DNS lookup failed (server failure, timeout) or found no address.
    #[error("DNS lookup failed: {0}")]
    Resolve(String),
    /// Invalid local configuration (a bad server name, anchors...).
    #[error("configuration error: {0}")]
    Config(String),
}

impl Error {
    /// Retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        !self.is_permanent()
    }

    /// Retrying the same message will not succeed.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Rejected { reply, .. } => reply.is_permanent(),
            Error::MessageTooBig { .. }
            | Error::EightBitUnsupported
            | Error::SmtpUtf8Unsupported
            | Error::BinaryUnsupported
            | Error::BareLineEnding
            | Error::Encode(_)
            | Error::NoSuchDomain(_)
            | Error::NullMx(_) => true,
            _ => false,
        }
    }

    /// The server's reply, when the error is one.
    pub fn reply(&self) -> Option<&Reply<'static>> {
        match self {
            Error::Rejected { reply, .. } | Error::StartTlsRefused(reply) => Some(reply),
            _ => None,
        }
    }
}
