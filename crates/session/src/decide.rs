//! Applying the embedder's decisions.

use postern_proto::Reply;

use crate::config::Protocol;
use crate::data::BdatState;
use crate::decision::{ApiError, Class, Decision, Parts};
use crate::event::{BodyKind, CloseReason, DecisionKind};
use crate::offer::EhloOffer;
use crate::replies;
use crate::session::{Pending, Phase, Session};

impl Session {
    /// The question waiting for a decision, if any.
    pub fn pending_decision(&self) -> Option<DecisionKind> {
        Some(match self.pending.as_ref()? {
            Pending::Connect => DecisionKind::Connect,
            Pending::Hello { .. } => DecisionKind::Hello,
            Pending::Auth { .. } => DecisionKind::Auth,
            Pending::Mail(_) => DecisionKind::Mail,
            Pending::Rcpt => DecisionKind::Rcpt,
            Pending::DataStart(_) => DecisionKind::DataStart,
            Pending::MessageComplete { next, .. } => DecisionKind::MessageComplete {
                recipient: (self.config.protocol == Protocol::Lmtp).then_some(*next),
            },
        })
    }

    /// Accepts with the default reply. See [`decide`](Self::decide).
    pub fn accept(&mut self) -> Result<(), ApiError> {
        self.decide(Decision::Accept)
    }

    /// Rejects with `reply` (5xx). See [`decide`](Self::decide).
    pub fn reject(&mut self, reply: Reply<'static>) -> Result<(), ApiError> {
        self.decide(Decision::RejectWith(reply))
    }

    /// Refuses for now with `reply` (4xx). See [`decide`](Self::decide).
    pub fn tempfail(&mut self, reply: Reply<'static>) -> Result<(), ApiError> {
        self.decide(Decision::TempfailWith(reply))
    }

    /// Answers the pending decision, sends its reply, and goes on with any
    /// input held behind it.
    ///
    /// Fails, changing nothing, when nothing is pending, the session is
    /// closed, or a custom reply does not fit (wrong class; a greeting
    /// other than 220; an AUTH success other than 235; a custom accept
    /// after HELO/EHLO/LHLO or for the start of the body).
    pub fn decide(&mut self, decision: Decision) -> Result<(), ApiError> {
        if self.is_closed() {
            return Err(ApiError::Closed);
        }
        let Some(kind) = self.pending_decision() else {
            return Err(ApiError::NothingPending);
        };
        let Parts {
            verdict,
            reply,
            offer,
        } = decision.split();
        check_reply(kind, verdict, reply.as_ref())?;
        if let Some(offer) = &offer {
            self.check_offer(kind, offer)?;
        }
        let Some(pending) = self.pending.take() else {
            return Err(ApiError::NothingPending);
        };
        if let Some(offer) = offer {
            // Only a greeting gets here with an offer (checked above).
            self.offer = offer;
        } else if matches!(pending, Pending::Hello { .. }) && verdict == Class::Accept {
            self.offer = EhloOffer::for_connection(&self.config, self.tls.as_ref());
        }
        self.apply(pending, verdict, reply);
        self.process();
        Ok(())
    }

    /// An offer answers a greeting and may only narrow the proposal.
    fn check_offer(&self, kind: DecisionKind, offer: &EhloOffer) -> Result<(), ApiError> {
        if kind != DecisionKind::Hello {
            return Err(ApiError::OfferNotAllowed(kind));
        }
        let proposal = EhloOffer::for_connection(&self.config, self.tls.as_ref());
        match offer.excess_over(&proposal) {
            Some(excess) => Err(ApiError::NotProposed(excess)),
            None => Ok(()),
        }
    }

    /// A failed AUTH: `535` (or the embedder's reply), counted; too many
    /// close the connection.
    fn auth_failed(&mut self, reply: Option<Reply<'static>>) {
        if self.answer(reply, replies::AUTH_FAILED) {
            self.auth_failures = self.auth_failures.saturating_add(1);
            if self.auth_failures >= self.config.limits.max_auth_failures {
                self.close(
                    CloseReason::TooManyAuthFailures,
                    Some(replies::TOO_MANY_AUTH_FAILURES),
                );
            }
        }
    }

    /// Sends the custom reply or the default; false when the session closed.
    fn answer(&mut self, reply: Option<Reply<'static>>, default: &'static [u8]) -> bool {
        match reply {
            Some(r) => self.send_custom(&r),
            None => {
                self.send(default);
                true
            }
        }
    }

