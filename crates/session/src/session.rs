//! The session: state, input and output buffers, the command loop.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use postern_proto::data::DataDecoder;
use postern_proto::{
    Capabilities, Command, CommandParser, Host, Parsed, Reply, SyntaxError as Error,
};

use crate::capabilities;
use crate::config::{Config, Protocol, VrfyPolicy};
use crate::connection::{ConnectionInfo, TlsInfo};
use crate::data::BdatState;
use crate::event::{AbortReason, BodyKind, CloseReason, Event, HelloVerb, Notice, Question};
use crate::offer::EhloOffer;
use crate::replies;
use crate::sasl::SaslServer;
use crate::text::push_sanitized;
use crate::transaction::Transaction;

/// The identity a client authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthIdentity {
    /// The mechanism used.
    pub mechanism: postern_proto::Mechanism<'static>,
    /// The authentication identity.
    pub authcid: String,
    /// The authorization identity, when one was given.
    pub authzid: Option<String>,
}

/// What the session is reading.
pub(crate) enum Phase {
    /// Command lines.
    Command,
    /// A `DATA` body.
    Data(DataDecoder),
    /// The octets of a `BDAT` chunk.
    Bdat(BdatState),
    /// AUTH continuation lines, with the mechanism's state.
    Auth(Box<dyn SaslServer>),
    /// `220` to STARTTLS was queued; waiting for the driver's handshake.
    AwaitingTls,
    /// Done; input is dropped.
    Closed,
}

/// The question a decision is awaited for, with what its answer needs.
#[derive(Debug)]
pub(crate) enum Pending {
    Connect,
    Hello {
        verb: HelloVerb,
    },
    Auth {
        identity: AuthIdentity,
        /// The mechanism refuted the proof: never authenticated.
        refuted: bool,
    },
    Mail(Transaction),
    Rcpt,
    DataStart(BodyKind),
    MessageComplete {
        next: usize,
        total: usize,
    },
}

/// A sans-IO SMTP (or LMTP) server session.
///
/// The driver owns the socket. It feeds the session what it reads
/// ([`receive`](Self::receive)), writes what the session has to say
/// ([`output`](Self::output) / [`consume_output`](Self::consume_output)),
/// polls [`Event`]s ([`poll_event`](Self::poll_event)), answers the
/// [`Question`]s ([`decide`](Self::decide)) and takes note of the
/// [`Notice`]s. It reports what only it can know:
/// the TLS handshake ([`tls_established`](Self::tls_established)),
/// timeouts ([`timeout`](Self::timeout)), end of input
/// ([`peer_closed`](Self::peer_closed)), and server shutdown
/// ([`shutdown`](Self::shutdown)).
///
/// The session never blocks and never panics: a call that does not fit the
/// state returns an [`ApiError`](crate::ApiError) and changes nothing. See
/// the [crate docs](crate) for a complete driver loop.
pub struct Session {
    pub(crate) config: Arc<Config>,
    pub(crate) info: ConnectionInfo,
    pub(crate) tls: Option<TlsInfo>,
    pub(crate) parser: CommandParser,
    pub(crate) input: BytesMut,
    pub(crate) output: Vec<u8>,
    pub(crate) events: VecDeque<Event>,
    /// Octets in `BodyChunk` events not yet polled.
    pub(crate) unpolled_body: usize,
    pub(crate) phase: Phase,
    pub(crate) pending: Option<Pending>,
    pub(crate) hello: Option<HelloVerb>,
    /// What this connection is offered: the proposal for the transport
    /// until a greeting is accepted, then what the embedder agreed to.
    pub(crate) offer: EhloOffer,
    pub(crate) auth: Option<AuthIdentity>,
    pub(crate) txn: Option<Transaction>,
    pub(crate) errors: u32,
    pub(crate) auth_failures: u32,
    /// The greeting was refused with 5xx: only QUIT is served (RFC 5321 §3.1).
    pub(crate) refused: bool,
    pub(crate) shutdown_requested: bool,
    pub(crate) discarded_after_starttls: u64,
    pub(crate) close_reason: Option<CloseReason>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match self.phase {
            Phase::Command => "command",
            Phase::Data(_) => "data",
            Phase::Bdat(_) => "bdat",
            Phase::Auth(_) => "auth",
            Phase::AwaitingTls => "awaiting-tls",
            Phase::Closed => "closed",
        };
        f.debug_struct("Session")
            .field("peer", &self.info.peer)
            .field("phase", &phase)
            .field("tls", &self.tls.as_ref().map(|t| t.version))
            .field("hello", &self.hello)
            .field("auth", &self.auth.as_ref().map(|a| &a.authcid))
            .field("in_transaction", &self.txn.is_some())
            .field("pending", &self.pending_decision())
            .field("buffered_input", &self.input.len())
            .field("output", &self.output.len())
            .field("events", &self.events.len())
            .finish()
    }
}

