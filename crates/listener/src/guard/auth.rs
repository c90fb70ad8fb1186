//! The AUTH failure limiter: throttles and bans per address prefix,
//! per-login slowing, and the per-connection delay.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

use super::net::{Networks, prefix_of};
use super::store::{Entry, GuardStore, Key, MemoryStore};
use super::window::{DAY, MINUTE, Window};

/// What the AUTH limiter enforces. `AuthLimits::default()` is mox's
/// policy: per IPv4 /32, /26 and /21 and per IPv6 /64, /48 and /32, 10, 30
/// and 90 failures a minute and 50, 150 and 450 a day; a login 10 a minute
/// and 50 a day; one-hour bans; no allowlist (loopback included).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthLimits {
    /// Failure limits per address prefix, narrowest first. Past a
    /// window's per-minute limit its prefix is throttled (`454 4.7.0`)
    /// until the minute slides; reaching its per-day limit bans the prefix
    /// for [`ban`](Self::ban) (`421 4.7.0` and close).
    pub windows: Vec<Window>,
    /// Failure limits per login. Past them, the login is attempted only
    /// from networks with no failure of their own today: from a failing
    /// network, attempts on it are throttled; its owner on a clean network
    /// is never refused because of it.
    pub login_per_minute: u32,
    /// See [`login_per_minute`](Self::login_per_minute).
    pub login_per_day: u32,
    /// How long a ban lasts. A prefix still over its daily limit when the
    /// ban ends is banned again by its next failure, not by a success.
    pub ban: Duration,
    /// Failures in one connection answered at once; each later one waits
    /// [`delay_step`](Self::delay_step), doubling, at most
    /// [`delay_max`](Self::delay_max), before its reply.
    pub delay_after: u32,
    /// See [`delay_after`](Self::delay_after).
    pub delay_step: Duration,
    /// See [`delay_after`](Self::delay_after).
    pub delay_max: Duration,
    /// Networks never limited nor counted.
    pub allow: Networks,
}

impl Default for AuthLimits {
    fn default() -> Self {
        Self {
            windows: vec![
                Window::new(32, 64, 10, 50),
                Window::new(26, 48, 30, 150),
                Window::new(21, 32, 90, 450),
            ],
            login_per_minute: 10,
            login_per_day: 50,
            ban: Duration::from_secs(3600),
            delay_after: 1,
            delay_step: Duration::from_secs(1),
            delay_max: Duration::from_secs(8),
            allow: Networks::none(),
        }
    }
}

/// Why an AUTH attempt is refused before its credentials are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthRefusal {
    /// The prefix is over a per-minute limit, or the login is over its
    /// limits and the client's network is failing too: `454 4.7.0`, the
    /// connection stays open.
    Throttled {
        /// The prefix (or the client's network, for a login throttle).
        network: IpNet,
        /// Failures counted against the limit.
        count: u32,
        /// The limit.
        limit: u32,
        /// Set when the login's count decided.
        login: bool,
    },
    /// The prefix is banned: `421 4.7.0` and close.
    Banned {
        /// The banned prefix.
        network: IpNet,
        /// Seconds left.
        remaining: Duration,
    },
}

/// What a failure recorded did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureOutcome {
    /// Counted; the client may try again (after [`AuthGuard::delay`]).
    Counted,
    /// This failure reached a daily limit: the prefix is banned from now
    /// on, and this connection should be closed (`421 4.7.0`).
    Banned {
        /// The banned prefix.
        network: IpNet,
        /// Failures counted today.
        count: u32,
    },
    /// The client is allowlisted; nothing was counted.
    Exempt,
}

/// The AUTH failure limiter: pure logic over a [`GuardStore`], with the
/// clock passed in (`now`), so it is tested without sleeping and a shared
/// store can back it. Share it between connections behind an `Arc`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use postern_listener::guard::{AuthGuard, AuthLimits, AuthRefusal};
///
/// let guard = AuthGuard::new(AuthLimits::default());
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
/// let bot = "192.0.2.10".parse()?;
/// for _ in 0..10 {
///     assert!(guard.check(bot, "alice", now).is_ok());
///     guard.failed(bot, "alice", now);
/// }
/// // The 11th guess within the minute is throttled (454 4.7.0) ...
/// assert!(matches!(guard.check(bot, "alice", now), Err(AuthRefusal::Throttled { .. })));
/// // ... while alice from her own network is not.
/// assert!(guard.check("198.51.100.7".parse()?, "alice", now).is_ok());
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct AuthGuard<S = MemoryStore> {
    limits: AuthLimits,
    store: Mutex<S>,
}

