//! The envelope kept beside each queued message: sender, parameters,
//! recipients and their delivery state.

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use postern_proto::{Body, Domain, Host, Mailbox, Notify, Orcpt, Ret, ReversePath, TlsVersion};

use crate::QueueId;
use crate::compat;
use crate::report::Diagnosis;

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
    /// `REQUIRETLS` was given (RFC 8689): every onward hop must be
    /// authenticated TLS offering REQUIRETLS, else the message bounces
    /// with 5.7.30. Written only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requiretls: bool,
}

/// The delivery state of one recipient.
///
/// Stored as a table tagged by `state`, with the [`Diagnosis`] fields
/// beside the tag; the v1 form (a `reply` text) is still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "state",
    rename_all = "snake_case",
    from = "compat::StoredStatus"
)]
#[non_exhaustive]
pub enum RcptStatus {
    /// Not yet attempted.
    Pending,
    /// Delivered (locally, or accepted by the next hop): the next hop's
    /// `250` reply, or what local delivery did.
    Delivered(Diagnosis),
    /// Permanently failed; a DSN is due (unless the sender is null or
    /// `NOTIFY` excludes failure).
    Failed(Diagnosis),
    /// Transiently failed (the last reply or error); retried at
    /// [`Envelope::next_attempt`].
    Deferred(Diagnosis),
}

impl RcptStatus {
    /// `Pending` or `Deferred`: work remains.
    pub fn is_open(&self) -> bool {
        matches!(self, RcptStatus::Pending | RcptStatus::Deferred(_))
    }

    /// Why the recipient is where it is; `None` while `Pending`.
    pub fn diagnosis(&self) -> Option<&Diagnosis> {
        match self {
            RcptStatus::Pending => None,
            RcptStatus::Delivered(d) | RcptStatus::Failed(d) | RcptStatus::Deferred(d) => Some(d),
        }
    }
}

/// One recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RecipientState {
    /// The mailbox as accepted at RCPT (`<Postmaster>` already resolved to
    /// a local mailbox; local ones lower-cased). Stored as `local@domain`
    /// text and read back through proto's grammar.
    pub address: Mailbox<'static>,
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
    pub fn pending(address: Mailbox<'static>, local: bool) -> Self {
        RecipientState {
            address,
            status: RcptStatus::Pending,
            orcpt: None,
            notify: None,
            local,
        }
    }

    /// The host part of the address: a domain, or an address literal
    /// ([`Host::Literal`]).
    pub fn host(&self) -> &Host<'static> {
        self.address.host()
    }

    /// The domain of the address; `None` for an address literal.
    pub fn domain(&self) -> Option<&Domain<'static>> {
        self.address.domain()
    }
}

/// A queued message's envelope and bookkeeping, stored as `ID.env` (TOML).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Envelope {
    /// The message's queue id.
    pub id: QueueId,
    /// The reverse-path; [`ReversePath::Null`] for the null sender (never
    /// bounce to it). Stored in its wire form (`"<alice@example.org>"`,
    /// `"<>"`); the v1 bare form is still read.
    #[serde(deserialize_with = "compat::reverse_path")]
    pub sender: ReversePath<'static>,
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
    /// The "delayed" report (RFC 3464 `action=delayed`) was sent, or was
    /// not due (null sender, `NOTIFY`): it goes once per message, and a
    /// restart must not send it again. Written only when true, so older
    /// readers see the envelopes they know.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delay_reported: bool,
    /// Put on hold by an operator (`queue hold`): the outbound runner
    /// leaves it alone until it is released. Durable, like Postfix's hold
    /// queue; written only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_hold: bool,
}

impl Envelope {
    /// A fresh envelope: arrival now, no attempts, no recipients.
    pub fn new(id: QueueId, sender: ReversePath<'static>) -> Self {
        Envelope {
            id,
            sender,
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
            delay_reported: false,
            on_hold: false,
        }
    }

    /// [`Envelope::arrival`] as a `SystemTime`.
    pub fn arrival_time(&self) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_secs(self.arrival)
    }

    /// The client's IP address, from [`peer`](Self::peer) (`ip:port`,
    /// `[v6]:port` or a bare address); `None` when absent or unreadable.
    pub fn peer_ip(&self) -> Option<std::net::IpAddr> {
        let peer = self.peer.as_deref()?;
        peer.parse::<std::net::SocketAddr>()
            .map(|s| s.ip())
            .or_else(|_| peer.trim_matches(['[', ']']).parse())
            .ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_parse() {
        let id: QueueId = "0005e3b1a2c3d4000100000001".parse().expect("an id");
        let peer_ip = |peer: &str| {
            let mut env = Envelope::new(id.clone(), ReversePath::Null);
            env.peer = Some(peer.to_owned());
            env.peer_ip()
        };
        assert_eq!(
            peer_ip("192.0.2.1:2525"),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            peer_ip("[2001:db8::1]:25"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(peer_ip("nonsense"), None);
    }
}
