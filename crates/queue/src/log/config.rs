//! Tunables of the log.

use super::error::LogError;
use super::io::Preallocation;
use super::record::HEADER_LEN;
use super::segment::SEGMENT_HEADER_LEN;

/// How the log lays out and maintains its segments.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LogConfig {
    /// Bytes per segment file (default 32 MiB). One submission must fit in
    /// a segment, less 128 bytes of segment header and seal.
    pub segment_size: u64,
    /// How a new segment's space is reserved (default
    /// [`Preallocation::ZeroFill`]).
    pub preallocation: Preallocation,
    /// Maintenance compacts a segment when less than this fraction of it
    /// is live (default 0.25): its live records are copied forward so the
    /// file can be removed.
    pub compact_below: f64,
    /// Run maintenance (reclaim and compaction) on a background thread
    /// after every segment rollover (default true). Without it, call
    /// [`Log::maintain`](super::Log::maintain).
    pub auto_maintain: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_size: 32 << 20,
            preallocation: Preallocation::ZeroFill,
            compact_below: 0.25,
            auto_maintain: true,
        }
    }
}

impl LogConfig {
    /// Sets [`LogConfig::segment_size`].
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    /// Sets [`LogConfig::preallocation`].
    pub fn preallocation(mut self, how: Preallocation) -> Self {
        self.preallocation = how;
        self
    }

    /// Sets [`LogConfig::compact_below`].
    pub fn compact_below(mut self, fraction: f64) -> Self {
        self.compact_below = fraction;
        self
    }

    /// Sets [`LogConfig::auto_maintain`].
    pub fn auto_maintain(mut self, on: bool) -> Self {
        self.auto_maintain = on;
        self
    }

    /// The most bytes one submission may take when encoded.
    pub fn max_submission(&self) -> usize {
        (self.segment_size as usize).saturating_sub(SEGMENT_HEADER_LEN + HEADER_LEN)
    }

    pub(crate) fn check(&self) -> Result<(), LogError> {
        if self.segment_size < 4096 || self.segment_size > u32::MAX as u64 {
            return Err(LogError::Config(
                "segment_size must be between 4 KiB and 4 GiB",
            ));
        }
        if !(0.0..=1.0).contains(&self.compact_below) {
            return Err(LogError::Config("compact_below must be between 0 and 1"));
        }
        Ok(())
    }
}
