//! One message: checks against the server's capabilities, MAIL/RCPT/DATA or
//! BDAT, pipelined when offered, and the per-recipient results.

use postern_proto::{Body, Command, MailParams, Reply, ReplyCode};

use super::{Client, Expect, State};
use crate::body::{self, BareLineEnding};
use crate::error::{Phase, RelayError};
use crate::message::Message;
use crate::result::{MessageResult, RecipientResult};
use crate::tls::OutboundTls;

/// How the body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyMode {
    Data,
    Bdat,
}

/// A message in flight.
#[derive(Debug)]
pub(super) struct Transaction {
    message: Message,
    /// The body as it goes on the wire (stuffed and terminated for DATA).
    wire: Vec<u8>,
    mode: BodyMode,
    pipelined: bool,
    /// One slot per recipient; `None` until decided.
    results: Vec<Option<Result<Reply<'static>, RelayError>>>,
    /// Recipients with a positive RCPT reply, awaiting the final reply.
    accepted: Vec<usize>,
    mail_ok: bool,
    /// The first negative reply to a non-final BDAT chunk.
    chunk_error: Option<RelayError>,
    /// Octets of `wire` already sent in BDAT chunks.
    chunk_offset: usize,
    /// After a 354 with no accepted recipient, only the terminator was sent.
    empty_data: bool,
    dsn_dropped: bool,
}

impl Transaction {
    fn finish(self, tls: Option<OutboundTls>) -> MessageResult {
        let recipients = self
            .message
            .recipients
            .iter()
            .zip(self.results)
            .map(|(r, outcome)| RecipientResult {
                recipient: r.to.clone(),
                outcome: outcome.unwrap_or_else(|| {
                    Err(RelayError::Protocol {
                        phase: Phase::DataEnd,
                        what: "recipient left undecided".into(),
                    })
                }),
            })
            .collect();
        MessageResult {
            recipients,
            tls,
            server: None,
            dsn_dropped: self.dsn_dropped,
        }
    }

    /// Every undecided recipient gets `error`.
    pub(super) fn fail(mut self, error: &RelayError, tls: Option<OutboundTls>) -> MessageResult {
        for slot in &mut self.results {
            if slot.is_none() {
                *slot = Some(Err(error.clone()));
            }
        }
        self.finish(tls)
    }

    fn decide_accepted(&mut self, outcome: &Result<Reply<'static>, RelayError>) {
        for &i in &self.accepted {
            self.results[i] = Some(outcome.clone());
        }
    }
}

