//! The embedder's answers, and the errors for API misuse.

use postern_proto::Reply;

use crate::event::DecisionKind;

/// The embedder's answer to an event that needs one.
///
/// The `With` variants carry the reply to send instead of the default one;
/// its class must match (2xx to accept, 5xx to reject, 4xx to tempfail). A
/// `421` reply closes the session after it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead, with the default positive reply.
    Accept,
    /// Go ahead, with this 2xx reply (e.g. a queue id after the message).
    /// Not allowed for [`DecisionKind::Hello`] (the capabilities must be
    /// sent) nor [`DecisionKind::DataStart`].
    AcceptWith(Reply<'static>),
    /// Refuse, with the default 5xx reply for the question.
    Reject,
    /// Refuse with this 5xx reply.
    RejectWith(Reply<'static>),
    /// Refuse for now, with the default 4xx reply for the question.
    Tempfail,
    /// Refuse for now with this 4xx reply.
    TempfailWith(Reply<'static>),
}

/// The outcome class of a [`Decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accept,
    Reject,
    Tempfail,
}

impl Decision {
    pub(crate) fn split(self) -> (Verdict, Option<Reply<'static>>) {
        match self {
            Decision::Accept => (Verdict::Accept, None),
            Decision::AcceptWith(r) => (Verdict::Accept, Some(r)),
            Decision::Reject => (Verdict::Reject, None),
            Decision::RejectWith(r) => (Verdict::Reject, Some(r)),
            Decision::Tempfail => (Verdict::Tempfail, None),
            Decision::TempfailWith(r) => (Verdict::Tempfail, Some(r)),
        }
    }
}

/// A call the session could not honour in its current state. The session
/// is left unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A decision was given but no event is waiting for one.
    #[error("no decision is pending")]
    NothingPending,
    /// The session is closed.
    #[error("the session is closed")]
    Closed,
    /// The reply's class does not fit the decision (e.g. a 4xx reply to
    /// reject, which needs 5xx).
    #[error("a {decision} decision needs a {expected}xx reply, got {got}")]
    WrongReplyClass {
        /// `accept`, `reject` or `tempfail`.
        decision: &'static str,
        /// The class required.
        expected: u8,
        /// The code given.
        got: u16,
    },
    /// The reply's code does not fit the decision (a greeting must be 220,
    /// an AUTH success 235).
    #[error("this decision needs a {expected} reply, got {got}")]
    WrongReplyCode {
        /// The code required.
        expected: u16,
        /// The code given.
        got: u16,
    },
    /// A custom accept reply was given where the session must send its own.
    #[error("a custom accept reply is not allowed for {0:?}")]
    CustomAcceptNotAllowed(DecisionKind),
    /// [`Session::tls_established`](crate::Session::tls_established) was
    /// called without a STARTTLS upgrade under way.
    #[error("no STARTTLS upgrade is under way")]
    NotAwaitingTls,
}
