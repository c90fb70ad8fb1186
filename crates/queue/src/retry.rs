//! When to try again, and when to give up.

use std::time::Duration;

/// The retry schedule: exponential backoff up to a cap, until a maximum
/// queue age.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Delay after the first failed attempt.
    pub initial: Duration,
    /// Each further attempt multiplies the delay by this (at least 1).
    pub factor: f64,
    /// The longest delay between two attempts.
    pub cap: Duration,
    /// How long a message may stay queued (from arrival) before its
    /// deferred recipients bounce. RFC 5321 §4.5.4.1 suggests 4-5 days.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    /// 5 minutes, doubling, at most 1 hour apart, for 5 days.
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(5 * 60),
            factor: 2.0,
            cap: Duration::from_secs(60 * 60),
            max_age: Duration::from_secs(5 * 24 * 60 * 60),
        }
    }
}

impl RetryPolicy {
    /// The delay after the `attempts`-th failed attempt (1-based):
    /// `initial * factor^(attempts-1)`, at most `cap`.
    pub fn delay(&self, attempts: u32) -> Duration {
        let factor = if self.factor.is_finite() && self.factor >= 1.0 {
            self.factor
        } else {
            1.0
        };
        let exp = attempts.saturating_sub(1).min(64) as i32;
        let secs = self.initial.as_secs_f64() * factor.powi(exp);
        if !secs.is_finite() || secs >= self.cap.as_secs_f64() {
            self.cap
        } else {
            Duration::from_secs_f64(secs.max(0.0))
        }
    }
}

impl RetryPolicy {
    /// A policy from its four settings (see the fields).
    pub fn new(initial: Duration, factor: f64, cap: Duration, max_age: Duration) -> Self {
        RetryPolicy {
            initial,
            factor,
            cap,
            max_age,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            initial: Duration::from_secs(60),
            factor: 2.0,
            cap: Duration::from_secs(600),
            max_age: Duration::from_secs(3600),
        };
        assert_eq!(p.delay(1), Duration::from_secs(60));
        assert_eq!(p.delay(2), Duration::from_secs(120));
        assert_eq!(p.delay(4), Duration::from_secs(480));
        assert_eq!(p.delay(5), Duration::from_secs(600));
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(600));
        let odd = RetryPolicy {
            factor: f64::NAN,
            ..p
        };
        assert_eq!(odd.delay(10), Duration::from_secs(60));
    }
}
