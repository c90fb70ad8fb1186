//! Queue ids.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A queue id: 26 lowercase hex digits, `TTTTTTTTTTTTTT` (unix time in
/// microseconds, 14 digits) `PPPP` (process nonce) `CCCCCCCC` (counter).
///
/// Ids sort by arrival time, are unique within a spool (the nonce changes per
/// process start, the counter per message) and are safe as file names. They
/// appear in the `250` reply, the logs, the Received header and Maildir
/// file names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QueueId(pub(crate) String);

const ID_LEN: usize = 26;

impl QueueId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// When the message arrived: the time written into the id (to the
    /// microsecond) when it was made. Ids sort by it, so the smallest id in
    /// a spool is its oldest message (queue-age metrics need no envelope
    /// read).
    pub fn arrival(&self) -> SystemTime {
        let micros = u64::from_str_radix(&self.0[..14], 16).unwrap_or(0);
        UNIX_EPOCH + Duration::from_micros(micros)
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Text that is not a queue id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a queue id: {0:?} (expected {ID_LEN} lowercase hex digits)")]
pub struct BadQueueId(pub String);

impl FromStr for QueueId {
    type Err = BadQueueId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(QueueId(s.to_owned()))
        } else {
            Err(BadQueueId(s.to_owned()))
        }
    }
}

impl TryFrom<String> for QueueId {
    type Error = BadQueueId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<QueueId> for String {
    fn from(id: QueueId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_is_read_from_the_id() {
        let id: QueueId = "0005e3b1a2c3d4000100000001".parse().expect("an id");
        let micros = 0x0000_05e3_b1a2_c3d4_u64;
        assert_eq!(id.arrival(), UNIX_EPOCH + Duration::from_micros(micros));
        let spool_dir = std::env::temp_dir().join(format!("postern-id-{}", std::process::id()));
        let spool = crate::LogStore::open(&spool_dir).expect("store");
        let before = SystemTime::now() - Duration::from_secs(1);
        let fresh = spool.new_id();
        assert!(fresh.arrival() >= before && fresh.arrival() <= SystemTime::now());
        let _ = std::fs::remove_dir_all(spool_dir);
    }
}
