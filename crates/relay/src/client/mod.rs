//! The SMTP client as a sans-IO state machine.
//!
//! The caller owns the socket: it feeds received octets to
//! [`Client::receive`] (which says how many it took), writes
//! [`Client::output`] and reports what it wrote with
//! [`Client::consume_output`], and reacts to [`Client::poll_event`]: the
//! same convention as `postern_session::Session`. Time is the caller's too: it waits at
//! most [`Client::timeout`] for input and calls [`Client::on_timeout`] when
//! that passes.

mod auth;
mod config;
mod event;
mod output;
mod password_file;
mod transaction;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use postern_proto::{
    Capabilities, Command, EhloError, EhloResponse, Reply, ReplyCode, ReplyParse, parse_reply,
};

pub use config::{RelayCredentials, SessionConfig, TlsRequirement};
pub use event::{ClientEvent, NotReady};
pub use password_file::PasswordFileError;

use crate::error::{Phase, RelayError};
use crate::message::Message;
use crate::tls::OutboundTls;
use auth::AuthStep;
use output::Output;
use transaction::Transaction;

/// A reply the client waits for, in the order the commands were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Auth(AuthStep),
    Rset,
    Mail,
    Rcpt(usize),
    Data,
    DataEnd,
    Bdat { last: bool },
    Quit,
}

