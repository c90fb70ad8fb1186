//! Hooks for metrics: what the runner tells an embedder about each
//! delivery attempt, without this crate choosing a metrics library.

use std::fmt;
use std::time::Duration;

use postern_relay::tlsrpt::TlsSession;
use postern_relay::{OutboundTls, Route};

use super::RecipientOutcome;

/// Told about the runner's delivery attempts; set it with
/// [`Runner::with_observer`](super::Runner::with_observer). Every method
/// has an empty default. They are called on the runner's task as results
/// are recorded: keep them cheap and never block.
pub trait DeliveryObserver: Send + Sync + fmt::Debug + 'static {
    /// One relay session of a route ended: one connection attempt (after
    /// MX fallback) carrying one or more transactions, `elapsed` from the
    /// start of the lookup to the last reply.
    fn route_attempted(&self, route: &Route, elapsed: Duration) {
        let _ = (route, elapsed);
    }

    /// One recipient's result in that session.
    fn recipient_attempted(&self, attempt: &RecipientAttempt<'_>) {
        let _ = attempt;
    }

    /// The TLS sessions that route's delivery tried with MX hosts, each
    /// under the policy that applied (TLS-RPT, RFC 8460); not called when
    /// there were none, nor for a route that carried only TLS-RPT reports
    /// (RFC 8460 §3: those sessions are not reported).
    fn tls_sessions(&self, route: &Route, sessions: &[TlsSession]) {
        let _ = (route, sessions);
    }
}

/// One recipient's delivery attempt.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RecipientAttempt<'a> {
    /// The route the [`Router`](super::Router) chose: target, TLS mode and
    /// versions.
    pub route: &'a Route,
    /// What happened.
    pub outcome: &'a RecipientOutcome,
    /// The TLS session the message went over; `None` for plaintext or when
    /// it was never sent.
    pub tls: Option<&'a OutboundTls>,
}
