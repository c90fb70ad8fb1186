//! A sliding-window event counter in three numbers: the events of the
//! current fixed period, those of the previous one, and which period is
//! current. The estimate weighs the previous period by how much of it the
//! sliding window still covers, so a burst at a period boundary is not
//! forgiven at once (as a fixed window would) and no per-event timestamps
//! are kept (memory per key is constant).

/// Events counted over a sliding window of `period` seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    /// Index of the current period (`now / period`).
    pub period_index: u64,
    /// Events in the current period.
    pub current: u32,
    /// Events in the previous period.
    pub previous: u32,
}

impl Counter {
    /// This counter moved to the period of `now` (seconds since the Unix
    /// epoch): the current period becomes the previous one, or both are
    /// forgotten when more than one period passed.
    pub(crate) fn rolled(self, now: u64, period: u64) -> Self {
        let index = now / period.max(1);
        if index == self.period_index {
            self
        } else if index == self.period_index.saturating_add(1) {
            Counter {
                period_index: index,
                current: 0,
                previous: self.current,
            }
        } else {
            Counter {
                period_index: index,
                current: 0,
                previous: 0,
            }
        }
    }

    /// Events in the `period` seconds before `now`, estimated.
    pub fn estimate(&self, now: u64, period: u64) -> u32 {
        let period = period.max(1);
        let c = self.rolled(now, period);
        let elapsed = now % period;
        let carried = u64::from(c.previous) * (period - elapsed) / period;
        u32::try_from(carried)
            .unwrap_or(u32::MAX)
            .saturating_add(c.current)
    }

    /// Counts one event at `now`.
    pub fn add(&mut self, now: u64, period: u64) {
        *self = self.rolled(now, period);
        self.current = self.current.saturating_add(1);
    }

    /// Whether nothing counted is left in the window at `now`.
    pub fn is_empty_at(&self, now: u64, period: u64) -> bool {
        self.estimate(now, period) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_slides() {
        let mut c = Counter::default();
        for _ in 0..10 {
            c.add(600, 60);
        }
        assert_eq!(c.estimate(600, 60), 10);
        assert_eq!(c.estimate(659, 60), 10);
        // Half of the previous minute is still in the window.
        assert_eq!(c.estimate(690, 60), 5);
        assert_eq!(c.estimate(719, 60), 0);
        assert_eq!(c.estimate(720, 60), 0);
        assert!(c.is_empty_at(10_000, 60));
        c.add(690, 60);
        assert_eq!(c.estimate(690, 60), 6);
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        let mut c = Counter {
            period_index: 1,
            current: u32::MAX,
            previous: u32::MAX,
        };
        c.add(60, 60);
        assert_eq!(c.estimate(60, 60), u32::MAX);
    }
}
