//! The client session's configuration.

use std::fmt;

use postern_proto::{Host, ReplyLimits};

use crate::body::LineEndings;
use crate::timeouts::Timeouts;

/// What the session does about STARTTLS (the sans-IO view of
/// [`TlsMode`](crate::TlsMode); implicit TLS is [`Client::new_tls`](crate::Client::new_tls)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
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
#[non_exhaustive]
pub struct RelayCredentials {
    /// The authentication identity.
    pub username: String,
    /// The password; never printed by `Debug`.
    pub password: String,
}

impl RelayCredentials {
    /// Credentials for `username`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for RelayCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How a client session behaves.
///
/// Built with [`SessionConfig::new`] and the `with_*` methods; the fields
/// stay public for reading and adjusting.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// The name sent with EHLO/HELO.
    pub helo_name: Host<'static>,
    /// STARTTLS behaviour.
    pub tls: TlsRequirement,
    /// Credentials to authenticate with (smart hosts only; see
    /// [`Target::SmartHost`](crate::Target::SmartHost)).
    pub auth: Option<RelayCredentials>,
    /// Send credentials over an unencrypted connection. Off by default: a
    /// session with credentials and no TLS fails with
    /// [`RelayError::AuthRequiresTls`](crate::RelayError::AuthRequiresTls).
    pub allow_plaintext_auth: bool,
    /// Per-phase timeouts (reported by [`Client::timeout`](crate::Client::timeout)).
    pub timeouts: Timeouts,
    /// Bounds on reply lines.
    pub reply_limits: ReplyLimits,
    /// Most octets of an unfinished reply the client holds; a server that
    /// sends more without ending its reply fails the session
    /// ([`RelayError::ReplyTooLong`](crate::RelayError::ReplyTooLong)).
    /// Default 64 KiB, far above any real reply.
    pub max_pending_input: usize,
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
            max_pending_input: 64 * 1024,
            line_endings: LineEndings::default(),
            pipelining: true,
            chunking: true,
            chunk_size: 1 << 20,
        }
    }

    /// Sets the STARTTLS behaviour.
    pub fn with_tls(mut self, tls: TlsRequirement) -> Self {
        self.tls = tls;
        self
    }

    /// Authenticates with `credentials` (only over TLS unless
    /// [`with_plaintext_auth`](Self::with_plaintext_auth)).
    pub fn with_auth(mut self, credentials: RelayCredentials) -> Self {
        self.auth = Some(credentials);
        self
    }

    /// Allows (or forbids) sending credentials without TLS.
    pub fn with_plaintext_auth(mut self, allow: bool) -> Self {
        self.allow_plaintext_auth = allow;
        self
    }

    /// Sets the per-phase timeouts.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Sets the bounds on reply lines.
    pub fn with_reply_limits(mut self, limits: ReplyLimits) -> Self {
        self.reply_limits = limits;
        self
    }

    /// Sets the bound on an unfinished reply, in octets.
    pub fn with_max_pending_input(mut self, octets: usize) -> Self {
        self.max_pending_input = octets;
        self
    }

    /// Sets bare CR/LF handling in bodies.
    pub fn with_line_endings(mut self, endings: LineEndings) -> Self {
        self.line_endings = endings;
        self
    }

    /// Uses (or never uses) PIPELINING.
    pub fn with_pipelining(mut self, on: bool) -> Self {
        self.pipelining = on;
        self
    }

    /// Uses (or never uses) CHUNKING, with chunks of at most `chunk_size`
    /// octets.
    pub fn with_chunking(mut self, on: bool, chunk_size: usize) -> Self {
        self.chunking = on;
        self.chunk_size = chunk_size;
        self
    }
}
