//! What one listener is: address, mode, TLS settings, session policy, limits.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postern_session::StartTlsPolicy;

use crate::guard::{ConnectionRate, Networks};
use crate::observe::Observer;
use crate::policy::TlsSettings;
use crate::proxy::ProxyProtocol;

/// One listening socket and its policy. Build it with
/// [`ListenerConfig::new`] and the `with_` methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListenerConfig {
    /// The listener's name, used in logs, reports and
    /// [`Server::reload_certificates`](crate::Server::reload_certificates).
    pub name: String,
    /// Where to listen. Port 0 picks a free port (see
    /// [`Server::local_addrs`](crate::Server::local_addrs)).
    pub addr: SocketAddr,
    /// Plaintext, STARTTLS, or TLS from the first byte.
    pub mode: Mode,
    /// TLS policy and certificates; required for [`Mode::StartTls`] and
    /// [`Mode::Implicit`], ignored (with a warning) for [`Mode::Plain`].
    pub tls: Option<TlsSettings>,
    /// The session policy (hostname, AUTH per transport, limits). Its
    /// [`starttls`](postern_session::Config::starttls) policy belongs to
    /// the mode: [`with_session`](Self::with_session) sets it from
    /// [`Mode::starttls_policy`], and a configuration that disagrees is
    /// refused at bind rather than silently rewritten.
    pub session: Arc<postern_session::Config>,
    /// Connection limits and timeouts.
    pub limits: ConnLimits,
    /// Told about throttles, handshake failures, answers and closes (for
    /// metrics); none by default.
    pub observer: Option<Arc<dyn Observer>>,
    /// The PROXY protocol: from which fronts a header is required and
    /// believed. `None`: no header is read, and one sent is SMTP (or TLS)
    /// garbage like any other.
    pub proxy: Option<ProxyProtocol>,
    /// Connection rate limits per address prefix, applied by
    /// [`Server`](crate::Server) before the concurrency limits: the excess
    /// gets `421 4.7.0` (plaintext modes) or is closed (implicit TLS).
    /// Listeners given the same `Arc` share their counts (a global limit).
    /// Default: [`RateLimits::default`](crate::guard::RateLimits::default).
    pub rate: Option<Arc<ConnectionRate>>,
    /// Clients in these networks may end command lines with a bare LF
    /// (legacy software; Postfix's `smtpd_forbid_bare_newline_exclusions`).
    /// Everyone else gets `521 5.5.2` and a close for a bare LF or CR in a
    /// command line. Empty by default.
    pub bare_lf_networks: Networks,
}

impl ListenerConfig {
    /// A listener with the default session policy (STARTTLS as the mode
    /// says) and limits.
    pub fn new(name: impl Into<String>, addr: SocketAddr, mode: Mode) -> Self {
        let mut session = postern_session::Config::default();
        session.starttls = mode.starttls_policy();
        Self {
            name: name.into(),
            addr,
            mode,
            tls: None,
            session: Arc::new(session),
            limits: ConnLimits::default(),
            observer: None,
            proxy: None,
            rate: Some(Arc::new(ConnectionRate::new(
                crate::guard::RateLimits::default(),
            ))),
            bare_lf_networks: Networks::none(),
        }
    }

    /// Sets the TLS settings.
    pub fn with_tls(mut self, tls: TlsSettings) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets the session policy, its STARTTLS policy taken from the mode.
    pub fn with_session(mut self, session: impl Into<Arc<postern_session::Config>>) -> Self {
        let mut session = session.into();
        let wanted = self.mode.starttls_policy();
        if session.starttls != wanted {
            Arc::make_mut(&mut session).starttls = wanted;
        }
        self.session = session;
        self
    }

    /// Sets the limits.
    pub fn with_limits(mut self, limits: ConnLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the observer told about this listener's connections (see
    /// [`Observer`]).
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Speaks the PROXY protocol with the fronts `proxy` trusts.
    pub fn with_proxy_protocol(mut self, proxy: ProxyProtocol) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Sets the connection rate limiter (`None`: no rate limit). Pass the
    /// same `Arc` to several listeners to count their connections together.
    pub fn with_connection_rate(mut self, rate: Option<Arc<ConnectionRate>>) -> Self {
        self.rate = rate;
        self
    }

    /// Sets the networks allowed to end command lines with a bare LF.
    pub fn with_bare_lf_networks(mut self, networks: Networks) -> Self {
        self.bare_lf_networks = networks;
        self
    }
}

/// How a listener speaks TLS: the one source of truth for offering and
/// requiring `STARTTLS` on it (see [`Mode::starttls_policy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// Plaintext only; `STARTTLS` is not offered.
    Plain,
    /// Plaintext with `STARTTLS` offered (ports 25 and 587). With
    /// `required`, `MAIL` before TLS gets `530 5.7.0`.
    StartTls {
        /// Refuse mail transactions before TLS.
        required: bool,
    },
    /// TLS from the first byte (port 465, RFC 8314).
    Implicit,
}

impl Mode {
    /// The session's STARTTLS policy under this mode: offered exactly in
    /// [`Mode::StartTls`], required when `required`; off in
    /// [`Mode::Plain`] and [`Mode::Implicit`] (a TLS connection is never
    /// offered STARTTLS and never lacks TLS).
    pub const fn starttls_policy(self) -> StartTlsPolicy {
        match self {
            Mode::StartTls { required: false } => StartTlsPolicy::offered(),
            Mode::StartTls { required: true } => StartTlsPolicy::required(),
            Mode::Plain | Mode::Implicit => StartTlsPolicy::off(),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Plain => f.write_str("plain"),
            Mode::StartTls { required: false } => f.write_str("starttls"),
            Mode::StartTls { required: true } => f.write_str("starttls (required)"),
            Mode::Implicit => f.write_str("implicit"),
        }
    }
}

/// Connection limits and timeouts of a listener.
///
/// The defaults follow RFC 5321 §4.5.3.2: 5 minutes for a command, 3
/// minutes for each read of a message body, 10 minutes for the reply to a
/// message (the embedder's decision), and a 10-second TLS handshake.
/// Start from `ConnLimits::default()` and set the fields that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnLimits {
    /// Most connections served at once by this listener; the excess gets
    /// `421 4.3.2` (plaintext modes) or is closed (implicit TLS).
    pub global: usize,
    /// Most connections from one IP address at once; the excess gets
    /// `421 4.7.0` (plaintext modes) or is closed (implicit TLS).
    pub per_ip: usize,
    /// Longest TLS handshake (implicit, or after `STARTTLS`); then the
    /// connection is closed.
    pub handshake_timeout: Duration,
    /// Longest wait for the next complete command (RFC 5321 §4.5.3.2.7:
    /// 5 min), counted from the last reply written: octets trickling in
    /// do not extend it (slowloris); then `421 4.4.2` and close.
    pub command_timeout: Duration,
    /// Longest wait for the next read of a message body (the client's
    /// "DATA block" timeout, 3 min); then `421 4.4.2` and close.
    pub data_timeout: Duration,
    /// Longest wait for a write to the client to complete.
    pub write_timeout: Duration,
    /// After shutdown is requested, how long a connection with a mail
    /// transaction in flight may still wait for its client; then `421
    /// 4.4.2` and close. Idle connections close at once.
    pub shutdown_grace: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            global: 1000,
            per_ip: 20,
            handshake_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(180),
            write_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(60),
        }
    }
}