impl Session {
    /// Starts a session for a new connection. The first event is
    /// [`Question::Connect`], which needs a decision before the greeting is
    /// sent. On an implicit-TLS listener, pass the handshake's parameters
    /// in [`ConnectionInfo::tls`].
    pub fn new(config: impl Into<Arc<Config>>, info: ConnectionInfo) -> Self {
        let config = config.into();
        let parser = CommandParser::new(config.limits.lines).with_bare_lf(config.bare_lf_line_end);
        let offer = EhloOffer::for_connection(&config, info.tls.as_ref());
        let mut session = Self {
            tls: info.tls.clone(),
            info,
            parser,
            input: BytesMut::new(),
            output: Vec::with_capacity(512),
            events: VecDeque::with_capacity(8),
            unpolled_body: 0,
            phase: Phase::Command,
            pending: None,
            hello: None,
            offer,
            auth: None,
            txn: None,
            errors: 0,
            auth_failures: 0,
            refused: false,
            shutdown_requested: false,
            discarded_after_starttls: 0,
            close_reason: None,
            config,
        };
        session.ask(Pending::Connect, Question::Connect);
        session
    }

    // ----- input -----

    /// Feeds octets read from the client and processes as much as the
    /// state allows. Returns how many octets were taken: all of them,
    /// unless the session holds
    /// [`Limits::max_pending_input`](crate::Limits::max_pending_input)
    /// octets it cannot process yet (a decision or unpolled body chunks are
    /// outstanding); the driver keeps the rest and offers them again once
    /// [`wants_read`](Self::wants_read) is true.
    ///
    /// After close, and between `STARTTLS` and
    /// [`tls_established`](Self::tls_established), octets are taken and
    /// dropped (counted in
    /// [`discarded_after_starttls`](Self::discarded_after_starttls); in
    /// [`AfterStartTls::Reject`](crate::AfterStartTls::Reject) mode they
    /// close the session).
    pub fn receive(&mut self, mut data: &[u8]) -> usize {
        let total = data.len();
        let limit = self.config.limits.effective_pending_input();
        loop {
            match self.phase {
                Phase::Closed => return total,
                Phase::AwaitingTls => {
                    if !data.is_empty() {
                        self.plaintext_after_starttls(data.len());
                    }
                    return total;
                }
                _ => {}
            }
            if data.is_empty() {
                return total;
            }
            let room = limit.saturating_sub(self.buffered());
            if room == 0 {
                return total - data.len();
            }
            let n = room.min(data.len());
            self.input.extend_from_slice(&data[..n]);
            data = &data[n..];
            self.process();
        }
    }

    /// Whether the driver should read from the socket: false once the
    /// session is closed, while a STARTTLS handshake is due, and while it
    /// holds as much unprocessed input as it may.
    pub fn wants_read(&self) -> bool {
        !matches!(self.phase, Phase::Closed | Phase::AwaitingTls)
            && self.buffered() < self.config.limits.effective_pending_input()
    }

    /// Input held: unprocessed octets plus octets of unpolled body chunks.
    pub fn buffered(&self) -> usize {
        self.input.len() + self.unpolled_body
    }

    // ----- output -----

