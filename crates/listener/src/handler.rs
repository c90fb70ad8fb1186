//! What the embedder implements: one [`ConnectionHandler`] per connection,
//! asked the session's questions and told its notices, in order.

use std::future::Future;
use std::net::SocketAddr;

use postern_session::{AuthIdentity, Decision, HelloVerb, Notice, Question, TlsInfo};

use crate::config::Mode;

/// What the embedder implements for [`Server`](crate::Server): one
/// [`ConnectionHandler`] per accepted connection.
pub trait Handler: Send + Sync + 'static {
    /// The per-connection handler.
    type Conn: ConnectionHandler;
    /// A connection was accepted (and, on an implicit-TLS listener, its
    /// handshake completed). Called before [`Question::Connect`] is asked.
    fn connect(&self, info: &ConnContext) -> Self::Conn;
}

/// The embedder's side of one connection.
///
/// The connection waits for each future: a question's answer may take its
/// time (e.g. fsync a spooled message before accepting
/// [`Question::MessageComplete`]), and shutdown lets it finish.
pub trait ConnectionHandler: Send + 'static {
    /// A question the session waits on; the [`Decision`] returned is its
    /// answer. A decision the session cannot take (see
    /// [`Session::decide`](postern_session::Session::decide)) is logged and
    /// replaced by [`Decision::Tempfail`].
    ///
    /// The answer to [`Question::Hello`] says what the connection is
    /// offered: [`Decision::Accept`] for the proposal it carries, or
    /// [`Decision::Advertise`] with fewer capabilities (e.g. no AUTH for
    /// this client): the reply advertises them and the session enforces
    /// them.
    fn question(
        &mut self,
        question: Question,
        facts: &ConnectionView<'_>,
    ) -> impl Future<Output = Decision> + Send;

    /// Something that happened, with no answer expected: body chunks (write
    /// them out), aborted transactions (drop what was spooled), STARTTLS
    /// and its handshake, the close. The default ignores them.
    fn notice(
        &mut self,
        notice: Notice,
        facts: &ConnectionView<'_>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (notice, facts);
        async {}
    }
}

/// A freshly accepted connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnContext {
    /// The listener's name.
    pub listener: String,
    /// The listener's address.
    pub local: SocketAddr,
    /// The client's address: behind a trusted PROXY-protocol front, the
    /// one its header gave.
    pub peer: SocketAddr,
    /// The listener's mode.
    pub mode: Mode,
    /// The trusted PROXY-protocol front the connection came through, if
    /// any.
    pub via: Option<SocketAddr>,
}

impl ConnContext {
    /// A connection accepted directly (no PROXY-protocol front).
    pub fn new(
        listener: impl Into<String>,
        local: SocketAddr,
        peer: SocketAddr,
        mode: Mode,
    ) -> Self {
        Self {
            listener: listener.into(),
            local,
            peer,
            mode,
            via: None,
        }
    }
}

/// What is known about the connection when a question or notice is
/// delivered, read from the session.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ConnectionView<'a> {
    /// The listener's name.
    pub listener: &'a str,
    /// The listener's address.
    pub local: SocketAddr,
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener's mode.
    pub mode: Mode,
    /// The TLS parameters, once the connection is TLS (implicit, or after
    /// `STARTTLS`).
    pub tls: Option<&'a TlsInfo>,
    /// Who the client authenticated as, if it did.
    pub authenticated: Option<&'a AuthIdentity>,
    /// The greeting verb, once accepted.
    pub hello: Option<HelloVerb>,
    /// The name the client gave in its last `HELO`/`EHLO`/`LHLO` (set when
    /// the [`Question::Hello`] is asked, so also during that question).
    pub hello_name: Option<&'a str>,
    /// Whether a mail transaction is open.
    pub in_transaction: bool,
    /// Recipients accepted so far in the open transaction.
    pub recipients: usize,
}

impl ConnectionView<'_> {
    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}
