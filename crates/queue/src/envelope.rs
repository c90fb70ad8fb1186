//! The envelope kept beside each queued message: sender, parameters,
//! recipients and their delivery state.

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use postern_proto::{Body, Notify, Orcpt, Ret, TlsVersion};

use crate::QueueId;
use crate::compat;

/// MAIL FROM parameters kept with the message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MessageParams {
    /// DSN `ENVID` (decoded from xtext).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    /// DSN `RET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<Ret>,
    /// `BODY=` as declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
    /// `SMTPUTF8` was given.
    #[serde(default)]
    pub smtputf8: bool,
    /// `SIZE=` as declared (the real size is the body file's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// The delivery state of one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum RcptStatus {
    /// Not yet attempted.
    Pending,
    /// Delivered (locally, or accepted by the next hop).
    Delivered {
        /// What happened, e.g. the remote `250` reply or `maildir alice`.
        #[serde(default)]
        reply: String,
    },
    /// Permanently failed; a DSN is due (unless the sender is null or
    /// `NOTIFY` excludes failure).
    Failed {
        /// The reply or error text, for logs and the DSN.
        reply: String,
    },
    /// Transiently failed; retried at [`Envelope::next_attempt`].
    Deferred {
        /// The last reply or error text.
        reply: String,
    },
}

impl RcptStatus {
    /// `Pending` or `Deferred`: work remains.
    pub fn is_open(&self) -> bool {
        matches!(self, RcptStatus::Pending | RcptStatus::Deferred { .. })
    }
}

/// One recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RecipientState {
    /// The address as accepted at RCPT (`local@domain`, no angle brackets).
    pub address: String,
    /// Where delivery stands.
    pub status: RcptStatus,
    /// DSN `ORCPT` (xtext decoded), if given.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "compat::orcpt"
    )]
    pub orcpt: Option<Orcpt<'static>>,
    /// DSN `NOTIFY`, if given (`None`: the default, failure and delay).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "compat::notify"
    )]
    pub notify: Option<Notify>,
    /// In a local domain: delivered to Maildir by the MTA itself, never
    /// relayed. The outbound runner must skip these.
    #[serde(default)]
    pub local: bool,
}

impl RecipientState {
    /// A pending recipient without DSN parameters.
    pub fn pending(address: impl Into<String>, local: bool) -> Self {
        RecipientState {
            address: address.into(),
            status: RcptStatus::Pending,
            orcpt: None,
            notify: None,
            local,
        }
    }

    /// The domain part of the address (after the last `@`), or `""`.
    pub fn domain(&self) -> &str {
        self.address.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// A queued message's envelope and bookkeeping, stored as `ID.env` (TOML).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Envelope {
    /// The message's queue id.
    pub id: QueueId,
    /// The reverse-path without angle brackets; `""` for the null sender
    /// (never bounce to it).
    pub sender: String,
    /// MAIL FROM parameters.
    #[serde(default)]
    pub params: MessageParams,
    /// Arrival, unix seconds (see [`Envelope::arrival_time`]); the
    /// outbound runner measures the maximum queue age from here.
    pub arrival: u64,
    /// Outbound delivery attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Unix seconds before which the outbound runner should not retry
    /// (0: now).
    #[serde(default)]
    pub next_attempt: u64,
    /// The listener that received it (for logs and DSNs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<String>,
    /// The client's address, `ip:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The client's HELO/EHLO name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helo: Option<String>,
    /// Negotiated TLS version on the inbound connection, e.g. `TLSv1.3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<TlsVersion>,
    /// Negotiated TLS cipher suite on the inbound connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cipher: Option<String>,
    /// The authenticated (SASL) user, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_user: Option<String>,
    /// The recipients, in RCPT order.
    pub recipients: Vec<RecipientState>,
}

impl Envelope {
    /// A fresh envelope: arrival now, no attempts, no recipients.
    pub fn new(id: QueueId, sender: impl Into<String>) -> Self {
        Envelope {
            id,
            sender: sender.into(),
            params: MessageParams::default(),
            arrival: unix_now(),
            attempts: 0,
            next_attempt: 0,
            listener: None,
            peer: None,
            helo: None,
            tls_version: None,
            tls_cipher: None,
            auth_user: None,
            recipients: Vec::new(),
        }
    }

    /// [`Envelope::arrival`] as a `SystemTime`.
    pub fn arrival_time(&self) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_secs(self.arrival)
    }

    /// No recipient is `Pending` or `Deferred`: the message can be removed.
    pub fn is_finished(&self) -> bool {
        !self.recipients.iter().any(|r| r.status.is_open())
    }

    /// Some local recipient is `Pending` or `Deferred`.
    pub fn has_open_local(&self) -> bool {
        self.recipients
            .iter()
            .any(|r| r.local && r.status.is_open())
    }

    /// Some remote recipient is `Pending` or `Deferred`.
    pub fn has_open_remote(&self) -> bool {
        self.recipients
            .iter()
            .any(|r| !r.local && r.status.is_open())
    }

    pub(crate) fn to_toml(&self) -> io::Result<String> {
        toml::to_string(self).map_err(|e| io::Error::other(format!("envelope {}: {e}", self.id)))
    }
}

/// Unix time in seconds (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
