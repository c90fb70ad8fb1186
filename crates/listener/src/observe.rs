//! Hooks for metrics: what a listener tells an embedder about its
//! connections, without this crate choosing a metrics library.
//!
//! Set an [`Observer`] with
//! [`ListenerConfig::with_observer`](crate::ListenerConfig::with_observer);
//! every method has an empty default, so an observer implements only what
//! it counts. Methods are called on the connection's task, in line: keep
//! them cheap (increment a counter, observe a histogram) and never block.
//!
//! | hook | when |
//! |---|---|
//! | [`Observer::throttled`] | an accepted socket was refused by a limit, before any session |
//! | [`Observer::handshake_failed`] | a TLS handshake (implicit, or after `STARTTLS`) failed or timed out |
//! | [`Observer::answered`] | the handler answered a question; with the reply the session wrote for it and how long the handler took |
//! | [`Observer::closed`] | a served connection ended; with the TLS version it ended on |

use std::fmt;
use std::time::Duration;

use postern_proto::{EnhancedCode, Mechanism, ReplyCode, TlsVersion};
use postern_session::DecisionKind;

use crate::error::ConnectionError;

/// Told about every connection of the listeners it is set on. See the
/// [module documentation](self).
pub trait Observer: Send + Sync + fmt::Debug + 'static {
    /// A connection was refused by `throttle` before its session started.
    fn throttled(&self, listener: &str, throttle: Throttle) {
        let _ = (listener, throttle);
    }

    /// A TLS handshake on `listener` failed; the connection is closed.
    fn handshake_failed(&self, listener: &str, failure: HandshakeFailure) {
        let _ = (listener, failure);
    }

    /// The handler answered a question.
    fn answered(&self, answer: &Answer<'_>) {
        let _ = answer;
    }

    /// A connection ended (once per served connection, whatever ended it).
    fn closed(&self, closed: &Closed<'_>) {
        let _ = closed;
    }
}

/// Why a connection was refused before its session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Throttle {
    /// The listener serves [`ConnLimits::global`](crate::ConnLimits::global)
    /// connections already (`421 4.3.2`).
    Connections,
    /// The client's address has
    /// [`ConnLimits::per_ip`](crate::ConnLimits::per_ip) connections
    /// already (`421 4.7.0`).
    ConnectionsPerIp,
    /// The client's network is over its connection rate
    /// ([`ListenerConfig::rate`](crate::ListenerConfig::rate)): `421 4.7.0`.
    ConnectionRate,
}

impl Throttle {
    /// A stable lower-case name, for metric labels and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Throttle::Connections => "connections",
            Throttle::ConnectionsPerIp => "connections_per_ip",
            Throttle::ConnectionRate => "connection_rate",
        }
    }
}

/// Why a TLS handshake failed, coarsely: what an operator looks at first
/// (clients without a common version or cipher, clients that distrust the
/// certificate, plaintext spoken to a TLS port, timeouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// It took longer than
    /// [`ConnLimits::handshake_timeout`](crate::ConnLimits::handshake_timeout).
    Timeout,
    /// No protocol version in common (e.g. a TLS 1.0-only client).
    ProtocolVersion,
    /// No cipher suite in common.
    NoSharedCipher,
    /// Another incompatibility (key exchange groups, signature schemes...).
    Incompatible,
    /// The client sent an alert, typically because it does not trust our
    /// certificate.
    AlertReceived,
    /// The client's certificate was missing or did not verify.
    ClientCertificate,
    /// What arrived is not TLS (e.g. plaintext SMTP on an implicit-TLS port).
    NotTls,
    /// The client closed the connection during the handshake.
    PeerClosed,
    /// Anything else (an I/O error, an internal error).
    Other,
}

