//! What the client tells its driver.

use crate::error::RelayError;
use crate::message::Message;
use crate::result::MessageResult;

/// An event from [`Client::poll_event`](crate::Client::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server accepted STARTTLS. Run the TLS handshake on the same
    /// socket now, then call [`Client::tls_established`](crate::Client::tls_established)
    /// or [`Client::tls_failed`](crate::Client::tls_failed). The client has
    /// checked that nothing followed the 220 reply; the driver must not
    /// have read ahead either (it feeds every octet it reads).
    StartTlsNow,
    /// The session is set up (greeting, EHLO, TLS and AUTH as configured):
    /// [`Client::send`](crate::Client::send) may be called.
    Ready,
    /// A message is finished, delivered or not: one result per recipient.
    Done(MessageResult),
    /// The server answered QUIT; close the socket.
    Closed,
    /// The session failed and is over; close the socket after writing any
    /// pending output (a polite QUIT, when the dialogue is still in step).
    Failed(RelayError),
}

/// [`Client::send`](crate::Client::send) was called while the client was
/// not ready; the message is handed back untouched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the client is not ready for a message")]
#[non_exhaustive]
pub struct NotReady(pub Box<Message>);

impl NotReady {
    /// The message, handed back.
    pub fn into_message(self) -> Message {
        *self.0
    }
}