impl Expect {
    fn phase(self) -> Phase {
        match self {
            Expect::Greeting => Phase::Greeting,
            Expect::Ehlo => Phase::Ehlo,
            Expect::Helo => Phase::Helo,
            Expect::StartTls => Phase::StartTls,
            Expect::Auth(_) => Phase::Auth,
            Expect::Rset => Phase::Rset,
            Expect::Mail => Phase::Mail,
            Expect::Rcpt(_) => Phase::Rcpt,
            Expect::Data => Phase::Data,
            Expect::DataEnd => Phase::DataEnd,
            Expect::Bdat { .. } => Phase::Bdat,
            Expect::Quit => Phase::Quit,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Greeting, EHLO/HELO, STARTTLS, AUTH.
    Setup,
    /// Waiting for the driver's TLS handshake.
    Handshake,
    /// Idle between messages.
    Ready,
    /// A message is in flight.
    Transaction,
    /// QUIT sent.
    Quitting,
    /// Over (closed or failed).
    Closed,
}

/// An SMTP client session, sans IO.
///
/// The session holds the security invariant of the outbound side: with
/// [`TlsRequirement::Required`] (or implicit TLS) it never becomes
/// [`ClientEvent::Ready`], and so never sends MAIL, RCPT or DATA, without TLS;
/// octets received after the 220 reply to STARTTLS abort the session
/// ([`RelayError::ResponseInjection`]); and after the handshake it forgets the
/// plaintext capabilities and trusts only the reply to a new EHLO.
#[derive(Debug)]
pub struct Client {
    config: Arc<SessionConfig>,
    state: State,
    /// Octets of an unfinished reply (at most `max_pending_input`).
    input: Vec<u8>,
    output: Output,
    events: VecDeque<ClientEvent>,
    expect: VecDeque<Expect>,
    /// `None` before EHLO and after HELO (no extensions).
    caps: Option<Capabilities<'static>>,
    tls: Option<OutboundTls>,
    starttls_tried: bool,
    ready_announced: bool,
    txn: Option<Transaction>,
    /// The server may hold transaction state: RSET before the next MAIL.
    dirty: bool,
    /// MAIL waiting for the reply to RSET (unpipelined).
    pending_mail: Option<Command<'static>>,
}

impl Client {
    /// A session on a fresh plaintext connection; the greeting comes first.
    pub fn new(config: Arc<SessionConfig>) -> Self {
        Self {
            config,
            state: State::Setup,
            input: Vec::new(),
            output: Output::default(),
            events: VecDeque::new(),
            expect: VecDeque::from([Expect::Greeting]),
            caps: None,
            tls: None,
            starttls_tried: false,
            ready_announced: false,
            txn: None,
            dirty: false,
            pending_mail: None,
        }
    }

    /// A session on a connection that is TLS from the first octet (implicit
    /// TLS, RFC 8314); STARTTLS is never issued.
    pub fn new_tls(config: Arc<SessionConfig>, tls: OutboundTls) -> Self {
        let mut client = Self::new(config);
        client.tls = Some(tls);
        client.starttls_tried = true;
        client
    }

    /// Feeds octets read from the connection and processes every reply
    /// they complete. Returns how many octets were taken, the convention of
    /// `postern_session::Session::receive`: a driver keeps the octets not
    /// taken and offers them again later.
    ///
    /// Replies are processed as soon as they are complete, so the client
    /// holds only an unfinished reply, and at most
    /// [`SessionConfig::max_pending_input`] octets of it: a server that
    /// sends more without finishing a reply fails the session with
    /// [`RelayError::ReplyTooLong`]. Once the session is over (and between
    /// [`ClientEvent::StartTlsNow`] and the handshake, where any octet is
    /// injected and fails the session) octets are taken and dropped.
    pub fn receive(&mut self, mut data: &[u8]) -> usize {
        let total = data.len();
        let limit = self.config.max_pending_input.max(1);
        loop {
            match self.state {
                State::Closed => return total,
                State::Handshake => {
                    // The driver hands the socket to TLS right after
                    // StartTlsNow; plaintext octets now are injected ones.
                    if !data.is_empty() {
                        self.fail(RelayError::ResponseInjection { bytes: data.len() }, false);
                    }
                    return total;
                }
                _ => {}
            }
            if data.is_empty() {
                return total;
            }
            let room = limit.saturating_sub(self.input.len());
            if room == 0 {
                let phase = self.phase();
                self.fail(RelayError::ReplyTooLong { phase, limit }, false);
                return total;
            }
            let (now, rest) = data.split_at(room.min(data.len()));
            self.input.extend_from_slice(now);
            data = rest;
            // Only a line feed can complete a reply (or an over-long line
            // fail one): parsing again without it would make a server
            // dribbling octets cost quadratic time.
            if memchr::memchr(b'\n', now).is_some()
                || self.input.len() >= self.config.reply_limits.max_line
            {
                self.process();
            }
        }
    }

    /// The octets to write next, in order: one contiguous buffer, so a
    /// pipelined group of commands goes out in one write (RFC 2920).
    pub fn output(&self) -> &[u8] {
        self.output.pending()
    }

    /// Marks `n` octets of [`output`](Self::output) as written (clamped to
    /// what there is).
    pub fn consume_output(&mut self, n: usize) {
        self.output.consume(n);
    }

    /// Whether there is output to write.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The phase and time limit for the reply awaited now; `None` when
    /// nothing is awaited (idle, handshake in progress, or closed).
    pub fn timeout(&self) -> Option<(Phase, Duration)> {
        if matches!(self.state, State::Handshake | State::Closed) {
            return None;
        }
        let t = &self.config.timeouts;
        let expect = *self.expect.front()?;
        let d = match expect {
            Expect::Greeting => t.greeting,
            Expect::Mail | Expect::Rset => t.mail,
            Expect::Rcpt(_) => t.rcpt,
            Expect::Data => t.data_init,
            Expect::DataEnd | Expect::Bdat { last: true } => t.data_end,
            Expect::Bdat { last: false } => t.data_block,
            _ => t.command,
        };
        Some((expect.phase(), d))
    }

    /// The awaited reply did not come in time: the session fails.
    pub fn on_timeout(&mut self) {
        let phase = self.phase();
        self.fail(RelayError::Timeout(phase), false);
    }

    /// The server closed the connection (end of stream).
    pub fn on_closed(&mut self) {
        match self.state {
            State::Closed => {}
            State::Quitting => {
                self.state = State::Closed;
                self.events.push_back(ClientEvent::Closed);
            }
            _ => {
                let phase = self.phase();
                self.fail(RelayError::Closed(phase), false);
            }
        }
    }

    /// Reading or writing failed.
    pub fn on_io_error(&mut self, message: impl Into<String>) {
        let phase = self.phase();
        self.fail(
            RelayError::Io {
                phase,
                message: message.into(),
            },
            false,
        );
    }

    /// The TLS handshake after [`ClientEvent::StartTlsNow`] completed: the client
    /// sends EHLO again and from now on trusts only that reply.
    pub fn tls_established(&mut self, info: OutboundTls) {
        if self.state != State::Handshake {
            return;
        }
        self.tls = Some(info);
        self.caps = None;
        self.state = State::Setup;
        self.send_command(&Command::Ehlo(self.config.helo_name.clone()), Expect::Ehlo);
    }

    /// The TLS handshake failed: the session is over (the driver may
    /// reconnect in plaintext when policy is opportunistic).
    pub fn tls_failed(&mut self, reason: impl Into<String>) {
        if self.state == State::Handshake {
            self.fail(RelayError::TlsHandshake(reason.into()), false);
        }
    }

    /// Starts delivering `message`. Only when [`Client::is_ready`]; the
    /// outcome arrives as [`ClientEvent::Done`].
    pub fn send(&mut self, message: Message) -> Result<(), NotReady> {
        if self.state != State::Ready {
            return Err(NotReady(Box::new(message)));
        }
        // Defence in depth: Ready is unreachable without TLS when TLS is
        // required, but the invariant is worth a second, local check.
        if self.config.tls == TlsRequirement::Required && self.tls.is_none() {
            self.fail(RelayError::TlsUnavailable, true);
            return Err(NotReady(Box::new(message)));
        }
        self.start_transaction(message);
        Ok(())
    }

    /// Ends the session politely: QUIT, then [`ClientEvent::Closed`].
    pub fn quit(&mut self) {
        if matches!(self.state, State::Closed | State::Quitting) {
            return;
        }
        self.state = State::Quitting;
        self.send_command(&Command::Quit, Expect::Quit);
    }

    /// Ready for [`Client::send`].
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    /// Closed or failed: nothing more will happen.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The TLS session, when one is up.
    pub fn tls(&self) -> Option<&OutboundTls> {
        self.tls.as_ref()
    }

    /// The capabilities the server advertised in its last EHLO reply (after
    /// TLS, only the post-TLS ones); `None` before EHLO or after HELO.
    pub fn capabilities(&self) -> Option<&Capabilities<'static>> {
        self.caps.as_ref()
    }

    fn phase(&self) -> Phase {
        match self.expect.front() {
            Some(e) => e.phase(),
            None if self.state == State::Handshake => Phase::Handshake,
            None => Phase::Idle,
        }
    }

    fn send_command(&mut self, command: &Command<'_>, expect: Expect) {
        if command.encode(self.output.vec()).is_err() {
            return self.fail(RelayError::Encode(expect.phase()), true);
        }
        self.expect.push_back(expect);
    }

    fn process(&mut self) {
        while !self.input.is_empty() && self.state != State::Closed {
            let parsed = parse_reply(&self.input, &self.config.reply_limits);
            let (reply, used) = match parsed {
                Ok(ReplyParse::Complete(reply, used)) => (reply.into_owned(), used),
                Ok(ReplyParse::Incomplete) => return,
                Err(error) => {
                    let phase = self.phase();
                    return self.fail(RelayError::MalformedReply { phase, error }, false);
                }
            };
            self.input.drain(..used);
            self.on_reply(reply);
        }
    }

    fn on_reply(&mut self, reply: Reply<'static>) {
        let Some(expect) = self.expect.pop_front() else {
            let phase = self.phase();
            if reply.code() == ReplyCode::SERVICE_UNAVAILABLE {
                return self.fail(RelayError::Rejected { phase, reply }, false);
            }
            return self.fail(
                RelayError::Protocol {
                    phase,
                    what: format!("unsolicited reply {reply}"),
                },
                false,
            );
        };
        // 421 at any point: the server is closing the channel (RFC 5321
        // §3.8); QUIT would go nowhere.
        if reply.code() == ReplyCode::SERVICE_UNAVAILABLE && expect != Expect::Quit {
            return self.fail(
                RelayError::Rejected {
                    phase: expect.phase(),
                    reply,
                },
                false,
            );
        }
        match expect {
            Expect::Greeting => self.on_greeting(reply),
            Expect::Ehlo => self.on_ehlo(reply),
            Expect::Helo => self.on_helo(reply),
            Expect::StartTls => self.on_starttls(reply),
            Expect::Auth(step) => self.on_auth(step, reply),
            Expect::Quit => {
                self.state = State::Closed;
                self.expect.clear();
                self.events.push_back(ClientEvent::Closed);
            }
            Expect::Rset
            | Expect::Mail
            | Expect::Rcpt(_)
            | Expect::Data
            | Expect::DataEnd
            | Expect::Bdat { .. } => self.on_transaction_reply(expect, reply),
        }
    }

    fn on_greeting(&mut self, reply: Reply<'static>) {
        if reply.code() != ReplyCode::SERVICE_READY {
            return self.refused(Phase::Greeting, reply);
        }
        self.send_command(&Command::Ehlo(self.config.helo_name.clone()), Expect::Ehlo);
    }

    fn on_ehlo(&mut self, reply: Reply<'static>) {
        if reply.code() == ReplyCode::OK {
            match lenient_ehlo(&reply) {
                Ok(caps) => {
                    self.caps = Some(caps);
                    self.after_hello();
                }
                Err(e) => self.fail(RelayError::MalformedEhlo(e), true),
            }
        } else if reply.is_permanent() {
            // RFC 5321 §4.1.4: an old server that does not know EHLO.
            self.send_command(&Command::Helo(self.config.helo_name.clone()), Expect::Helo);
        } else {
            self.refused(Phase::Ehlo, reply);
        }
    }

    fn on_helo(&mut self, reply: Reply<'static>) {
        if reply.code() != ReplyCode::OK {
            return self.refused(Phase::Helo, reply);
        }
        self.caps = None;
        self.after_hello();
    }

    /// After EHLO/HELO: STARTTLS as policy says, then AUTH, then ready.
    fn after_hello(&mut self) {
        let offered = self.caps.as_ref().is_some_and(|c| c.starttls);
        if self.tls.is_none() && !self.starttls_tried && self.config.tls != TlsRequirement::Plain {
            if offered {
                self.starttls_tried = true;
                return self.send_command(&Command::StartTls, Expect::StartTls);
            }
            if self.config.tls == TlsRequirement::Required {
                return self.fail(RelayError::TlsUnavailable, true);
            }
        }
        if self.config.tls == TlsRequirement::Required && self.tls.is_none() {
            return self.fail(RelayError::TlsUnavailable, true);
        }
        if let Some(creds) = &self.config.auth {
            if self.tls.is_none() && !self.config.allow_plaintext_auth {
                return self.fail(RelayError::AuthRequiresTls, true);
            }
            let offered = self
                .caps
                .as_ref()
                .and_then(|c| c.auth.as_deref())
                .unwrap_or(&[]);
            let Some(step) = auth::choose(offered) else {
                return self.fail(RelayError::AuthUnavailable, true);
            };
            let command = auth::start(step, creds);
            return self.send_command(&command, Expect::Auth(step));
        }
        self.ready();
    }

    fn on_starttls(&mut self, reply: Reply<'static>) {
        if reply.code() == ReplyCode::SERVICE_READY {
            if !self.input.is_empty() {
                // RFC 3207 §5 / CVE-2011-0411: these octets were written by
                // someone before the handshake and would otherwise be read
                // as replies inside the TLS session.
                let bytes = self.input.len();
                self.input.clear();
                return self.fail(RelayError::ResponseInjection { bytes }, false);
            }
            self.caps = None;
            self.state = State::Handshake;
            self.events.push_back(ClientEvent::StartTlsNow);
            return;
        }
        if self.config.tls == TlsRequirement::Required {
            return self.fail(RelayError::StartTlsRefused(reply), true);
        }
        // Opportunistic: RFC 3207 §4.1 lets the client go on in plaintext.
        self.after_hello();
    }

    fn on_auth(&mut self, step: AuthStep, reply: Reply<'static>) {
        let Some(creds) = self.config.auth.clone() else {
            return;
        };
        match (step, reply.code()) {
            (AuthStep::Plain | AuthStep::LoginPassword, ReplyCode::AUTH_OK) => self.ready(),
            (AuthStep::LoginStart, ReplyCode::AUTH_CHALLENGE) => {
                self.output
                    .extend_from_slice(&auth::response_line(&creds.username));
                self.expect.push_back(Expect::Auth(AuthStep::LoginUser));
            }
            (AuthStep::LoginUser, ReplyCode::AUTH_CHALLENGE) => {
                self.output
                    .extend_from_slice(&auth::response_line(&creds.password));
                self.expect.push_back(Expect::Auth(AuthStep::LoginPassword));
            }
            (_, code) if code.is_transient() || code.is_permanent() => {
                // Cancel a LOGIN exchange in progress is unnecessary: the
                // server has ended it with this reply.
                self.refused(Phase::Auth, reply)
            }
            _ => self.fail(
                RelayError::Protocol {
                    phase: Phase::Auth,
                    what: format!("unexpected reply {reply}"),
                },
                false,
            ),
        }
    }

    fn ready(&mut self) {
        self.state = State::Ready;
        if !self.ready_announced {
            self.ready_announced = true;
            self.events.push_back(ClientEvent::Ready);
        }
    }

    /// A negative reply ends the session (with a QUIT: the dialogue is in step).
    fn refused(&mut self, phase: Phase, reply: Reply<'static>) {
        self.fail(RelayError::Rejected { phase, reply }, true);
    }

    /// Ends the session with `error`: a message in flight gets it for every
    /// recipient not yet decided, then [`ClientEvent::Failed`].
    fn fail(&mut self, error: RelayError, quit: bool) {
        if self.state == State::Closed {
            return;
        }
        if let Some(txn) = self.txn.take() {
            let result = txn.fail(&error, self.tls.clone());
            self.events.push_back(ClientEvent::Done(result));
        }
        self.expect.clear();
        self.input.clear();
        if quit {
            let _ = Command::Quit.encode(self.output.vec());
        } else {
            // Out of step with the server: drop what was not written.
            self.output.clear();
        }
        self.state = State::Closed;
        self.events.push_back(ClientEvent::Failed(error));
    }
}

/// Reads the capabilities from an EHLO reply, skipping extension lines that
/// do not parse instead of refusing the server: Postfix's smtp-sink ends its
/// reply with an empty `250 ` line, and an unreadable line can only ever
/// mean an extension is *not* used (so a required STARTTLS that is
/// malformed still fails, safely).
fn lenient_ehlo(reply: &Reply<'static>) -> Result<Capabilities<'static>, EhloError> {
    let mut reply = reply.clone();
    // Each round removes one line, so this ends.
    loop {
        match EhloResponse::from_reply(&reply) {
            Ok(ehlo) => return Ok(ehlo.into_owned().capabilities),
            Err(EhloError::BadLine(bad)) => {
                let mut lines = reply.lines().to_vec();
                let Some(i) = lines.iter().skip(1).position(|l| **l == *bad) else {
                    return Err(EhloError::BadLine(bad));
                };
                lines.remove(i + 1);
                reply = Reply::new(reply.code(), reply.enhanced(), lines)
                    .map_err(|_| EhloError::BadLine(bad))?;
            }
            Err(e) => return Err(e),
        }
    }
}
