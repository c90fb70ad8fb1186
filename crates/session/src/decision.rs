//! The embedder's answers, and the errors for API misuse.

use postern_proto::Reply;

use crate::event::DecisionKind;
use crate::offer::EhloOffer;

/// The embedder's answer to a [`Question`](crate::Question).
///
/// The `With` variants carry the reply to send instead of the default one;
/// its class must match (2xx to accept, 5xx to reject, 4xx to tempfail). A
/// `421` reply closes the session after it is written.
///
/// Replies are [`Reply`] values, which cannot hold CR or LF in their text:
/// whatever the embedder answers, the session writes exactly one reply for
/// it, and the client cannot be shown a line the session did not mean.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Go ahead, with the default positive reply.
    Accept,
    /// Go ahead, with this 2xx reply (e.g. a queue id after the message).
    /// Not allowed for [`DecisionKind::Hello`] (the capabilities must be
    /// sent) nor [`DecisionKind::DataStart`].
    AcceptWith(Reply<'static>),
    /// Accept the greeting ([`DecisionKind::Hello`] only) and offer this
    /// connection these capabilities: the proposal of
    /// [`Question::Hello`](crate::Question::Hello), narrowed. The reply
    /// advertises them and the session enforces them.
    Advertise(EhloOffer),
    /// Refuse, with the default 5xx reply for the question.
    Reject,
    /// Refuse with this 5xx reply.
    RejectWith(Reply<'static>),
    /// Refuse for now, with the default 4xx reply for the question.
    Tempfail,
    /// Refuse for now with this 4xx reply.
    TempfailWith(Reply<'static>),
}

impl std::fmt::Display for Decision {
    /// For logs: the reply of the `With` variants as sent (`550 5.7.1
    /// text`), else `accept`, `advertise`, `reject` or `tempfail`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::AcceptWith(r) | Decision::RejectWith(r) | Decision::TempfailWith(r) => {
                r.fmt(f)
            }
            Decision::Accept => f.write_str("accept"),
            Decision::Advertise(_) => f.write_str("advertise"),
            Decision::Reject => f.write_str("reject"),
            Decision::Tempfail => f.write_str("tempfail"),
        }
    }
}

/// The outcome class of a [`Decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Accept,
    Reject,
    Tempfail,
}

/// A decision taken apart: its class, custom reply and offer.
pub(crate) struct Parts {
    pub(crate) verdict: Class,
    pub(crate) reply: Option<Reply<'static>>,
    pub(crate) offer: Option<EhloOffer>,
}

impl Decision {
    pub(crate) fn split(self) -> Parts {
        let (verdict, reply, offer) = match self {
            Decision::Accept => (Class::Accept, None, None),
            Decision::AcceptWith(r) => (Class::Accept, Some(r), None),
            Decision::Advertise(o) => (Class::Accept, None, Some(o)),
            Decision::Reject => (Class::Reject, None, None),
            Decision::RejectWith(r) => (Class::Reject, Some(r), None),
            Decision::Tempfail => (Class::Tempfail, None, None),
            Decision::TempfailWith(r) => (Class::Tempfail, Some(r), None),
        };
        Parts {
            verdict,
            reply,
            offer,
        }
    }
}

/// A call the session could not honour in its current state. The session
/// is left unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
    /// [`Decision::Advertise`] answered a question other than the greeting.
    #[error("an offer answers only a greeting, not {0:?}")]
    OfferNotAllowed(DecisionKind),
    /// [`Decision::Advertise`] offered something the session did not
    /// propose and could not honour.
    #[error("the offer adds {0}, which the session did not propose")]
    NotProposed(String),
    /// [`Session::tls_established`](crate::Session::tls_established) was
    /// called without a STARTTLS upgrade under way.
    #[error("no STARTTLS upgrade is under way")]
    NotAwaitingTls,
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_proto::{EnhancedCode, ReplyCode};

    #[test]
    fn decisions_display_for_logs() {
        let code = ReplyCode::new(550).expect("code");
        let reply = Reply::new(code, EnhancedCode::new(5, 1, 1), ["no such user"]).expect("reply");
        assert_eq!(
            Decision::RejectWith(reply).to_string(),
            "550 5.1.1 no such user"
        );
        assert_eq!(Decision::Tempfail.to_string(), "tempfail");
        assert_eq!(Decision::Accept.to_string(), "accept");
    }
}
