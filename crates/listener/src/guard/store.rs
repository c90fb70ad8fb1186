//! Where the limits keep their counts: a small trait, so a store shared
//! between servers (a database) can back the same logic, and a bounded
//! in-memory implementation.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use ipnet::IpNet;

use super::counter::Counter;

/// What a count is kept for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Key {
    /// AUTH failures from an address prefix.
    AuthNetwork(IpNet),
    /// AUTH failures on a login (its name folded to lowercase).
    AuthLogin(String),
    /// Connections from an address prefix.
    Connections(IpNet),
}

/// The counts of one [`Key`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// Events over the last minute.
    pub minute: Counter,
    /// Events over the last day.
    pub day: Counter,
    /// While banned: when the ban ends (seconds since the Unix epoch).
    pub banned_until: Option<u64>,
    /// When the entry last changed (seconds since the Unix epoch): what
    /// eviction goes by.
    pub last_seen: u64,
}

impl Entry {
    /// How long an entry is worth keeping at `now`: an active ban keeps it
    /// until the ban ends; otherwise its last change. Lower is evicted
    /// first.
    pub fn keep_until(&self) -> u64 {
        self.banned_until
            .map_or(self.last_seen, |b| b.max(self.last_seen))
    }
}

/// Storage for the counts. Implementations decide how much they hold; the
/// limits only read and write whole entries.
///
/// Calls are synchronous and short (the in-memory store takes
/// microseconds); a remote store would cache and write behind.
pub trait GuardStore: Send {
    /// The entry of `key`, if one is held.
    fn get(&mut self, key: &Key) -> Option<Entry>;
    /// Stores the entry of `key`.
    fn put(&mut self, key: Key, entry: Entry);
    /// How many entries are held.
    fn len(&self) -> usize;
    /// Whether no entry is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keys as the in-memory store holds them: logins by a keyed hash, so an
/// attacker's long login names cost 8 octets each and cannot be chosen to
/// collide (the hash key is random per process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Slot {
    AuthNetwork(IpNet),
    AuthLogin(u64),
    Connections(IpNet),
}

/// An in-memory [`GuardStore`] holding at most `capacity` entries.
///
/// When full, the eighth of its entries least worth keeping (oldest last
/// change; active bans count as recent until they end) is dropped in one
/// pass, so an attack from ever new addresses cannot grow memory without
/// bound, the cost of eviction is spread over many inserts, and bans are
/// the last to go.
#[derive(Debug)]
pub struct MemoryStore {
    entries: HashMap<Slot, Entry>,
    capacity: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl MemoryStore {
    /// The default capacity: 65 536 entries (a few MiB).
    pub const DEFAULT_CAPACITY: usize = 65_536;

    /// A store of at most `capacity` entries (at least 8).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(8),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// The most entries held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn slot(&self, key: &Key) -> Slot {
        match key {
            Key::AuthNetwork(n) => Slot::AuthNetwork(*n),
            Key::Connections(n) => Slot::Connections(*n),
            Key::AuthLogin(login) => Slot::AuthLogin(self.hasher.hash_one(login)),
        }
    }

    fn evict(&mut self) {
        let drop_n = (self.capacity / 8).max(1);
        let mut ages: Vec<u64> = self.entries.values().map(Entry::keep_until).collect();
        if ages.len() <= drop_n {
            self.entries.clear();
            return;
        }
        let (_, cutoff, _) = ages.select_nth_unstable(drop_n - 1);
        let cutoff = *cutoff;
        let mut dropped = 0;
        // Strictly older first, then ties up to the count, so the store
        // always shrinks by at least one.
        self.entries.retain(|_, e| {
            if e.keep_until() < cutoff {
                dropped += 1;
                false
            } else {
                true
            }
        });
        if dropped < drop_n {
            self.entries.retain(|_, e| {
                if dropped < drop_n && e.keep_until() == cutoff {
                    dropped += 1;
                    false
                } else {
                    true
                }
            });
        }
        tracing::debug!(
            dropped,
            held = self.entries.len(),
            "guard store full: oldest entries evicted"
        );
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl GuardStore for MemoryStore {
    fn get(&mut self, key: &Key) -> Option<Entry> {
        let slot = self.slot(key);
        self.entries.get(&slot).copied()
    }

    fn put(&mut self, key: Key, entry: Entry) {
        let slot = self.slot(&key);
        if !self.entries.contains_key(&slot) && self.entries.len() >= self.capacity {
            self.evict();
        }
        self.entries.insert(slot, entry);
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(i: u32) -> Key {
        Key::AuthNetwork(IpNet::from(std::net::IpAddr::from(
            std::net::Ipv4Addr::from(i),
        )))
    }

    #[test]
    fn never_holds_more_than_its_capacity_and_keeps_recent_and_banned() {
        let mut s = MemoryStore::new(64);
        let banned = Entry {
            banned_until: Some(1_000_000),
            last_seen: 0,
            ..Entry::default()
        };
        s.put(net(0), banned);
        for i in 1..10_000u32 {
            s.put(
                net(i),
                Entry {
                    last_seen: u64::from(i),
                    ..Entry::default()
                },
            );
            assert!(s.len() <= 64);
        }
        assert!(s.get(&net(0)).is_some(), "an active ban outlives eviction");
        assert!(s.get(&net(9_999)).is_some(), "the newest entry is kept");
        assert!(s.get(&net(1)).is_none(), "the oldest entries went first");
    }

    #[test]
    fn long_logins_cost_a_hash() {
        let mut s = MemoryStore::new(8);
        let login = Key::AuthLogin("x".repeat(10_000));
        s.put(login.clone(), Entry::default());
        assert_eq!(s.get(&login), Some(Entry::default()));
        assert_eq!(s.get(&Key::AuthLogin("y".into())), None);
    }
}
