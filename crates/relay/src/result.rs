//! Delivery results: per recipient, with the reply, and the TLS facts of
//! the connection that carried the message.

use postern_proto::{ForwardPath, Reply};

use crate::error::RelayError;
use crate::tls::OutboundTls;
use crate::tlsrpt::TlsSession;

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecipientResult {
    /// The recipient.
    pub recipient: ForwardPath<'static>,
    /// The server's positive final reply, or why delivery failed.
    pub outcome: Result<Reply<'static>, RelayError>,
}

impl RecipientResult {
    /// The server accepted the message for this recipient.
    pub fn is_delivered(&self) -> bool {
        self.outcome.is_ok()
    }

    /// Not delivered; a retry may succeed.
    pub fn is_transient(&self) -> bool {
        self.outcome.as_ref().is_err_and(RelayError::is_transient)
    }

    /// Not delivered; a retry will not succeed (bounce).
    pub fn is_permanent(&self) -> bool {
        self.outcome.as_ref().is_err_and(RelayError::is_permanent)
    }

    /// The server's reply that decided this recipient, if any.
    pub fn reply(&self) -> Option<&Reply<'static>> {
        match &self.outcome {
            Ok(r) => Some(r),
            Err(e) => e.reply(),
        }
    }
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageResult {
    /// One result per recipient, in the message's order.
    pub recipients: Vec<RecipientResult>,
    /// The TLS session the message went over; `None` for plaintext (or
    /// when it was never sent).
    pub tls: Option<OutboundTls>,
    /// The server that answered, as `name[address]:port`, when one did.
    pub server: Option<String>,
    /// DSN parameters were set but the server does not offer DSN, so they
    /// were not sent (RFC 3461 §4: the relay must then report "relayed").
    pub dsn_dropped: bool,
}

impl MessageResult {
    /// Every recipient failed with `error`.
    pub fn failed<'a>(
        recipients: impl IntoIterator<Item = &'a ForwardPath<'static>>,
        error: &RelayError,
    ) -> Self {
        Self {
            recipients: recipients
                .into_iter()
                .map(|r| RecipientResult {
                    recipient: r.clone(),
                    outcome: Err(error.clone()),
                })
                .collect(),
            tls: None,
            server: None,
            dsn_dropped: false,
        }
    }

    /// Every recipient was delivered.
    pub fn all_delivered(&self) -> bool {
        self.recipients.iter().all(RecipientResult::is_delivered)
    }

    /// How many recipients were delivered.
    pub fn delivered(&self) -> usize {
        self.recipients.iter().filter(|r| r.is_delivered()).count()
    }
}

/// What one [`Relay::deliver_reporting`](crate::Relay::deliver_reporting)
/// did: a result per message, and the TLS sessions it tried for TLS-RPT
/// (RFC 8460), each under the policy that applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// One result per message, in order.
    pub results: Vec<MessageResult>,
    /// One entry per session that attempted TLS with an MX host (and per
    /// policy that failed before any session); empty for smart hosts.
    pub tls_sessions: Vec<TlsSession>,
}