    /// Replies to write, in order: one contiguous buffer, so a pipelined
    /// group of commands is answered with one write (RFC 2920).
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// Marks `n` octets of [`output`](Self::output) as written (clamped to
    /// what there is).
    pub fn consume_output(&mut self, n: usize) {
        let n = n.min(self.output.len());
        self.output.drain(..n);
    }

    /// Takes all pending output.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Whether there is output to write.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    // ----- events -----

    /// The next event, if any. Poll until `None` after every call that may
    /// have produced some.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        if let Event::Notice(Notice::BodyChunk(chunk)) = &event {
            self.unpolled_body = self.unpolled_body.saturating_sub(chunk.len());
        }
        Some(event)
    }

    // ----- driver signals -----

    /// The driver's idle timer fired: `421 4.4.2` and close, whatever the
    /// state (a transaction in flight is aborted).
    pub fn timeout(&mut self) {
        self.close(CloseReason::Timeout, Some(replies::TIMEOUT));
    }

    /// The server is shutting down: `421 4.3.2` and close at the next safe
    /// point, which is now unless a mail transaction is in flight; that one
    /// may finish (the client gets the reply to its message), then the
    /// session closes before reading another command.
    pub fn shutdown(&mut self) {
        if self.is_closed() {
            return;
        }
        self.shutdown_requested = true;
        if self.txn.is_none() {
            self.close(CloseReason::Shutdown, Some(replies::SHUTDOWN));
        }
    }

    /// The client closed its side (or the socket failed): the session
    /// closes without a reply, aborting any transaction.
    pub fn peer_closed(&mut self) {
        self.close(CloseReason::PeerClosed, None);
    }

    // ----- state -----

    /// Whether the session is closed: write out [`output`](Self::output),
    /// then close the socket.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Whether the session waits for the driver's TLS handshake (after
    /// [`Notice::StartTls`]). Any plaintext already read must still be given
    /// to [`receive`](Self::receive), which drops it: it must never be kept
    /// and fed in after the handshake.
    pub fn awaiting_tls(&self) -> bool {
        matches!(self.phase, Phase::AwaitingTls)
    }

    /// Why the session closed.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the driver said about the connection.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.info
    }

    /// The TLS parameters, once the connection is TLS.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// Whether the connection is TLS (implicit or after STARTTLS).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The greeting the client gave, once accepted.
    pub fn hello(&self) -> Option<HelloVerb> {
        self.hello
    }

    /// Who the client authenticated as, if it did.
    pub fn authenticated(&self) -> Option<&AuthIdentity> {
        self.auth.as_ref()
    }

    /// Whether a mail transaction is open (MAIL accepted, not yet ended).
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// Recipients accepted in the open transaction.
    pub fn recipients(&self) -> usize {
        self.txn.as_ref().map_or(0, |t| t.recipients)
    }

    /// Octets received between `STARTTLS` and the handshake, all dropped.
    pub fn discarded_after_starttls(&self) -> u64 {
        self.discarded_after_starttls
    }

    /// What this connection is offered now: after an accepted greeting,
    /// what the embedder agreed to; before, the session's proposal for
    /// the transport.
    pub fn offer(&self) -> &EhloOffer {
        &self.offer
    }

    /// The capabilities the last `EHLO` reply advertised (before one, what
    /// [`offer`](Self::offer) would advertise).
    pub fn capabilities(&self) -> Capabilities<'static> {
        self.offer
            .capabilities(self.tls.is_some(), self.config.limits.max_message_size)
    }

    // ----- internals -----

    pub(crate) fn esmtp(&self) -> bool {
        matches!(self.hello, Some(HelloVerb::Ehlo | HelloVerb::Lhlo))
    }

    /// Queues a question and waits for its decision.
    pub(crate) fn ask(&mut self, pending: Pending, question: Question) {
        self.pending = Some(pending);
        self.events.push_back(Event::Question(question));
    }

    /// Queues a notice.
    pub(crate) fn notify(&mut self, notice: Notice) {
        self.events.push_back(Event::Notice(notice));
    }

    pub(crate) fn send(&mut self, reply: &[u8]) {
        self.output.extend_from_slice(reply);
    }

    /// Sends one of the session's own refusals; a 5xx counts as an error.
    pub(crate) fn refuse(&mut self, reply: &[u8]) {
        self.output.extend_from_slice(reply);
        if reply.first() == Some(&b'5') {
            self.count_error();
        }
    }

    /// Sends the reply for a grammar error; counts as an error.
    pub(crate) fn refuse_error(&mut self, error: &Error) {
        let reply = error.reply();
        reply.encode(&mut self.output);
        if reply.is_permanent() {
            self.count_error();
        }
    }

    /// A bare LF or bare CR in a command or AUTH line: `521 5.5.2` and
    /// close, so what follows it is never taken for a command (a bare LF
    /// must not make a line boundary, and a client sending one may be
    /// trying to smuggle commands past a front end). False for other
    /// errors.
    pub(crate) fn bare_line_end(&mut self, error: &Error) -> bool {
        if matches!(error, Error::BareLf | Error::BareCr) {
            self.close(CloseReason::BareLineEnding, Some(replies::BARE_LINE_END));
            true
        } else {
            false
        }
    }

    fn count_error(&mut self) {
        self.errors = self.errors.saturating_add(1);
        if self.errors >= self.config.limits.max_errors {
            self.close(CloseReason::TooManyErrors, Some(replies::TOO_MANY_ERRORS));
        }
    }

    /// Sends an embedder's reply; a 421 closes the session. Returns false
    /// when it did.
    pub(crate) fn send_custom(&mut self, reply: &Reply<'_>) -> bool {
        reply.encode(&mut self.output);
        if reply.code().get() == 421 {
            self.close(CloseReason::Refused, None);
            return false;
        }
        true
    }

    pub(crate) fn emit_body(&mut self, chunk: bytes::Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.unpolled_body += chunk.len();
        self.notify(Notice::BodyChunk(chunk));
    }

    pub(crate) fn abort_transaction(&mut self, reason: AbortReason) {
        if self.txn.take().is_some() {
            self.notify(Notice::TransactionAborted { reason });
        }
    }

    pub(crate) fn close(&mut self, reason: CloseReason, reply: Option<&[u8]>) {
        if self.is_closed() {
            return;
        }
        if let Some(reply) = reply {
            self.output.extend_from_slice(reply);
        }
        self.abort_transaction(AbortReason::Closed);
        self.phase = Phase::Closed;
        self.pending = None;
        self.input.clear();
        self.close_reason = Some(reason);
        self.notify(Notice::Closed { reason });
    }

    /// Runs the state machine over buffered input until it needs more
    /// input, a decision, or the TLS handshake.
    pub(crate) fn process(&mut self) {
        loop {
            if self.pending.is_some() {
                return;
            }
            let progressed = match self.phase {
                Phase::Closed | Phase::AwaitingTls => return,
                Phase::Command => {
                    if self.shutdown_requested && self.txn.is_none() {
                        self.close(CloseReason::Shutdown, Some(replies::SHUTDOWN));
                        return;
                    }
                    self.step_command()
                }
                Phase::Data(_) => self.step_data(),
                Phase::Bdat(_) => self.step_bdat(),
                Phase::Auth(_) => self.step_auth(),
            };
            if !progressed {
                return;
            }
        }
    }

    /// Parses and handles one command line; false when none is complete.
    fn step_command(&mut self) -> bool {
        // The command borrows the buffer while the handlers borrow the
        // session, so the buffer is moved out for the step.
        let mut buf = std::mem::take(&mut self.input);
        let progressed = match self.parser.parse(&buf) {
            Parsed::Command { command, consumed } => {
                let rest = buf.len() - consumed;
                self.dispatch(command, rest);
                buf.advance(consumed);
                true
            }
            Parsed::Error { error, consumed } => {
                if !self.bare_line_end(&error) {
                    self.refuse_error(&error);
                }
                buf.advance(consumed);
                true
            }
            Parsed::Incomplete { consumed } => {
                buf.advance(consumed);
                false
            }
        };
        if matches!(self.phase, Phase::Closed | Phase::AwaitingTls) {
            // Pipelined after QUIT, a fatal error or STARTTLS: never read.
            buf.clear();
        }
        self.input = buf;
        progressed
    }

    /// Handles one command. `rest` is the number of octets buffered after
    /// its line.
    fn dispatch(&mut self, command: Command<'_>, rest: usize) {
        if self.refused {
            match command {
                Command::Quit => {}
                // A BDAT's octets are consumed whatever the answer.
                Command::Bdat { size, last } => {
                    let reply = replies::REFUSED_SEND_QUIT.to_vec();
                    self.phase = Phase::Bdat(BdatState::refused(size, last, reply, true));
                    return;
                }
                _ => return self.refuse(replies::REFUSED_SEND_QUIT),
            }
        }
        match command {
            Command::Ehlo(host) => self.hello_command(HelloVerb::Ehlo, host),
            Command::Helo(host) => self.hello_command(HelloVerb::Helo, host),
            Command::Lhlo(host) => self.hello_command(HelloVerb::Lhlo, host),
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => self.rcpt(to, params),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => {
                self.abort_transaction(AbortReason::Reset);
                self.send(replies::OK);
            }
            Command::Noop(_) => self.send(replies::OK),
            Command::Quit => {
                self.send(replies::BYE);
                self.close(CloseReason::Quit, None);
            }
            Command::Vrfy(_) => match self.config.vrfy {
                VrfyPolicy::CannotVerify => self.send(replies::CANNOT_VRFY),
                VrfyPolicy::NotImplemented => self.refuse(replies::VRFY_NOT_IMPLEMENTED),
            },
            Command::Expn(_) => match self.config.expn {
                VrfyPolicy::CannotVerify => self.send(replies::CANNOT_EXPN),
                VrfyPolicy::NotImplemented => self.refuse(replies::EXPN_NOT_IMPLEMENTED),
            },
            Command::Help(_) => self.send(replies::HELP),
            Command::StartTls => self.starttls(rest),
            Command::Auth {
                mechanism,
                initial_response,
            } => self.auth_command(mechanism, initial_response),
        }
    }

    pub(crate) fn send_hello_first(&mut self) {
        let reply = match self.config.protocol {
            Protocol::Smtp => replies::SEND_HELLO_FIRST,
            Protocol::Lmtp => replies::SEND_LHLO_FIRST,
        };
        self.refuse(reply);
    }

    fn hello_command(&mut self, verb: HelloVerb, host: Host<'_>) {
        match (self.config.protocol, verb) {
            (Protocol::Lmtp, HelloVerb::Ehlo | HelloVerb::Helo) => {
                return self.refuse(replies::USE_LHLO);
            }
            (Protocol::Smtp, HelloVerb::Lhlo) => {
                return self.refuse_error(&Error::UnknownCommand);
            }
            _ => {}
        }
        // RFC 5321 §4.1.4: a new greeting resets the state like RSET.
        self.abort_transaction(AbortReason::Hello);
        self.hello = None;
        let offer = EhloOffer::for_connection(&self.config, self.tls.as_ref());
        self.ask(
            Pending::Hello { verb },
            Question::Hello {
                verb,
                host: host.into_owned(),
                offer,
            },
        );
    }

    pub(crate) fn write_greeting(&mut self) {
        self.output.extend_from_slice(b"220 ");
        push_sanitized(&mut self.output, &self.config.hostname);
        self.output.extend_from_slice(match self.config.protocol {
            Protocol::Smtp => b" ESMTP ",
            Protocol::Lmtp => b" LMTP ",
        });
        push_sanitized(&mut self.output, &self.config.banner);
        self.output.extend_from_slice(b"\r\n");
    }

    pub(crate) fn write_hello_reply(&mut self, verb: HelloVerb) {
        match verb {
            HelloVerb::Helo => {
                self.output.extend_from_slice(b"250 ");
                push_sanitized(&mut self.output, &self.config.hostname);
                self.output.extend_from_slice(b"\r\n");
            }
            HelloVerb::Ehlo | HelloVerb::Lhlo => {
                capabilities::write_ehlo(
                    &mut self.output,
                    &self.config.hostname,
                    &self.offer,
                    self.tls.is_some(),
                    self.config.limits.max_message_size,
                );
            }
        }
    }
}
