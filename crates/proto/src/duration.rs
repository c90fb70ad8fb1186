//! Durations as configuration files write them (feature `serde`): `"5d"`,
//! `"4h"`, `"30m"`, `"10s"`, `"250ms"`, combinations such as `"1h 30m"`
//! (humantime's syntax), or a number of seconds. One parser, shared by the
//! crates whose settings deserialise (timeouts, retry delays, bans).
//!
//! ```
//! use std::time::Duration;
//!
//! #[derive(serde::Deserialize)]
//! struct Queue {
//!     #[serde(deserialize_with = "postern_proto::duration::deserialize")]
//!     max_age: Duration,
//! }
//! let q: Queue = toml::from_str("max_age = \"5d\"").unwrap();
//! assert_eq!(q.max_age, Duration::from_secs(5 * 86_400));
//! assert_eq!(postern_proto::duration::parse("90"), Some(Duration::from_secs(90)));
//! ```

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Parses `"5d"`, `"30m"`, `"1h 30m"`, `"250ms"` or plain seconds.
pub fn parse(text: &str) -> Option<Duration> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    humantime::parse_duration(t).ok()
}

/// Deserialises a duration: a string [`parse`] reads, or a number of
/// seconds. For `#[serde(deserialize_with = "...")]`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => parse(&t).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid duration {t:?} (write e.g. \"5d\", \"4h\", \"30m\", \"10s\" or a number of seconds)"
            ))
        }),
    }
}

/// [`deserialize`] for an optional field (with `#[serde(default)]`).
pub fn deserialize_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse("5d"), Some(Duration::from_secs(432000)));
        assert_eq!(parse("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse("12"), Some(Duration::from_secs(12)));
        assert_eq!(parse("2ms"), Some(Duration::from_millis(2)));
        assert_eq!(parse("1h 30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("x"), None);
    }
}
