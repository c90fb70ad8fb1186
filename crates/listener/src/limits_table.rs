//! Per-message limits and per-connection timeouts as configuration
//! (feature `serde`): one table such as TOML's `[limits]`, applied to a
//! listener's session settings and connection limits.
//!
//! ```toml
//! [limits]
//! max_message_size = 26214400   # octets (SIZE; 552 5.3.4)
//! max_recipients = 100          # per message (452 4.5.3)
//! command_timeout = "5m"        # between commands (421 4.4.2)
//! data_timeout = "3m"           # between reads inside a body
//! handshake_timeout = "10s"     # one TLS handshake
//! ```

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::ConnLimits;

/// Per-message limits, and the per-connection timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageLimits {
    /// Largest message in octets (`SIZE`, `552 5.3.4`). Default 25 MiB.
    pub max_message_size: u64,
    /// Most recipients per message (`452 4.5.3`), at least 1. Default 100.
    pub max_recipients: usize,
    /// Longest wait for the client between commands (`421 4.4.2`).
    /// Default [`ConnLimits::command_timeout`].
    pub command_timeout: Duration,
    /// Longest wait for the next read inside a message body (`421 4.4.2`).
    /// Default [`ConnLimits::data_timeout`].
    pub data_timeout: Duration,
    /// Longest TLS handshake (implicit, or after `STARTTLS`); then the
    /// connection is closed. Default [`ConnLimits::handshake_timeout`].
    pub handshake_timeout: Duration,
}

impl Default for MessageLimits {
    fn default() -> Self {
        let conn = ConnLimits::default();
        MessageLimits {
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            command_timeout: conn.command_timeout,
            data_timeout: conn.data_timeout,
            handshake_timeout: conn.handshake_timeout,
        }
    }
}

impl MessageLimits {
    /// Sets the message size and recipient limits of a session.
    pub fn apply_to_session(&self, session: &mut postern_session::Config) {
        session.limits.max_message_size = self.max_message_size;
        session.limits.max_recipients = self.max_recipients;
    }

    /// Sets the timeouts of a listener's connections.
    pub fn apply_to_connections(&self, conn: &mut ConnLimits) {
        conn.command_timeout = self.command_timeout;
        conn.data_timeout = self.data_timeout;
        conn.handshake_timeout = self.handshake_timeout;
    }
}

/// A timeout longer than zero (zero would time out every connection).
fn timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let t = postern_proto::duration::deserialize(d)?;
    if t.is_zero() {
        return Err(serde::de::Error::custom(
            "must be longer than 0 (0 would time out every connection at once)",
        ));
    }
    Ok(Some(t))
}

impl<'de> Deserialize<'de> for MessageLimits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            max_message_size: Option<u64>,
            max_recipients: Option<usize>,
            #[serde(default, deserialize_with = "timeout")]
            command_timeout: Option<Duration>,
            #[serde(default, deserialize_with = "timeout")]
            data_timeout: Option<Duration>,
            #[serde(default, deserialize_with = "timeout")]
            handshake_timeout: Option<Duration>,
        }
        let r = Raw::deserialize(d)?;
        let l = MessageLimits::default();
        Ok(MessageLimits {
            max_message_size: r.max_message_size.unwrap_or(l.max_message_size),
            max_recipients: r.max_recipients.unwrap_or(l.max_recipients).max(1),
            command_timeout: r.command_timeout.unwrap_or(l.command_timeout),
            data_timeout: r.data_timeout.unwrap_or(l.data_timeout),
            handshake_timeout: r.handshake_timeout.unwrap_or(l.handshake_timeout),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_applied_and_checked() {
        let l: MessageLimits =
            toml::from_str("max_recipients = 0\ndata_timeout = \"1500ms\"").unwrap();
        assert_eq!(l.max_recipients, 1, "at least one recipient");
        let mut conn = ConnLimits::default();
        l.apply_to_connections(&mut conn);
        assert_eq!(conn.data_timeout, Duration::from_millis(1500));
        let mut s = postern_session::Config::new("mx.example");
        l.apply_to_session(&mut s);
        assert_eq!(s.limits.max_recipients, 1);
        let e = toml::from_str::<MessageLimits>("command_timeout = 0").unwrap_err();
        assert!(e.to_string().contains("must be longer than 0"), "{e}");
        assert!(toml::from_str::<MessageLimits>("max_size = 1").is_err());
    }
}