impl Client {
    pub(super) fn start_transaction(&mut self, message: Message) {
        let caps = self.caps.clone().unwrap_or_default();
        let reject = |this: &mut Client, message: &Message, error: RelayError| {
            let result = MessageResult::failed(message.recipients.iter().map(|r| &r.to), &error);
            let tls = this.tls.clone();
            this.events
                .push_back(super::ClientEvent::Done(MessageResult { tls, ..result }));
        };
        if message.recipients.is_empty() {
            let result = MessageResult {
                recipients: Vec::new(),
                tls: self.tls.clone(),
                server: None,
                dsn_dropped: false,
            };
            self.events.push_back(super::ClientEvent::Done(result));
            return;
        }
        // Checks that need no round trip: fail the message before MAIL.
        let size = message.body.len() as u64;
        if let Some(limit) = caps.size.filter(|&l| l > 0 && size > l) {
            return reject(self, &message, RelayError::MessageTooBig { size, limit });
        }
        if message.needs_smtputf8() && !caps.smtputf8 {
            return reject(self, &message, RelayError::SmtpUtf8Unsupported);
        }
        // RFC 8689 §5: the next hop must be authenticated TLS and offer
        // REQUIRETLS; nothing of the message is sent otherwise.
        if message.requiretls {
            let authenticated = self
                .tls
                .as_ref()
                .is_some_and(|t| t.verified || t.dane.is_some());
            if !authenticated {
                return reject(
                    self,
                    &message,
                    RelayError::RequireTlsUnmet("the connection is not authenticated TLS"),
                );
            }
            if !caps.requiretls {
                return reject(
                    self,
                    &message,
                    RelayError::RequireTlsUnmet("the server does not offer REQUIRETLS"),
                );
            }
        }
        let body_type = match message.body_type {
            Some(Body::BinaryMime) => {
                if !(caps.chunking && caps.binary_mime) {
                    return reject(self, &message, RelayError::BinaryUnsupported);
                }
                Body::BinaryMime
            }
            _ if body::is_eight_bit(&message.body) => {
                if !caps.eight_bit_mime {
                    return reject(self, &message, RelayError::EightBitUnsupported);
                }
                Body::EightBitMime
            }
            declared => declared.unwrap_or(Body::SevenBit),
        };
        let mode = if body_type == Body::BinaryMime || (self.config.chunking && caps.chunking) {
            BodyMode::Bdat
        } else {
            BodyMode::Data
        };
        let mut wire = Vec::new();
        let encoded = match (mode, body_type) {
            (BodyMode::Bdat, Body::BinaryMime) => {
                wire.extend_from_slice(&message.body);
                Ok(())
            }
            (BodyMode::Bdat, _) => {
                body::encode_chunked(&message.body, self.config.line_endings, &mut wire)
            }
            (BodyMode::Data, _) => {
                body::encode_data(&message.body, self.config.line_endings, &mut wire)
            }
        };
        if encoded == Err(BareLineEnding) {
            return reject(self, &message, RelayError::BareLineEnding);
        }

        let mut params = MailParams::default();
        if caps.size.is_some() {
            params.size = Some(size);
        }
        if caps.eight_bit_mime || body_type == Body::BinaryMime {
            params.body = Some(body_type).filter(|b| *b != Body::SevenBit);
        }
        params.smtputf8 = message.needs_smtputf8();
        params.requiretls = message.requiretls;
        let wants_dsn = message.ret.is_some()
            || message.envid.is_some()
            || message
                .recipients
                .iter()
                .any(|r| r.params.notify.is_some() || r.params.orcpt.is_some());
        if caps.dsn {
            params.ret = message.ret;
            params.envid = message.envid.clone().map(Into::into);
        }
        let pipelined = self.config.pipelining && caps.pipelining;
        let n = message.recipients.len();
        let txn = Transaction {
            wire,
            mode,
            pipelined,
            results: vec![None; n],
            accepted: Vec::with_capacity(n),
            mail_ok: false,
            chunk_error: None,
            chunk_offset: 0,
            empty_data: false,
            dsn_dropped: wants_dsn && !caps.dsn,
            message,
        };
        let mail = Command::Mail {
            from: txn.message.from.clone(),
            params,
        };
        self.state = State::Transaction;
        self.txn = Some(txn);
        if std::mem::take(&mut self.dirty) {
            self.send_command(&Command::Rset, Expect::Rset);
            if !pipelined {
                // MAIL waits for the RSET reply; keep it for then.
                self.pending_mail = Some(mail);
                return;
            }
        }
        self.send_mail(mail);
    }

    fn send_mail(&mut self, mail: Command<'static>) {
        self.send_command(&mail, Expect::Mail);
        let Some(txn) = &self.txn else { return };
        if txn.pipelined {
            for i in 0..txn.message.recipients.len() {
                self.send_rcpt(i);
            }
            if self.txn.as_ref().is_some_and(|t| t.mode == BodyMode::Data) {
                self.send_command(&Command::Data, Expect::Data);
            }
        }
    }

    fn send_rcpt(&mut self, i: usize) {
        let Some(txn) = &self.txn else { return };
        let caps_dsn = self.caps.as_ref().is_some_and(|c| c.dsn);
        let r = &txn.message.recipients[i];
        let mut params = r.params.clone();
        if !caps_dsn {
            params.notify = None;
            params.orcpt = None;
        }
        let rcpt = Command::Rcpt {
            to: r.to.clone(),
            params,
        };
        self.send_command(&rcpt, Expect::Rcpt(i));
    }