impl HandshakeFailure {
    /// A stable lower-case name, for metric labels and logs.
    pub const fn name(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::ProtocolVersion => "protocol_version",
            HandshakeFailure::NoSharedCipher => "no_shared_cipher",
            HandshakeFailure::Incompatible => "incompatible",
            HandshakeFailure::AlertReceived => "alert_received",
            HandshakeFailure::ClientCertificate => "client_certificate",
            HandshakeFailure::NotTls => "not_tls",
            HandshakeFailure::PeerClosed => "peer_closed",
            HandshakeFailure::Other => "other",
        }
    }

    /// Classifies a handshake error; `None` when `error` is not one.
    pub fn of(error: &ConnectionError) -> Option<HandshakeFailure> {
        match error {
            ConnectionError::HandshakeTimeout => Some(HandshakeFailure::Timeout),
            ConnectionError::Handshake(e) => Some(Self::of_io(e)),
            _ => None,
        }
    }

    /// tokio-rustls reports rustls's error inside the `io::Error`.
    fn of_io(e: &std::io::Error) -> HandshakeFailure {
        use rustls::{Error as E, PeerIncompatible as P};
        use std::io::ErrorKind as K;
        let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<E>()) else {
            return match e.kind() {
                K::UnexpectedEof | K::ConnectionReset | K::BrokenPipe => {
                    HandshakeFailure::PeerClosed
                }
                _ => HandshakeFailure::Other,
            };
        };
        match tls {
            E::PeerIncompatible(P::NoCipherSuitesInCommon) => HandshakeFailure::NoSharedCipher,
            E::PeerIncompatible(
                P::SupportedVersionsExtensionRequired
                | P::Tls12NotOffered
                | P::Tls12NotOfferedOrEnabled
                | P::Tls13RequiredForQuic,
            ) => HandshakeFailure::ProtocolVersion,
            E::PeerIncompatible(_) => HandshakeFailure::Incompatible,
            E::AlertReceived(_) => HandshakeFailure::AlertReceived,
            E::InvalidCertificate(_) | E::NoCertificatesPresented => {
                HandshakeFailure::ClientCertificate
            }
            E::InvalidMessage(_) | E::InappropriateMessage { .. } => HandshakeFailure::NotTls,
            _ => HandshakeFailure::Other,
        }
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A question the handler answered.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Answer<'a> {
    /// The listener's name.
    pub listener: &'a str,
    /// What was asked.
    pub question: DecisionKind,
    /// For [`DecisionKind::Auth`]: the mechanism the client used.
    pub mechanism: Option<&'a Mechanism<'static>>,
    /// The code of the reply the session wrote for the answer (the
    /// decision's own reply, or the session's default for it); `None` when
    /// it wrote none.
    pub code: Option<ReplyCode>,
    /// That reply's enhanced status code (RFC 3463), when it has one.
    pub enhanced: Option<EnhancedCode>,
    /// How long the handler took to answer: for
    /// [`DecisionKind::MessageComplete`], the time to make the message
    /// durable before its `250`.
    pub elapsed: Duration,
}

impl<'a> Answer<'a> {
    pub(crate) fn new(listener: &'a str, question: DecisionKind, elapsed: Duration) -> Self {
        Answer {
            listener,
            question,
            mechanism: None,
            code: None,
            enhanced: None,
            elapsed,
        }
    }

    /// Whether the answer let the client go on (a 2xx or 3xx reply).
    pub fn is_positive(&self) -> bool {
        self.code.is_some_and(|c| c.class() <= 3)
    }
}

/// A connection that ended.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Closed<'a> {
    /// The listener's name.
    pub listener: &'a str,
    /// The TLS version the connection ended on; `None` for plaintext
    /// (including a STARTTLS whose handshake failed).
    pub tls: Option<TlsVersion>,
    /// How long it lasted.
    pub duration: Duration,
}

impl<'a> Closed<'a> {
    pub(crate) fn new(listener: &'a str, tls: Option<TlsVersion>) -> Self {
        Closed {
            listener,
            tls,
            duration: Duration::ZERO,
        }
    }
}

/// The code and enhanced code at the start of the first reply in `wire`
/// (what the session wrote), if it starts with one.
pub(crate) fn reply_status(wire: &[u8]) -> (Option<ReplyCode>, Option<EnhancedCode>) {
    let code = wire
        .get(..3)
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse().ok())
        .and_then(ReplyCode::new);
    let enhanced = wire
        .get(4..wire.len().min(20))
        .and_then(|t| std::str::from_utf8(t).ok())
        .and_then(EnhancedCode::parse_prefix)
        .map(|(e, _)| e);
    (code, enhanced.filter(|_| code.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_status_reads_the_first_reply() {
        let (c, e) = reply_status(b"550 5.1.1 <a@b>: no such user\r\n250 2.0.0 OK\r\n");
        assert_eq!(c.map(ReplyCode::get), Some(550));
        assert_eq!(e.map(|e| e.to_string()).as_deref(), Some("5.1.1"));
        let (c, e) = reply_status(b"250-mx.example.org\r\n250 AUTH PLAIN\r\n");
        assert_eq!(c.map(ReplyCode::get), Some(250));
        assert_eq!(e, None);
        assert_eq!(reply_status(b""), (None, None));
        assert_eq!(reply_status(b"xyz 1.2.3"), (None, None));
    }

    #[test]
    fn handshake_errors_are_classified() {
        let wrap = |e: rustls::Error| {
            ConnectionError::Handshake(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        };
        let of = |e| HandshakeFailure::of(&e);
        assert_eq!(
            of(wrap(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::NoCipherSuitesInCommon
            ))),
            Some(HandshakeFailure::NoSharedCipher)
        );
        assert_eq!(
            of(wrap(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::SupportedVersionsExtensionRequired
            ))),
            Some(HandshakeFailure::ProtocolVersion)
        );
        assert_eq!(
            of(wrap(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            ))),
            Some(HandshakeFailure::NotTls)
        );
        assert_eq!(
            of(ConnectionError::HandshakeTimeout),
            Some(HandshakeFailure::Timeout)
        );
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert_eq!(
            of(ConnectionError::Handshake(eof)),
            Some(HandshakeFailure::PeerClosed)
        );
        assert_eq!(of(ConnectionError::WriteTimeout), None);
    }
}
