//! The queue's timing as configuration: retry schedule, maximum age, scan
//! interval and the delay report, deserialised from a table such as TOML's
//! `[queue]` (every key optional, unknown keys refused).
//!
//! ```
//! use std::time::Duration;
//! use postern_queue::{QueueSchedule, runner::RunnerSettings};
//!
//! let s: QueueSchedule = toml::from_str(
//!     "max_age = \"5d\"\nretry_initial = \"5m\"\nretry_max = \"4h\"\nretry_factor = 2\n\
//!      scan_interval = \"10s\"\ndelay_warning = \"4h\"",
//! )
//! .unwrap();
//! assert_eq!(s.retry.cap, Duration::from_secs(4 * 3600));
//! let runner = RunnerSettings::new("mx.example.org").with_schedule(&s);
//! assert_eq!(runner.scan_interval, Duration::from_secs(10));
//! ```

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::RetryPolicy;

/// When the queue retries, gives up, scans and warns.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct QueueSchedule {
    /// Retry delays and the maximum age (`retry_initial`, `retry_factor`,
    /// `retry_max`, `max_age`).
    pub retry: RetryPolicy,
    /// How often the runner scans the queue (`scan_interval`).
    pub scan_interval: Duration,
    /// Tell the sender once that mail is delayed after this long (RFC 3464
    /// `action=delayed`, `delay_warning`); zero turns it off.
    pub delay_warning: Duration,
}

impl Default for QueueSchedule {
    /// What a configuration without these keys gets: retries 5 minutes
    /// apart, doubling, at most 4 hours apart, for 5 days; a scan every 10
    /// seconds; a delay report after 4 hours.
    fn default() -> Self {
        QueueSchedule {
            retry: RetryPolicy::new(
                Duration::from_secs(300),
                2.0,
                Duration::from_secs(4 * 3600),
                Duration::from_secs(5 * 86400),
            ),
            scan_interval: Duration::from_secs(10),
            delay_warning: Duration::from_secs(4 * 3600),
        }
    }
}

fn factor<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let f = f64::deserialize(d)?;
    if f.is_finite() && f >= 1.0 {
        Ok(Some(f))
    } else {
        Err(serde::de::Error::custom(format!(
            "retry_factor must be a number of at least 1, not {f}"
        )))
    }
}

impl<'de> Deserialize<'de> for QueueSchedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use postern_proto::duration::deserialize_option as duration;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            #[serde(default, deserialize_with = "duration")]
            max_age: Option<Duration>,
            #[serde(default, deserialize_with = "duration")]
            retry_initial: Option<Duration>,
            #[serde(default, deserialize_with = "duration")]
            retry_max: Option<Duration>,
            #[serde(default, deserialize_with = "factor")]
            retry_factor: Option<f64>,
            #[serde(default, deserialize_with = "duration")]
            scan_interval: Option<Duration>,
            #[serde(default, deserialize_with = "duration")]
            delay_warning: Option<Duration>,
        }
        let r = Raw::deserialize(d)?;
        let mut s = QueueSchedule::default();
        let p = &mut s.retry;
        p.max_age = r.max_age.unwrap_or(p.max_age);
        p.initial = r.retry_initial.unwrap_or(p.initial);
        p.cap = r.retry_max.unwrap_or(p.cap);
        p.factor = r.retry_factor.unwrap_or(p.factor);
        s.scan_interval = r.scan_interval.unwrap_or(s.scan_interval);
        s.delay_warning = r.delay_warning.unwrap_or(s.delay_warning);
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_keys_and_errors() {
        let s: QueueSchedule = toml::from_str("").unwrap();
        assert_eq!(s, QueueSchedule::default());
        let s: QueueSchedule =
            toml::from_str("retry_initial = 60\nretry_factor = 1.5\ndelay_warning = 0").unwrap();
        assert_eq!(s.retry.initial, Duration::from_secs(60));
        assert_eq!(s.retry.factor, 1.5);
        assert!(s.delay_warning.is_zero());
        let e = toml::from_str::<QueueSchedule>("retry_factor = 0.5").unwrap_err();
        assert!(e.to_string().contains("at least 1, not 0.5"), "{e}");
        let e = toml::from_str::<QueueSchedule>("retry = 1").unwrap_err();
        assert!(e.to_string().contains("retry"), "{e}");
    }
}
