//! What the session tells its embedder.

use bytes::Bytes;
use postern_proto::{ForwardPath, Host, MailParams, RcptParams, ReversePath};

use crate::offer::EhloOffer;
use crate::sasl::Credentials;

/// What the session tells its embedder: a [`Question`] to answer or a
/// [`Notice`] to take note of, in the order they happened.
///
/// One queue holds both, so a driver sees body chunks before the question
/// about the message they make up, and a transaction's abort before the
/// next greeting.
///
/// Not `#[non_exhaustive]`, by design: every event is one or the other,
/// and new kinds are added to [`Question`] or [`Notice`] (both
/// `#[non_exhaustive]`), so a driver's match on `Event` stays complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The session waits for a [`Decision`](crate::Decision).
    Question(Question),
    /// Something happened; no answer is expected.
    Notice(Notice),
}

impl Event {
    /// True for [`Event::Question`]: the session waits on a decision.
    pub fn needs_decision(&self) -> bool {
        matches!(self, Event::Question(_))
    }
}

impl From<Question> for Event {
    fn from(q: Question) -> Self {
        Event::Question(q)
    }
}

impl From<Notice> for Event {
    fn from(n: Notice) -> Self {
        Event::Notice(n)
    }
}

/// A question the session waits on: answer it with
/// [`Session::decide`](crate::Session::decide) or its shortcuts. Until
/// then commands pipelined behind it are held and answered in order
/// afterwards; the answer may come at any later time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Question {
    /// A client connected: accept (`220` greeting), reject (`554`, then
    /// only `QUIT` is served) or tempfail (`421` and close).
    Connect,
    /// `HELO`, `EHLO` or `LHLO`; any transaction was aborted first. Accept
    /// with the proposed capabilities
    /// ([`Decision::Accept`](crate::Decision::Accept)), with fewer
    /// ([`Decision::Advertise`](crate::Decision::Advertise); a custom
    /// accept reply is not allowed), or refuse.
    Hello {
        /// Which greeting.
        verb: HelloVerb,
        /// The name or address literal the client gave.
        host: Host<'static>,
        /// What the session would offer this connection now: everything
        /// its configuration allows on the current transport.
        offer: EhloOffer,
    },
    /// The client completed a SASL exchange: accept (`235 2.7.0`), reject
    /// (`535 5.7.8`; counted, see
    /// [`Limits::max_auth_failures`](crate::Limits::max_auth_failures)) or
    /// tempfail (`454 4.7.0`).
    Auth {
        /// What the client presented; the secret does not print in Debug.
        credentials: Credentials,
    },
    /// `MAIL FROM`, after the session's own checks (sequence, TLS and AUTH
    /// requirements, parameters, declared size): accept (`250 2.1.0`, the
    /// transaction starts) or refuse.
    Mail {
        /// The reverse-path.
        from: ReversePath<'static>,
        /// Its parameters, all of them offered and valid.
        params: MailParams<'static>,
    },
    /// `RCPT TO`, after the session's own checks: accept (`250 2.1.5`) or
    /// refuse.
    Rcpt {
        /// The forward-path.
        to: ForwardPath<'static>,
        /// Its parameters.
        params: RcptParams<'static>,
    },
    /// The client wants to send the body (`DATA`, or the first `BDAT`):
    /// accept (`354` for DATA; for BDAT the chunk is read), or refuse (the
    /// transaction is aborted; a refused BDAT's octets are still consumed).
    DataStart {
        /// `DATA` or `BDAT`.
        kind: BodyKind,
    },
    /// The body is complete and passed the size and line-ending checks:
    /// accept (`250 2.0.0`, after the message is durable) or refuse. In
    /// LMTP mode one decision per accepted recipient, in recipient order
    /// (RFC 2033 §4.2).
    MessageComplete {
        /// Body size in octets.
        size: u64,
        /// Accepted recipients: the number of decisions owed in LMTP mode.
        recipients: usize,
    },
}

impl Question {
    /// The kind of decision this question asks for (in LMTP mode,
    /// [`Session::pending_decision`](crate::Session::pending_decision)
    /// also says which recipient's answer is due).
    pub fn kind(&self) -> DecisionKind {
        match self {
            Question::Connect => DecisionKind::Connect,
            Question::Hello { .. } => DecisionKind::Hello,
            Question::Auth { .. } => DecisionKind::Auth,
            Question::Mail { .. } => DecisionKind::Mail,
            Question::Rcpt { .. } => DecisionKind::Rcpt,
            Question::DataStart { .. } => DecisionKind::DataStart,
            Question::MessageComplete { .. } => DecisionKind::MessageComplete { recipient: None },
        }
    }
}