    fn apply(&mut self, pending: Pending, verdict: Class, reply: Option<Reply<'static>>) {
        use Class::{Accept, Reject, Tempfail};
        match (pending, verdict) {
            (Pending::Connect, Accept) => match reply {
                Some(r) => {
                    self.send_custom(&r);
                }
                None => self.write_greeting(),
            },
            (Pending::Connect, Reject) => {
                if self.answer(reply, replies::CONNECT_REJECTED) {
                    self.refused = true;
                }
            }
            (Pending::Connect, Tempfail) => {
                self.answer(reply, replies::CONNECT_TEMPFAIL);
                self.close(CloseReason::Refused, None);
            }
            (Pending::Hello { verb }, Accept) => {
                self.hello = Some(verb);
                self.write_hello_reply(verb);
            }
            (Pending::Hello { .. }, Reject) => {
                self.answer(reply, replies::HELLO_REJECTED);
            }
            (Pending::Hello { .. }, Tempfail) => {
                self.answer(reply, replies::HELLO_TEMPFAIL);
            }
            (
                Pending::Auth {
                    identity,
                    refuted: false,
                },
                Accept,
            ) => {
                if self.answer(reply, replies::AUTH_OK) {
                    self.auth = Some(identity);
                }
            }
            // A refuted proof is never authenticated, whatever the answer
            // (the embedder's reply text is not used either: it was
            // written for a success).
            (Pending::Auth { refuted: true, .. }, Accept) => self.auth_failed(None),
            (Pending::Auth { .. }, Reject) => self.auth_failed(reply),
            (Pending::Auth { .. }, Tempfail) => {
                self.answer(reply, replies::AUTH_TEMPFAIL);
            }
            (Pending::Mail(txn), Accept) => {
                if self.answer(reply, replies::SENDER_OK) {
                    self.txn = Some(txn);
                }
            }
            (Pending::Mail(_), Reject) => {
                self.answer(reply, replies::SENDER_REJECTED);
            }
            (Pending::Mail(_) | Pending::Rcpt, Tempfail) => {
                self.answer(reply, replies::TEMPFAIL);
            }
            (Pending::Rcpt, Accept) => {
                if self.answer(reply, replies::RECIPIENT_OK)
                    && let Some(txn) = &mut self.txn
                {
                    txn.recipients += 1;
                }
            }
            (Pending::Rcpt, Reject) => {
                self.answer(reply, replies::RECIPIENT_REJECTED);
            }
            (Pending::DataStart(BodyKind::Data), Accept) => {
                self.send(replies::START_DATA);
                self.phase = Phase::Data(self.data_decoder());
            }
            (Pending::DataStart(BodyKind::Bdat { size, last }), Accept) => {
                self.phase = Phase::Bdat(BdatState::accepted(size, last));
            }
            (Pending::DataStart(kind), verdict) => {
                // The embedder ended the transaction itself: no abort event.
                self.txn = None;
                let default = if verdict == Reject {
                    replies::DATA_REJECTED
                } else {
                    replies::TEMPFAIL
                };
                match kind {
                    BodyKind::Data => {
                        self.answer(reply, default);
                    }
                    BodyKind::Bdat { size, last } => {
                        if reply.as_ref().is_some_and(|r| r.code().get() == 421) {
                            // Closing anyway: no need to read the chunk.
                            self.answer(reply, default);
                        } else {
                            let wire = reply.map_or_else(|| default.to_vec(), |r| r.to_vec());
                            self.phase = Phase::Bdat(BdatState::refused(size, last, wire, false));
                        }
                    }
                }
            }
            (Pending::MessageComplete { next, total }, verdict) => {
                let default = match verdict {
                    Accept => replies::MESSAGE_OK,
                    Reject => replies::MESSAGE_REJECTED,
                    Tempfail => replies::TEMPFAIL,
                };
                if !self.answer(reply, default) {
                    return;
                }
                if next + 1 < total {
                    // LMTP: one reply per accepted recipient.
                    self.pending = Some(Pending::MessageComplete {
                        next: next + 1,
                        total,
                    });
                } else {
                    self.txn = None;
                }
            }
        }
    }
}

fn check_reply(
    kind: DecisionKind,
    verdict: Class,
    reply: Option<&Reply<'_>>,
) -> Result<(), ApiError> {
    let Some(reply) = reply else { return Ok(()) };
    let code = reply.code().get();
    let (decision, expected) = match verdict {
        Class::Accept => ("accept", 2),
        Class::Reject => ("reject", 5),
        Class::Tempfail => ("tempfail", 4),
    };
    if reply.code().class() != expected {
        return Err(ApiError::WrongReplyClass {
            decision,
            expected,
            got: code,
        });
    }
    if verdict == Class::Accept {
        match kind {
            DecisionKind::Hello | DecisionKind::DataStart => {
                return Err(ApiError::CustomAcceptNotAllowed(kind));
            }
            DecisionKind::Connect if code != 220 => {
                return Err(ApiError::WrongReplyCode {
                    expected: 220,
                    got: code,
                });
            }
            DecisionKind::Auth if code != 235 => {
                return Err(ApiError::WrongReplyCode {
                    expected: 235,
                    got: code,
                });
            }
            _ => {}
        }
    }
    Ok(())
}
