//! AUTH (RFC 4954): transport policy, the SASL exchange, failure counting.
//!
//! Policy is checked before anything else of the command is looked at: on
//! a transport where the mechanism is not allowed, the initial response is
//! never decoded and no `334` is sent.

use bytes::Buf;
use postern_proto::command::AuthParsed;
use postern_proto::{
    AuthResponse, InitialResponse, Mechanism, SyntaxError as Error, encode_base64,
};

use crate::event::Question;
use crate::offer::EhloOffer;
use crate::replies;
use crate::sasl::{ProofCheck, SaslContext, SaslServer, SaslStep};
use crate::session::{AuthIdentity, Pending, Phase, Session};

impl Session {
    pub(crate) fn auth_command(
        &mut self,
        mechanism: Mechanism<'_>,
        initial_response: Option<InitialResponse<'_>>,
    ) {
        if self.hello.is_none() {
            return self.send_hello_first();
        }
        let tls = self.tls.is_some();
        // What this connection was offered decides; what TLS would offer
        // (by configuration) only picks the refusal on plaintext.
        if !self.offer.offers_auth(&mechanism) {
            let over_tls = || EhloOffer::proposal(&self.config, true);
            let reply = if !tls && over_tls().offers_auth(&mechanism) {
                replies::ENCRYPTION_REQUIRED
            } else if self.offer.auth.is_empty() {
                if !tls && !over_tls().auth.is_empty() {
                    replies::ENCRYPTION_REQUIRED
                } else {
                    replies::AUTH_NOT_AVAILABLE
                }
            } else {
                return self.refuse_error(&Error::UnsupportedMechanism);
            };
            return self.refuse(reply);
        }
        if self.auth.is_some() {
            return self.refuse(replies::ALREADY_AUTHENTICATED);
        }
        if self.txn.is_some() {
            return self.refuse(replies::AUTH_IN_TRANSACTION);
        }
        let ctx = SaslContext {
            tls: self.tls.as_ref(),
            offered: &self.offer.auth,
        };
        let Some(server) = self
            .config
            .mechanisms
            .get(&mechanism)
            .map(|m| m.start_with(&ctx))
        else {
            return self.refuse_error(&Error::UnsupportedMechanism);
        };
        let response = match initial_response.as_ref().map(InitialResponse::decode) {
            None => None,
            Some(Ok(bytes)) => Some(bytes),
            Some(Err(e)) => return self.refuse_error(&e),
        };
        self.sasl_step(server, response.as_deref());
    }

    fn sasl_step(&mut self, mut server: Box<dyn SaslServer>, response: Option<&[u8]>) {
        match server.step(response) {
            SaslStep::Challenge(challenge) => {
                self.output.extend_from_slice(b"334 ");
                self.output
                    .extend_from_slice(encode_base64(&challenge).as_bytes());
                self.output.extend_from_slice(b"\r\n");
                self.phase = Phase::Auth(server);
            }
            SaslStep::Done(credentials) => {
                self.phase = Phase::Command;
                let identity = AuthIdentity {
                    mechanism: credentials.mechanism.clone(),
                    authcid: credentials.authcid.clone(),
                    authzid: credentials.authzid.clone(),
                };
                let refuted = credentials.check == ProofCheck::Refuted;
                self.ask(
                    Pending::Auth { identity, refuted },
                    Question::Auth { credentials },
                );
            }
            SaslStep::Malformed(_) => {
                self.phase = Phase::Command;
                self.refuse(replies::AUTH_MALFORMED);
            }
        }
    }

    /// Reads one continuation line of the SASL exchange.
    pub(crate) fn step_auth(&mut self) -> bool {
        let (response, consumed) = match self.parser.parse_auth_response(&self.input) {
            AuthParsed::Incomplete { consumed } => {
                self.input.advance(consumed);
                return false;
            }
            AuthParsed::Response { response, consumed } => (response, consumed),
        };
        self.input.advance(consumed);
        let Phase::Auth(server) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return false;
        };
        match response {
            Ok(AuthResponse::Cancel) => self.refuse(replies::AUTH_CANCELLED),
            Ok(AuthResponse::Data(data)) => self.sasl_step(server, Some(&data)),
            Err(error) => {
                if !self.bare_line_end(&error) {
                    self.refuse_error(&error);
                }
            }
        }
        true
    }
}
