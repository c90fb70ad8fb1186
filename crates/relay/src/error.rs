//! Delivery errors, classified like lettre's: [`RelayError::is_transient`] (retry
//! later) and [`RelayError::is_permanent`] (bounce), both read from
//! [`RelayError::status`], the RFC 3463 enhanced status a delivery status
//! notification reports. The class of the status decides: 4 is transient,
//! 5 permanent, so the two can never disagree.
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

use postern_proto::{EhloError, EnhancedCode, Reply, ReplyError};

use postern_proto::TlsVersion;

mod dane;

pub use dane::DaneRefusal;

/// The step of the SMTP dialogue an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
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

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Resolve => "DNS lookup",
            Phase::Connect => "connect",
            Phase::Greeting => "greeting",
            Phase::Ehlo => "EHLO",
            Phase::Helo => "HELO",
            Phase::StartTls => "STARTTLS",
            Phase::Handshake => "TLS handshake",
            Phase::Auth => "AUTH",
            Phase::Idle => "idle connection",
            Phase::Rset => "RSET",
            Phase::Mail => "MAIL FROM",
            Phase::Rcpt => "RCPT TO",
            Phase::Data => "DATA",
            Phase::DataEnd => "end of data",
            Phase::Bdat => "BDAT",
            Phase::Quit => "QUIT",
        })
    }
}