fn secs(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn login_key(login: &str) -> Key {
    Key::AuthLogin(login.to_lowercase())
}

impl AuthGuard<MemoryStore> {
    /// A limiter over an in-memory store of the default capacity.
    pub fn new(limits: AuthLimits) -> Self {
        Self::with_store(limits, MemoryStore::default())
    }
}

impl<S: GuardStore> AuthGuard<S> {
    /// A limiter over `store`.
    pub fn with_store(limits: AuthLimits, store: S) -> Self {
        Self {
            limits,
            store: Mutex::new(store),
        }
    }

    /// The limits enforced.
    pub fn limits(&self) -> &AuthLimits {
        &self.limits
    }

    /// Entries held by the store (for monitoring and tests).
    pub fn entries(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, S> {
        match self.store.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn networks(&self, ip: IpAddr) -> impl Iterator<Item = (Window, IpNet)> + '_ {
        self.limits
            .windows
            .iter()
            .map(move |w| (*w, prefix_of(ip, w.ipv4, w.ipv6)))
    }

    /// Whether an AUTH attempt from `ip` on `login` may be checked now.
    /// Counts nothing; every refusal is logged with its counts.
    pub fn check(&self, ip: IpAddr, login: &str, now: SystemTime) -> Result<(), AuthRefusal> {
        if self.limits.allow.contains(ip) {
            return Ok(());
        }
        let t = secs(now);
        let mut store = self.lock();
        let mut failing = false;
        let mut throttle = None;
        for (w, net) in self.networks(ip) {
            let Some(e) = store.get(&Key::AuthNetwork(net)) else {
                continue;
            };
            if let Some(until) = e.banned_until
                && until > t
            {
                let refusal = AuthRefusal::Banned {
                    network: net,
                    remaining: Duration::from_secs(until - t),
                };
                tracing::warn!(
                    target: "auth_limits", %ip, login, network = %net,
                    remaining_secs = until - t, today = e.day.estimate(t, DAY),
                    "AUTH refused: network banned"
                );
                return Err(refusal);
            }
            failing |= !e.day.is_empty_at(t, DAY);
            let count = e.minute.estimate(t, MINUTE);
            if throttle.is_none() && w.per_minute > 0 && count >= w.per_minute {
                throttle = Some(AuthRefusal::Throttled {
                    network: net,
                    count,
                    limit: w.per_minute,
                    login: false,
                });
            }
        }
        if throttle.is_none()
            && failing
            && let Some(e) = store.get(&login_key(login))
        {
            let minute = e.minute.estimate(t, MINUTE);
            let day = e.day.estimate(t, DAY);
            let over = |count: u32, limit: u32| limit > 0 && count >= limit;
            let (count, limit) = if over(day, self.limits.login_per_day) {
                (day, self.limits.login_per_day)
            } else {
                (minute, self.limits.login_per_minute)
            };
            if over(count, limit) {
                // Report the widest network: it is what "failing" means.
                let network = self
                    .networks(ip)
                    .last()
                    .map_or_else(|| IpNet::from(ip), |(_, n)| n);
                throttle = Some(AuthRefusal::Throttled {
                    network,
                    count,
                    limit,
                    login: true,
                });
            }
        }
        match throttle {
            Some(refusal) => {
                if let AuthRefusal::Throttled {
                    network,
                    count,
                    limit,
                    login: by_login,
                } = &refusal
                {
                    tracing::warn!(
                        target: "auth_limits", %ip, login, network = %network, count, limit,
                        by = if *by_login { "login" } else { "network" },
                        "AUTH throttled"
                    );
                }
                Err(refusal)
            }
            None => Ok(()),
        }
    }

    /// Records a failed AUTH from `ip` on `login`. A prefix reaching its
    /// daily limit is banned (logged with its counts).
    pub fn failed(&self, ip: IpAddr, login: &str, now: SystemTime) -> FailureOutcome {
        if self.limits.allow.contains(ip) {
            return FailureOutcome::Exempt;
        }
        let t = secs(now);
        let ban_secs = self.limits.ban.as_secs().max(1);
        let mut store = self.lock();
        let mut outcome = FailureOutcome::Counted;
        let bump = |e: &mut Entry| {
            e.minute.add(t, MINUTE);
            e.day.add(t, DAY);
            e.last_seen = t;
        };
        for (w, net) in self.networks(ip) {
            let key = Key::AuthNetwork(net);
            let mut e = store.get(&key).unwrap_or_default();
            bump(&mut e);
            let today = e.day.estimate(t, DAY);
            let banned_now = e.banned_until.is_some_and(|u| u > t);
            if w.per_day > 0 && today >= w.per_day && !banned_now {
                e.banned_until = Some(t.saturating_add(ban_secs));
                tracing::warn!(
                    target: "auth_limits", %ip, login, network = %net, today, limit = w.per_day,
                    last_minute = e.minute.estimate(t, MINUTE), ban_secs,
                    "network banned for AUTH failures"
                );
                if outcome == FailureOutcome::Counted {
                    outcome = FailureOutcome::Banned {
                        network: net,
                        count: today,
                    };
                }
            }
            store.put(key, e);
        }
        let key = login_key(login);
        let mut e = store.get(&key).unwrap_or_default();
        bump(&mut e);
        store.put(key, e);
        outcome
    }

    /// How long to wait before answering the `failures`th failed AUTH of
    /// one connection: nothing for the first
    /// [`delay_after`](AuthLimits::delay_after), then
    /// [`delay_step`](AuthLimits::delay_step) doubling per failure, at most
    /// [`delay_max`](AuthLimits::delay_max).
    pub fn delay(&self, failures: u32) -> Duration {
        let l = &self.limits;
        if failures <= l.delay_after {
            return Duration::ZERO;
        }
        let doublings = (failures - l.delay_after - 1).min(16);
        l.delay_step
            .saturating_mul(1u32 << doublings)
            .min(l.delay_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    const T0: u64 = 1_700_000_000 / 86_400 * 86_400;

    #[test]
    fn per_address_minute_limit_throttles_then_slides() {
        let g = AuthGuard::new(AuthLimits::default());
        for _ in 0..10 {
            assert_eq!(g.check(ip("192.0.2.1"), "a", at(T0)), Ok(()));
            assert_eq!(
                g.failed(ip("192.0.2.1"), "a", at(T0)),
                FailureOutcome::Counted
            );
        }
        let refused = g.check(ip("192.0.2.1"), "b", at(T0 + 30));
        assert!(matches!(
            refused,
            Err(AuthRefusal::Throttled {
                count: 10,
                limit: 10,
                login: false,
                ..
            })
        ));
        // Another /32 in the same /26 is not throttled yet (10 < 30).
        assert_eq!(g.check(ip("192.0.2.2"), "b", at(T0 + 30)), Ok(()));
        // Two minutes later the window is empty.
        assert_eq!(g.check(ip("192.0.2.1"), "b", at(T0 + 120)), Ok(()));
    }

    #[test]
    fn wider_prefixes_catch_attacks_spread_over_addresses() {
        let g = AuthGuard::new(AuthLimits::default());
        // 30 failures from 30 addresses of one /26, one each.
        for i in 0..30 {
            let a = ip(&format!("192.0.2.{i}"));
            assert_eq!(g.check(a, "x", at(T0)), Ok(()));
            g.failed(a, &format!("u{i}"), at(T0));
        }
        assert!(matches!(
            g.check(ip("192.0.2.40"), "y", at(T0)),
            Err(AuthRefusal::Throttled {
                count: 30,
                limit: 30,
                ..
            })
        ));
        // The next /26 is fine.
        assert_eq!(g.check(ip("192.0.2.64"), "y", at(T0)), Ok(()));
    }

    #[test]
    fn daily_limit_bans_for_a_while_then_expires() {
        let g = AuthGuard::new(AuthLimits::default());
        let bot = ip("203.0.113.9");
        let mut t = T0;
        let mut banned = None;
        for n in 1..=50 {
            assert_eq!(g.check(bot, "root", at(t)), Ok(()), "failure {n}");
            if let FailureOutcome::Banned { count, .. } = g.failed(bot, "root", at(t)) {
                banned = Some((n, count));
            }
            t += 7; // under 10 a minute
        }
        assert_eq!(banned, Some((50, 50)));
        assert!(matches!(
            g.check(bot, "root", at(t)),
            Err(AuthRefusal::Banned { .. })
        ));
        // After the hour the ban is over (for "root" itself the login's
        // count still throttles this failing network) ...
        assert_eq!(g.check(bot, "other", at(t + 3601)), Ok(()));
        // ... and the next failure bans again, the day still being over.
        assert!(matches!(
            g.failed(bot, "root", at(t + 3601)),
            FailureOutcome::Banned { .. }
        ));
    }

    #[test]
    fn attacked_login_still_works_from_a_clean_network() {
        let g = AuthGuard::new(AuthLimits::default());
        // Ten bots in different /21s guess alice's password once each.
        for i in 0..10 {
            let bot = ip(&format!("10.{i}.0.1"));
            g.failed(bot, "Alice", at(T0));
        }
        // A bot guessing again is throttled by the login's count ...
        assert!(matches!(
            g.check(ip("10.3.0.1"), "alice", at(T0 + 1)),
            Err(AuthRefusal::Throttled {
                login: true,
                count: 10,
                ..
            })
        ));
        // ... and so is a new address of a failing /21 ...
        assert!(matches!(
            g.check(ip("10.3.0.200"), "alice", at(T0 + 1)),
            Err(AuthRefusal::Throttled { login: true, .. })
        ));
        // ... but alice at home is not, and other logins are not either.
        assert_eq!(g.check(ip("198.51.100.7"), "alice", at(T0 + 1)), Ok(()));
        assert_eq!(g.check(ip("10.3.0.1"), "bob", at(T0 + 1)), Ok(()));
    }

    #[test]
    fn allowlisted_networks_are_neither_counted_nor_refused() {
        let limits = AuthLimits {
            allow: Networks::parse(["127.0.0.0/8"]).unwrap(),
            ..AuthLimits::default()
        };
        let g = AuthGuard::new(limits);
        for _ in 0..100 {
            assert_eq!(
                g.failed(ip("127.0.0.1"), "a", at(T0)),
                FailureOutcome::Exempt
            );
        }
        assert_eq!(g.check(ip("127.0.0.1"), "a", at(T0)), Ok(()));
        assert_eq!(g.entries(), 0);
        // Loopback is limited like any other address without an allowlist.
        let g = AuthGuard::new(AuthLimits::default());
        for _ in 0..10 {
            g.failed(ip("127.0.0.1"), "a", at(T0));
        }
        assert!(g.check(ip("127.0.0.1"), "a", at(T0)).is_err());
    }

    #[test]
    fn ipv6_counts_by_64_48_32() {
        let g = AuthGuard::new(AuthLimits::default());
        for i in 0..10 {
            g.failed(ip(&format!("2001:db8:1:2::{i:x}")), "a", at(T0));
        }
        assert!(g.check(ip("2001:db8:1:2::ffff"), "b", at(T0)).is_err());
        assert_eq!(g.check(ip("2001:db8:1:3::1"), "b", at(T0)), Ok(()));
    }

    #[test]
    fn delay_grows_per_failure_and_is_capped() {
        let g = AuthGuard::new(AuthLimits::default());
        let d: Vec<u64> = (1..=7).map(|n| g.delay(n).as_secs()).collect();
        assert_eq!(d, [0, 1, 2, 4, 8, 8, 8]);
        assert_eq!(g.delay(u32::MAX), Duration::from_secs(8));
    }

    #[test]
    fn an_attack_from_many_addresses_stays_within_the_store_capacity() {
        let g = AuthGuard::with_store(AuthLimits::default(), MemoryStore::new(1000));
        for i in 0..100_000u32 {
            let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i * 7));
            g.failed(a, &format!("user{i}"), at(T0 + u64::from(i / 100)));
            assert!(g.entries() <= 1000);
        }
    }
}
