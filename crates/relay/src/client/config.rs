//! The client session's configuration.

use std::fmt;

use postern_proto::{Host, ReplyLimits};

use crate::body::LineEndings;
use crate::timeouts::Timeouts;

/// What the session does about STARTTLS (the sans-IO view of
/// [`TlsMode`](crate::TlsMode); implicit TLS is [`Client::new_tls`](crate::Client::new_tls)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRequirement {
    /// Never issue STARTTLS.
    Plain,
    /// STARTTLS when offered; continue in plaintext when it is not offered
    /// or is refused.
    #[default]
    Opportunistic,
    /// STARTTLS must be offered and succeed before any MAIL, RCPT or DATA.
    Required,
}

/// Credentials for AUTH PLAIN or LOGIN (RFC 4616, draft-murchison-sasl-login).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The authentication identity.
    pub username: String,
    /// The password; never printed by `Debug`.
    pub password: String,
}

impl Credentials {
    /// Credentials for `username`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How a client session behaves.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The name sent with EHLO/HELO.
    pub helo_name: Host<'static>,
    /// STARTTLS behaviour.
    pub tls: TlsRequirement,
    /// Credentials to authenticate with (smart hosts only; see
    /// [`Target::SmartHost`](crate::Target::SmartHost)).
    pub auth: Option<Credentials>,
    /// Send credentials over an unencrypted connection. Off by default: a
    /// session with credentials and no TLS fails with
    /// [`Error::AuthRequiresTls`](crate::Error::AuthRequiresTls).
    pub allow_plaintext_auth: bool,
    /// Per-stage timeouts (reported by [`Client::timeout`](crate::Client::timeout)).
    pub timeouts: Timeouts,
    /// Bounds on reply lines.
    pub reply_limits: ReplyLimits,
    /// Bare CR/LF handling in bodies.
    pub line_endings: LineEndings,
    /// Pipeline MAIL, RCPT and DATA when the server offers PIPELINING.
    pub pipelining: bool,
    /// Use BDAT when the server offers CHUNKING.
    pub chunking: bool,
    /// Largest BDAT chunk, in octets.
    pub chunk_size: usize,
}

impl SessionConfig {
    /// A configuration with defaults: opportunistic TLS, no AUTH,
    /// RFC 5321 timeouts, pipelining and chunking when offered.
    pub fn new(helo_name: Host<'static>) -> Self {
        Self {
            helo_name,
            tls: TlsRequirement::default(),
            auth: None,
            allow_plaintext_auth: false,
            timeouts: Timeouts::default(),
            reply_limits: ReplyLimits::default(),
            line_endings: LineEndings::default(),
            pipelining: true,
            chunking: true,
            chunk_size: 1 << 20,
        }
    }
}