/// Why a message, a recipient or a connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The server answered with a negative (or unexpected) reply.
    #[error("server refused {phase}: {reply}")]
    Rejected {
        /// Where.
        phase: Phase,
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
    Timeout(Phase),
    /// A reply could not be parsed.
    #[error("malformed reply during {phase}: {error}")]
    MalformedReply {
        /// Where.
        phase: Phase,
        /// What was wrong.
        error: ReplyError,
    },
    /// The server sent more than
    /// [`SessionConfig::max_pending_input`](crate::SessionConfig::max_pending_input)
    /// octets without finishing a reply (a broken or hostile server).
    #[error("reply during {phase} exceeds {limit} octets without ending")]
    ReplyTooLong {
        /// Where.
        phase: Phase,
        /// The bound, in octets.
        limit: usize,
    },
    /// The EHLO reply could not be read as one.
    #[error("malformed EHLO reply: {0}")]
    MalformedEhlo(EhloError),
    /// The server broke the protocol in another way (an unsolicited reply,
    /// a 354 where none belongs...).
    #[error("protocol violation during {phase}: {what}")]
    Protocol {
        /// Where.
        phase: Phase,
        /// What happened.
        what: String,
    },
    /// The server closed the connection.
    #[error("connection closed by the server during {0}")]
    Closed(Phase),
    /// A socket error.
    #[error("I/O error during {phase}: {message}")]
    Io {
        /// Where.
        phase: Phase,
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
    /// The message asked for REQUIRETLS (RFC 8689) and this hop cannot
    /// honour it: the connection is not authenticated TLS (verified PKIX or
    /// DANE), or the server does not offer REQUIRETLS. Never relaxed:
    /// status 5.7.30 (RFC 8689 §5).
    #[error("REQUIRETLS cannot be met: {0}")]
    RequireTlsUnmet(&'static str),
    /// The body is BINARYMIME and the server lacks CHUNKING or BINARYMIME.
    #[error("the body is BINARYMIME and the server does not offer CHUNKING and BINARYMIME")]
    BinaryUnsupported,
    /// The body has a bare CR or LF and the options refuse to normalise it.
    #[error("the body contains a bare CR or LF and normalisation is disabled")]
    BareLineEnding,
    /// A command could not be encoded as one line.
    #[error("cannot encode {0} as a single command line")]
    Encode(Phase),
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
    /// DANE deferred the delivery with nothing sent (RFC 7672).
    #[error("DANE: {0}")]
    Dane(DaneRefusal),
    /// The domain's MTA-STS policy is `enforce` and no MX host may be
    /// used under it (RFC 8461 §5: none matches the policy's `mx`
    /// patterns). Transient: the policy or the MX records may change, and
    /// a failed delivery under `enforce` is retried, not bounced at once
    /// (§5.1).
    #[error("MTA-STS: no MX host of {domain} matches its enforced policy")]
    StsNoMatchingMx {
        /// The recipient domain.
        domain: String,
    },
}

/// Builds a status code known valid when the constant is evaluated, at
/// compile time.
const fn status(class: u8, subject: u16, detail: u16) -> EnhancedCode {
    match EnhancedCode::new(class, subject, detail) {
        Some(code) => code,
        None => panic!("invalid RFC 3463 status"),
    }
}

// RFC 3463 §3 (and RFC 7505 for X.1.10): the statuses of failures no
// server reply describes.
const OTHER_TRANSIENT: EnhancedCode = status(4, 0, 0);
const OTHER_PERMANENT: EnhancedCode = status(5, 0, 0);
const BAD_DESTINATION_SYSTEM: EnhancedCode = status(5, 1, 2);
const NULL_MX: EnhancedCode = status(5, 1, 10);
const SYSTEM_NOT_CAPABLE: EnhancedCode = status(4, 3, 5);
const MESSAGE_TOO_BIG: EnhancedCode = status(5, 3, 4);
const NO_ANSWER: EnhancedCode = status(4, 4, 2);
const ROUTING_SERVER_FAILURE: EnhancedCode = status(4, 4, 3);
const PROTOCOL: EnhancedCode = status(4, 5, 0);
const SYNTAX: EnhancedCode = status(5, 5, 2);
const CONTENT: EnhancedCode = status(5, 6, 0);
const CONVERSION_REQUIRED: EnhancedCode = status(5, 6, 3);
const NON_ASCII_ADDRESS: EnhancedCode = status(5, 6, 7);
const SECURITY: EnhancedCode = status(4, 7, 0);
const SECURITY_NOT_SUPPORTED: EnhancedCode = status(4, 7, 4);
const CRYPTOGRAPHIC_FAILURE: EnhancedCode = status(4, 7, 5);
/// RFC 8689 §7.3: "REQUIRETLS support required".
const REQUIRETLS_REQUIRED: EnhancedCode = status(5, 7, 30);

/// The status a server's reply states: its enhanced code when it has one
/// of the reply's class, else the class with `.0.0` (RFC 3463 §3.1). A
/// reply that is neither 4yz nor 5yz (a positive reply where a negative
/// one makes no sense) is a protocol fault, transient.
fn reply_status(reply: &Reply<'_>) -> EnhancedCode {
    let class = reply.code().class();
    let fallback = match class {
        4 => OTHER_TRANSIENT,
        5 => OTHER_PERMANENT,
        _ => return PROTOCOL,
    };
    reply
        .enhanced()
        .filter(|e| e.class() == class)
        .unwrap_or(fallback)
}

impl RelayError {
    /// The RFC 3463 enhanced status of the failure, for a delivery status
    /// notification or a log: the server's own when a reply decided (its
    /// enhanced code, or its class with `.0.0`), else the status of what
    /// this client found. Its class is 4 or 5 and decides
    /// [`is_transient`](Self::is_transient) and
    /// [`is_permanent`](Self::is_permanent).
    pub fn status(&self) -> EnhancedCode {
        match self {
            RelayError::Rejected { reply, .. } => reply_status(reply),
            // What failed is this relay's policy, which is transient
            // whatever the server answered; its own 4yz status is kept as
            // the more precise one.
            RelayError::StartTlsRefused(reply) => reply
                .enhanced()
                .filter(|e| e.class() == 4)
                .unwrap_or(SECURITY_NOT_SUPPORTED),
            RelayError::TlsUnavailable => SECURITY_NOT_SUPPORTED,
            RelayError::TlsHandshake(_)
            | RelayError::ResponseInjection { .. }
            | RelayError::NoUsableTlsVersion { .. } => CRYPTOGRAPHIC_FAILURE,
            RelayError::AuthRequiresTls | RelayError::AuthUnavailable => SECURITY,
            RelayError::Timeout(_) | RelayError::Closed(_) | RelayError::Io { .. } => NO_ANSWER,
            RelayError::MalformedReply { .. }
            | RelayError::ReplyTooLong { .. }
            | RelayError::MalformedEhlo(_)
            | RelayError::Protocol { .. } => PROTOCOL,
            RelayError::MessageTooBig { .. } => MESSAGE_TOO_BIG,
            RelayError::EightBitUnsupported | RelayError::BinaryUnsupported => CONVERSION_REQUIRED,
            RelayError::SmtpUtf8Unsupported => NON_ASCII_ADDRESS,
            RelayError::RequireTlsUnmet(_) => REQUIRETLS_REQUIRED,
            RelayError::BareLineEnding => CONTENT,
            RelayError::Encode(_) => SYNTAX,
            RelayError::NoSuchDomain(_) => BAD_DESTINATION_SYSTEM,
            RelayError::NullMx(_) => NULL_MX,
            RelayError::Resolve(_) => ROUTING_SERVER_FAILURE,
            RelayError::Config(_) => SYSTEM_NOT_CAPABLE,
            RelayError::Dane(DaneRefusal::NotAuthenticated { .. })
            | RelayError::Dane(DaneRefusal::NoResolver) => CRYPTOGRAPHIC_FAILURE,
            RelayError::Dane(_) => ROUTING_SERVER_FAILURE,
            RelayError::StsNoMatchingMx { .. } => CRYPTOGRAPHIC_FAILURE,
        }
    }

    /// Retrying later may succeed (the [`status`](Self::status) is 4.x.x).
    pub fn is_transient(&self) -> bool {
        !self.is_permanent()
    }

    /// Retrying the same message will not succeed (the
    /// [`status`](Self::status) is 5.x.x).
    pub fn is_permanent(&self) -> bool {
        self.status().class() == 5
    }

    /// The server's reply, typed, when one caused the error (a refusal,
    /// or the answer to STARTTLS): for a DSN's `Diagnostic-Code`, without
    /// reading it back from the error's text.
    pub fn reply(&self) -> Option<&Reply<'static>> {
        match self {
            RelayError::Rejected { reply, .. } | RelayError::StartTlsRefused(reply) => Some(reply),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
