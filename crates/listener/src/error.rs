//! Errors of binding listeners and reloading certificates.

use std::net::SocketAddr;

use crate::policy::PolicyError;

/// Why [`Server::bind`](crate::Server::bind) or
/// [`Listener::new`](crate::Listener::new) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// A listener's TLS policy cannot be built.
    #[error("listener {listener}: TLS policy:\n{error}")]
    Policy {
        /// The listener's name.
        listener: String,
        /// Every error and warning found.
        error: PolicyError,
    },
    /// A listener's configuration is inconsistent (e.g. STARTTLS without
    /// TLS settings). Names the field.
    #[error("listener {listener}: {field}: {message}")]
    Config {
        /// The listener's name.
        listener: String,
        /// The setting at fault.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The socket could not be bound.
    #[error("listener {listener}: cannot bind {addr}: {source}")]
    Io {
        /// The listener's name.
        listener: String,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Why a certificate reload did not happen. The certificates in use before
/// the call keep serving.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// No listener has that name.
    #[error("no listener named {0:?}")]
    NoSuchListener(String),
    /// The listener speaks no TLS.
    #[error("listener {0:?} has no TLS settings")]
    NoTls(String),
    /// The new certificates could not be loaded; the old ones keep serving.
    #[error(
        "listener {listener:?}: certificates not reloaded, the previous ones keep serving: {reason}"
    )]
    Invalid {
        /// The listener's name.
        listener: String,
        /// What is wrong with the new certificates.
        reason: String,
    },
}

/// Why [`Listener::serve_connection`](crate::Listener::serve_connection)
/// ended other than by the session closing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The TLS handshake (implicit, or after `STARTTLS`) failed.
    #[error("TLS handshake failed: {0}")]
    Handshake(#[source] std::io::Error),
    /// The TLS handshake took longer than
    /// [`ConnLimits::handshake_timeout`](crate::ConnLimits::handshake_timeout).
    #[error("TLS handshake timed out")]
    HandshakeTimeout,
    /// Writing to the client failed.
    #[error("write failed: {0}")]
    Write(#[source] std::io::Error),
    /// A write took longer than
    /// [`ConnLimits::write_timeout`](crate::ConnLimits::write_timeout).
    #[error("write timed out")]
    WriteTimeout,
    /// The session refused the end of a STARTTLS upgrade (a driver bug).
    #[error("session refused TLS: {0}")]
    Session(#[from] postern_session::ApiError),
    /// The connection's PROXY header was refused (see
    /// [`Listener::accept_proxy`](crate::Listener::accept_proxy)); the
    /// connection was closed without serving SMTP to it.
    #[error("{0}")]
    Proxy(#[from] crate::proxy::ProxyError),
    /// The session held all the input it may with nothing to deliver (a
    /// driver bug); the connection was dropped rather than spin.
    #[error("session stalled")]
    Stalled,
}
