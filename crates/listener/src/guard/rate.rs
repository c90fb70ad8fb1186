//! Connection rate limits per address prefix (Postfix's
//! `smtpd_client_connection_rate_limit`, per prefix).

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::SystemTime;

use ipnet::IpNet;

use super::net::{Networks, prefix_of};
use super::store::{GuardStore, Key, MemoryStore};
use super::window::{DAY, MINUTE, Window};

/// What the connection rate limiter enforces. The default: 60 connections
/// a minute per IPv4 address or IPv6 /64, and 600 per IPv4 /24 or IPv6
/// /48; no per-day limit; no allowlist.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimits {
    /// Limits per address prefix; a connection over any of them is refused.
    pub windows: Vec<Window>,
    /// Networks never limited nor counted.
    pub allow: Networks,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            windows: vec![Window::new(32, 64, 60, 0), Window::new(24, 48, 600, 0)],
            allow: Networks::none(),
        }
    }
}

impl RateLimits {
    /// No limit at all.
    pub fn unlimited() -> Self {
        Self {
            windows: Vec::new(),
            allow: Networks::none(),
        }
    }
}

/// A connection refused by its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateRefusal {
    /// The prefix over its limit.
    pub network: IpNet,
    /// Connections counted in the window.
    pub count: u32,
    /// The limit.
    pub limit: u32,
    /// Whether the per-day limit (else the per-minute one) was hit.
    pub daily: bool,
}

/// Counts connections per prefix and refuses those over a limit. Refused
/// connections are not counted, so a client slowing down is let in again
/// as its window slides. Pure logic over a [`GuardStore`], the clock
/// passed in.
#[derive(Debug)]
pub struct ConnectionRate<S = MemoryStore> {
    limits: RateLimits,
    store: Mutex<S>,
}

impl ConnectionRate<MemoryStore> {
    /// A limiter over an in-memory store of the default capacity.
    pub fn new(limits: RateLimits) -> Self {
        Self::with_store(limits, MemoryStore::default())
    }
}

impl<S: GuardStore> ConnectionRate<S> {
    /// A limiter over `store`.
    pub fn with_store(limits: RateLimits, store: S) -> Self {
        Self {
            limits,
            store: Mutex::new(store),
        }
    }

    /// The limits enforced.
    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Entries held by the store.
    pub fn entries(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, S> {
        match self.store.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Counts a connection from `ip` at `now`, or refuses it (counting
    /// nothing) when a prefix of it is at its limit.
    pub fn admit(&self, ip: IpAddr, now: SystemTime) -> Result<(), RateRefusal> {
        if self.limits.windows.is_empty() || self.limits.allow.contains(ip) {
            return Ok(());
        }
        let t = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut store = self.lock();
        let keyed: Vec<(Window, Key)> = self
            .limits
            .windows
            .iter()
            .map(|w| (*w, Key::Connections(prefix_of(ip, w.ipv4, w.ipv6))))
            .collect();
        let mut entries = Vec::with_capacity(keyed.len());
        for (w, key) in &keyed {
            let e = store.get(key).unwrap_or_default();
            let minute = e.minute.estimate(t, MINUTE);
            let day = e.day.estimate(t, DAY);
            let over = |count: u32, limit: u32| limit > 0 && count >= limit;
            let refusal = if over(minute, w.per_minute) {
                Some((minute, w.per_minute, false))
            } else if over(day, w.per_day) {
                Some((day, w.per_day, true))
            } else {
                None
            };
            if let Some((count, limit, daily)) = refusal {
                let Key::Connections(network) = key else {
                    continue;
                };
                return Err(RateRefusal {
                    network: *network,
                    count,
                    limit,
                    daily,
                });
            }
            entries.push(e);
        }
        for ((_, key), mut e) in keyed.into_iter().zip(entries) {
            e.minute.add(t, MINUTE);
            e.day.add(t, DAY);
            e.last_seen = t;
            store.put(key, e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn refuses_over_the_minute_and_lets_in_again() {
        let r = ConnectionRate::new(RateLimits {
            windows: vec![Window::new(32, 64, 5, 0)],
            allow: Networks::none(),
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..5 {
            assert_eq!(r.admit(ip, at(6000)), Ok(()));
        }
        let refused = r.admit(ip, at(6001)).unwrap_err();
        assert_eq!((refused.count, refused.limit), (5, 5));
        // Refusals are not counted: the window slides free.
        assert_eq!(r.admit(ip, at(6120)), Ok(()));
        assert_eq!(r.admit("192.0.2.2".parse().unwrap(), at(6001)), Ok(()));
    }

    #[test]
    fn wider_prefix_limit_and_allowlist() {
        let r = ConnectionRate::new(RateLimits {
            windows: vec![Window::new(32, 64, 100, 0), Window::new(24, 48, 3, 0)],
            allow: Networks::parse(["192.0.2.200"]).unwrap(),
        });
        for i in 0..3 {
            assert_eq!(
                r.admit(format!("192.0.2.{i}").parse().unwrap(), at(0)),
                Ok(())
            );
        }
        let refused = r.admit("192.0.2.9".parse().unwrap(), at(0)).unwrap_err();
        assert_eq!(refused.network.to_string(), "192.0.2.0/24");
        assert_eq!(r.admit("192.0.2.200".parse().unwrap(), at(0)), Ok(()));
        assert!(RateLimits::unlimited().windows.is_empty());
    }
}
