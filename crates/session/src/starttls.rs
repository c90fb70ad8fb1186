//! STARTTLS (RFC 3207): the upgrade, the pipelining guard, the reset.

use crate::config::AfterStartTls;
use crate::connection::TlsInfo;
use crate::decision::ApiError;
use crate::event::{CloseReason, Notice};
use crate::offer::EhloOffer;
use crate::replies;
use crate::session::{Phase, Session};

impl Session {
    /// `STARTTLS`; `rest` octets were pipelined after it.
    pub(crate) fn starttls(&mut self, rest: usize) {
        if self.tls.is_some() {
            return self.refuse(replies::TLS_ALREADY_ACTIVE);
        }
        if !self.offer.starttls {
            return self.refuse(replies::STARTTLS_NOT_OFFERED);
        }
        if self.hello.is_none() {
            return self.send_hello_first();
        }
        if self.txn.is_some() {
            return self.refuse(replies::STARTTLS_IN_TRANSACTION);
        }
        if rest > 0 && self.config.after_starttls == AfterStartTls::Reject {
            return self.close(
                CloseReason::PipelinedAfterStartTls,
                Some(replies::PIPELINED_AFTER_STARTTLS),
            );
        }
        self.send(replies::READY_FOR_TLS);
        self.discarded_after_starttls += rest as u64;
        self.phase = Phase::AwaitingTls;
        self.parser.reset();
        // The caller drops the `rest` octets from the buffer.
        self.notify(Notice::StartTls { discarded: rest });
    }

    /// Plaintext arrived between `220` and the handshake.
    pub(crate) fn plaintext_after_starttls(&mut self, n: usize) {
        self.discarded_after_starttls += n as u64;
        if self.config.after_starttls == AfterStartTls::Reject {
            self.close(
                CloseReason::PipelinedAfterStartTls,
                Some(replies::PIPELINED_AFTER_STARTTLS),
            );
        }
    }

    /// The driver completed the TLS handshake that followed
    /// [`Notice::StartTls`]. The session starts over (RFC 3207 §4.2): no
    /// greeting, authentication or envelope survives, the client must
    /// `EHLO` again, and `STARTTLS` is no longer offered.
    ///
    /// Error counts and failed AUTH attempts carry over, so TLS cannot be
    /// used to reset them.
    pub fn tls_established(&mut self, info: TlsInfo) -> Result<(), ApiError> {
        match self.phase {
            Phase::Closed => return Err(ApiError::Closed),
            Phase::AwaitingTls => {}
            _ => return Err(ApiError::NotAwaitingTls),
        }
        self.tls = Some(info);
        self.offer = EhloOffer::proposal(&self.config, true);
        self.hello = None;
        self.auth = None;
        self.txn = None;
        self.parser = postern_proto::CommandParser::new(self.config.limits.lines);
        self.input.clear();
        self.phase = Phase::Command;
        self.notify(Notice::TlsEstablished);
        Ok(())
    }
}
