//! What the session tells its embedder.

use bytes::Bytes;
use postern_proto::{ForwardPath, Host, MailParams, RcptParams, ReversePath};

use crate::sasl::Credentials;

/// Something the embedder must know, and for some events answer.
///
/// Events that need a decision say so in their docs (and
/// [`Event::needs_decision`]); answer them with
/// [`Session::decide`](crate::Session::decide) or its shortcuts. Until then
/// the session waits: commands pipelined behind are held and answered in
/// order afterwards. Decisions may come at any later time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A client connected. **Decision**: accept (`220` greeting), reject
    /// (`554`, then only `QUIT` is served) or tempfail (`421` and close).
    Connect,
    /// `HELO`, `EHLO` or `LHLO`. Any transaction was aborted first.
    /// **Decision**: accept (the `250` reply, with capabilities after
    /// EHLO/LHLO; a custom accept reply is not allowed) or refuse.
    Hello {
        /// Which greeting.
        verb: HelloVerb,
        /// The name or address literal the client gave.
        host: Host<'static>,
    },
    /// The client completed a SASL exchange. **Decision**: accept (`235
    /// 2.7.0`), reject (`535 5.7.8`; counted, see
    /// [`Limits::max_auth_failures`](crate::Limits::max_auth_failures)) or
    /// tempfail (`454 4.7.0`).
    Auth {
        /// What the client presented; the secret does not print in Debug.
        credentials: Credentials,
    },
    /// `MAIL FROM`, after the session's own checks (sequence, TLS and AUTH
    /// requirements, parameters, declared size). **Decision**: accept
    /// (`250 2.1.0`, the transaction starts) or refuse.
    Mail {
        /// The reverse-path.
        from: ReversePath<'static>,
        /// Its parameters, all of them offered and valid.
        params: MailParams<'static>,
    },
    /// `RCPT TO`, after the session's own checks. **Decision**: accept
    /// (`250 2.1.5`) or refuse.
    Rcpt {
        /// The forward-path.
        to: ForwardPath<'static>,
        /// Its parameters.
        params: RcptParams<'static>,
    },
    /// The client wants to send the body (`DATA`, or the first `BDAT`).
    /// **Decision**: accept (`354` for DATA; for BDAT the chunk is read),
    /// or refuse (the transaction is aborted; a refused BDAT's octets are
    /// still consumed).
    DataStart {
        /// `DATA` or `BDAT`.
        kind: BodyKind,
    },
    /// A piece of the message body, in order: unstuffed (DATA) or raw
    /// (BDAT), never past the size limit. Poll these promptly: unpolled
    /// chunks count against
    /// [`Limits::max_pending_input`](crate::Limits::max_pending_input).
    BodyChunk(Bytes),
    /// The body is complete and passed the size and line-ending checks.
    /// **Decision**: accept (`250 2.0.0`, after the message is durable) or
    /// refuse. In LMTP mode one decision per accepted recipient, in
    /// recipient order (RFC 2033 §4.2).
    MessageComplete {
        /// Body size in octets.
        size: u64,
        /// Accepted recipients: the number of decisions owed in LMTP mode.
        recipients: usize,
    },
    /// A transaction ended without a message: drop whatever was spooled.
    TransactionAborted {
        /// Why.
        reason: AbortReason,
    },
    /// `STARTTLS` was accepted and `220` queued. The driver must write out
    /// all pending output, run the TLS handshake on the same socket, then
    /// call [`Session::tls_established`](crate::Session::tls_established)
    /// (or drop the connection when the handshake fails). It must not feed
    /// plaintext read after this event to the session.
    StartTls {
        /// Octets that were pipelined after the `STARTTLS` line and have
        /// been discarded.
        discarded: usize,
    },
    /// The session is closed; write out pending output, then close the
    /// socket.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

impl Event {
    /// True for the events the session waits on a decision for.
    pub fn needs_decision(&self) -> bool {
        matches!(
            self,
            Event::Connect
                | Event::Hello { .. }
                | Event::Auth { .. }
                | Event::Mail { .. }
                | Event::Rcpt { .. }
                | Event::DataStart { .. }
                | Event::MessageComplete { .. }
        )
    }
}

/// The greeting command used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
pub enum DecisionKind {
    /// [`Event::Connect`].
    Connect,
    /// [`Event::Hello`].
    Hello,
    /// [`Event::Auth`].
    Auth,
    /// [`Event::Mail`].
    Mail,
    /// [`Event::Rcpt`].
    Rcpt,
    /// [`Event::DataStart`].
    DataStart,
    /// [`Event::MessageComplete`]; in LMTP mode `recipient` is the index of
    /// the accepted recipient this decision is for.
    MessageComplete {
        /// LMTP: which accepted recipient (0-based); SMTP: `None`.
        recipient: Option<usize>,
    },
}

/// Why a transaction ended without a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// The embedder answered with a `421` reply.
    Refused,
    /// The driver reported end of input.
    PeerClosed,
}
