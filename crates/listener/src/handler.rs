//! What the embedder implements: one [`ConnectionHandler`] per connection,
//! asked about every session event in order.

use std::future::Future;
use std::net::SocketAddr;

use postern_session::{AuthIdentity, Decision, Event, HelloVerb, TlsInfo};

use crate::config::Mode;

/// What the embedder implements. One [`ConnectionHandler`] per accepted
/// connection.
pub trait Handler: Send + Sync + 'static {
    /// The per-connection handler.
    type Conn: ConnectionHandler;
    /// A connection was accepted (and, on an implicit-TLS listener, its
    /// handshake completed). Called before [`Event::Connect`] is delivered.
    fn connect(&self, info: &ConnContext) -> Self::Conn;
}

/// The embedder's side of one connection.
pub trait ConnectionHandler: Send + 'static {
    /// Every session event, in order. For events with
    /// [`Event::needs_decision`] the returned [`Decision`] is given to the
    /// session; for others the return value is ignored (return
    /// [`Decision::Accept`]).
    ///
    /// The future may take its time (e.g. fsync a spooled message before
    /// accepting [`Event::MessageComplete`]): the connection waits for it,
    /// and shutdown lets it finish.
    fn event(&mut self, event: Event, facts: &Facts<'_>) -> impl Future<Output = Decision> + Send;
}

/// A freshly accepted connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnContext {
    /// The listener's name.
    pub listener: String,
    /// The listener's address.
    pub local: SocketAddr,
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener's mode.
    pub mode: Mode,
}

/// What is known about the connection when an event is delivered, read
/// from the session.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
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
    /// the [`Event::Hello`] is delivered, so also during that event).
    pub hello_name: Option<&'a str>,
    /// Whether a mail transaction is open.
    pub in_transaction: bool,
    /// Recipients accepted so far in the open transaction.
    pub recipients: usize,
}

impl Facts<'_> {
    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}