    pub(super) fn on_transaction_reply(&mut self, expect: Expect, reply: Reply<'static>) {
        let Some(txn) = self.txn.as_mut() else {
            return self.fail(
                RelayError::Protocol {
                    phase: expect.phase(),
                    what: format!("reply {reply} outside a transaction"),
                },
                false,
            );
        };
        let n = txn.message.recipients.len();
        match expect {
            Expect::Rset => {
                if !reply.is_positive() {
                    return self.refused(Phase::Rset, reply);
                }
                if let Some(mail) = self.pending_mail.take() {
                    self.send_mail(mail);
                }
            }
            Expect::Mail => {
                if reply.is_positive() {
                    txn.mail_ok = true;
                    if !txn.pipelined {
                        self.send_rcpt(0);
                    }
                } else {
                    let error = RelayError::Rejected {
                        phase: Phase::Mail,
                        reply,
                    };
                    for slot in &mut txn.results {
                        *slot = Some(Err(error.clone()));
                    }
                    if !txn.pipelined {
                        // No transaction was opened: nothing to RSET.
                        self.end_transaction(false);
                    }
                }
            }
            Expect::Rcpt(i) => {
                if txn.mail_ok {
                    if reply.is_positive() {
                        txn.accepted.push(i);
                    } else {
                        txn.results[i] = Some(Err(RelayError::Rejected {
                            phase: Phase::Rcpt,
                            reply,
                        }));
                    }
                }
                let last = i + 1 == n;
                if !txn.pipelined && !last {
                    self.send_rcpt(i + 1);
                } else if last && (!txn.pipelined || txn.mode == BodyMode::Bdat) {
                    self.after_recipients();
                }
            }
            Expect::Data => {
                if reply.code() == ReplyCode::START_DATA {
                    if txn.accepted.is_empty() {
                        // RFC 2920 §3.1: DATA was accepted although no
                        // recipient was; end the empty body at once.
                        txn.empty_data = true;
                        self.output.extend_from_slice(b".\r\n");
                    } else {
                        let wire = std::mem::take(&mut txn.wire);
                        self.output.extend_from_slice(&wire);
                    }
                    self.expect.push_back(Expect::DataEnd);
                } else if reply.is_positive() {
                    self.fail(
                        RelayError::Protocol {
                            phase: Phase::Data,
                            what: format!("DATA answered with {reply} instead of 354"),
                        },
                        false,
                    );
                } else {
                    let error = Err(RelayError::Rejected {
                        phase: Phase::Data,
                        reply,
                    });
                    txn.decide_accepted(&error);
                    let dirty = txn.mail_ok;
                    self.end_transaction(dirty);
                }
            }
            Expect::DataEnd => {
                if !txn.empty_data {
                    let outcome = if reply.is_positive() {
                        Ok(reply)
                    } else {
                        Err(RelayError::Rejected {
                            phase: Phase::DataEnd,
                            reply,
                        })
                    };
                    txn.decide_accepted(&outcome);
                }
                self.end_transaction(false);
            }
            Expect::Bdat { last } => {
                if !reply.is_positive() && txn.chunk_error.is_none() {
                    txn.chunk_error = Some(RelayError::Rejected {
                        phase: Phase::Bdat,
                        reply: reply.clone(),
                    });
                }
                if last {
                    let outcome = match txn.chunk_error.take() {
                        Some(e) => Err(e),
                        None => Ok(reply),
                    };
                    let failed = outcome.is_err();
                    txn.decide_accepted(&outcome);
                    self.end_transaction(failed);
                } else if !txn.pipelined {
                    self.send_chunks(false);
                }
            }
            _ => {}
        }
    }

    /// After the last RCPT reply (unpipelined, or BDAT): the body, or the
    /// end when nobody was accepted.
    fn after_recipients(&mut self) {
        let Some(txn) = self.txn.as_ref() else { return };
        if !txn.mail_ok {
            return self.end_transaction(false);
        }
        if txn.accepted.is_empty() {
            return self.end_transaction(true);
        }
        match txn.mode {
            BodyMode::Data => self.send_command(&Command::Data, Expect::Data),
            BodyMode::Bdat => {
                let all = txn.pipelined;
                self.send_chunks(all);
            }
        }
    }

    /// Sends the next BDAT chunk, or all of them when `all`.
    fn send_chunks(&mut self, all: bool) {
        let chunk_size = self.config.chunk_size.max(1);
        loop {
            let Some(txn) = self.txn.as_mut() else { return };
            let start = txn.chunk_offset;
            let end = (start + chunk_size).min(txn.wire.len());
            let last = end == txn.wire.len();
            let command = Command::Bdat {
                size: (end - start) as u64,
                last,
            };
            txn.chunk_offset = end;
            let _ = command.encode(self.output.vec());
            let Some(txn) = self.txn.as_ref() else { return };
            self.output.extend_from_slice(&txn.wire[start..end]);
            self.expect.push_back(Expect::Bdat { last });
            if last || !all {
                return;
            }
        }
    }

    fn end_transaction(&mut self, dirty: bool) {
        // A pipelined group ends only with the reply to its last command,
        // so no reply of this transaction is still owed here.
        let Some(txn) = self.txn.take() else { return };
        self.dirty = dirty;
        let result = txn.finish(self.tls.clone());
        self.events.push_back(super::ClientEvent::Done(result));
        self.state = State::Ready;
    }
}
