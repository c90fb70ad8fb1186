//! The router: which relay route and TLS plan a recipient gets.

use std::fmt;

use postern_relay::Route;

use crate::report::Diagnosis;
use crate::{Envelope, RecipientState};

/// Picks the relay [`Route`] (smart host or MX, TLS mode, versions, trust
/// anchors) for one open remote recipient of a queued message.
///
/// The runner asks once per recipient per attempt and groups recipients
/// with equal routes on one connection. An `Err` defers the recipient with
/// that diagnosis (a policy it cannot carry out now, unreadable trust
/// anchors...): routing problems never bounce mail and never widen policy.
pub trait Router: Send + Sync + fmt::Debug + 'static {
    /// The route for `recipient` of `envelope`.
    fn route(&self, envelope: &Envelope, recipient: &RecipientState) -> Result<Route, Diagnosis>;
}

impl<R: Router + ?Sized> Router for std::sync::Arc<R> {
    fn route(&self, envelope: &Envelope, recipient: &RecipientState) -> Result<Route, Diagnosis> {
        (**self).route(envelope, recipient)
    }
}
