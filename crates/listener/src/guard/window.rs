//! A limit on events per address prefix.

/// How many events one address prefix may cause per minute and per day.
///
/// The prefix is given per family: `ipv4` bits for IPv4 clients, `ipv6`
/// bits for IPv6 clients (an IPv4-mapped IPv6 address counts as IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Window {
    /// IPv4 prefix length (0..=32).
    pub ipv4: u8,
    /// IPv6 prefix length (0..=128).
    pub ipv6: u8,
    /// Most events per minute (sliding); 0 means no per-minute limit.
    pub per_minute: u32,
    /// Most events per day (sliding); 0 means no per-day limit.
    pub per_day: u32,
}

impl Window {
    /// A window over these prefix lengths with these limits.
    pub const fn new(ipv4: u8, ipv6: u8, per_minute: u32, per_day: u32) -> Self {
        Self {
            ipv4,
            ipv6,
            per_minute,
            per_day,
        }
    }

    /// Whether the prefix lengths fit their families.
    pub fn is_valid(&self) -> bool {
        self.ipv4 <= 32 && self.ipv6 <= 128
    }
}

/// Seconds in a minute and in a day: the two periods counted.
pub(crate) const MINUTE: u64 = 60;
pub(crate) const DAY: u64 = 86_400;