/// Something that happened, with no answer expected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// A piece of the message body, in order: unstuffed (DATA) or raw
    /// (BDAT), never past the size limit. Poll these promptly: unpolled
    /// chunks count against
    /// [`Limits::max_pending_input`](crate::Limits::max_pending_input).
    BodyChunk(Bytes),
    /// A transaction ended without a message (`RSET`, a new greeting, a
    /// refused body, the connection closing): drop whatever was spooled.
    TransactionAborted {
        /// Why.
        reason: AbortReason,
    },
    /// `STARTTLS` was accepted and `220` queued. The driver must write out
    /// all pending output, run the TLS handshake on the same socket, then
    /// call [`Session::tls_established`](crate::Session::tls_established)
    /// (or drop the connection when the handshake fails). It must not feed
    /// plaintext read after this notice to the session.
    StartTls {
        /// Octets that were pipelined after the `STARTTLS` line and have
        /// been discarded.
        discarded: usize,
    },
    /// The driver reported the TLS handshake after `STARTTLS` complete; the
    /// session starts over and waits for a new greeting.
    TlsEstablished,
    /// The session is closed; write out pending output, then close the
    /// socket.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// The greeting command used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HelloVerb {
    /// `HELO`: no extensions.
    Helo,
    /// `EHLO`.
    Ehlo,
    /// `LHLO` (LMTP).
    Lhlo,
}

/// How the body is transferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BodyKind {
    /// `DATA`, dot-stuffed, ended by `CRLF.CRLF`.
    Data,
    /// `BDAT` chunks (RFC 3030); the first one's size and `LAST` flag.
    Bdat {
        /// Octets of the first chunk.
        size: u64,
        /// The first chunk is also the last.
        last: bool,
    },
}

/// The kind of question a pending decision answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecisionKind {
    /// [`Question::Connect`].
    Connect,
    /// [`Question::Hello`].
    Hello,
    /// [`Question::Auth`].
    Auth,
    /// [`Question::Mail`].
    Mail,
    /// [`Question::Rcpt`].
    Rcpt,
    /// [`Question::DataStart`].
    DataStart,
    /// [`Question::MessageComplete`]; in LMTP mode `recipient` is the index of
    /// the accepted recipient this decision is for.
    MessageComplete {
        /// LMTP: which accepted recipient (0-based); SMTP: `None`.
        recipient: Option<usize>,
    },
}

impl DecisionKind {
    /// The SMTP stage as logs and metric labels name it: `connect`, `helo`,
    /// `auth`, `mail`, `rcpt`, `data` or `message` (the end of data).
    pub const fn name(self) -> &'static str {
        match self {
            DecisionKind::Connect => "connect",
            DecisionKind::Hello => "helo",
            DecisionKind::Auth => "auth",
            DecisionKind::Mail => "mail",
            DecisionKind::Rcpt => "rcpt",
            DecisionKind::DataStart => "data",
            DecisionKind::MessageComplete { .. } => "message",
        }
    }
}

/// Why a transaction ended without a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AbortReason {
    /// `RSET`.
    Reset,
    /// A new `HELO`/`EHLO`/`LHLO`.
    Hello,
    /// The body was larger than the limit (`552 5.3.4`).
    TooLarge,
    /// The body held bare CR or LF (`550 5.6.11`).
    BareLineEndings,
    /// The connection closed mid-transaction.
    Closed,
}

/// Why the session closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent `QUIT` (`221`).
    Quit,
    /// The driver reported a timeout (`421 4.4.2`).
    Timeout,
    /// The driver asked for shutdown (`421 4.3.2`).
    Shutdown,
    /// Too many protocol errors (`421 4.7.0`).
    TooManyErrors,
    /// Too many failed AUTH attempts (`421 4.7.0`).
    TooManyAuthFailures,
    /// Bytes pipelined after `STARTTLS` in [`AfterStartTls::Reject`](crate::AfterStartTls::Reject) mode (`554 5.5.0`).
    PipelinedAfterStartTls,
    /// A bare LF or bare CR in a command line (`521 5.5.2`); see
    /// [`Config::bare_lf_line_end`](crate::Config::bare_lf_line_end).
    BareLineEnding,
    /// The embedder answered with a `421` reply.
    Refused,
    /// The driver reported end of input.
    PeerClosed,
}
