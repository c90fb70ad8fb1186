//! Where the limits keep their counts: a small trait, so a store shared
//! between servers (a database) can back the same logic, and a bounded
//! in-memory implementation.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use ipnet::IpNet;

use super::counter::Counter;
use super::shared::{self, SharedHooks};

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
///
/// With [`MemoryStore::shared`], its AUTH entries are also shared with
/// other servers (see [`shared`](super::shared)): `get` returns this
/// server's counts plus the others', `put` keeps this server's part and
/// writes it behind. The others' entries are bounded by the same
/// capacity.
#[derive(Debug)]
pub struct MemoryStore {
    entries: HashMap<Slot, Entry>,
    capacity: usize,
    hasher: std::collections::hash_map::RandomState,
    shared: Option<Shared>,
}

/// The other servers' entries, by key and server.
#[derive(Debug)]
struct Shared {
    hooks: SharedHooks,
    others: HashMap<Slot, HashMap<String, Entry>>,
}

/// Servers remembered per key, at most (more are ignored).
const MAX_SERVERS: usize = 64;

impl MemoryStore {
    /// The default capacity: 65 536 entries (a few MiB).
    pub const DEFAULT_CAPACITY: usize = 65_536;

    /// A store of at most `capacity` entries (at least 8).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(8),
            hasher: std::collections::hash_map::RandomState::new(),
            shared: None,
        }
    }

    /// Shares the AUTH entries through `hooks` (a table other servers
    /// read and write too).
    #[must_use]
    pub fn shared(mut self, hooks: SharedHooks) -> Self {
        self.shared = Some(Shared {
            hooks,
            others: HashMap::new(),
        });
        self
    }

    /// Takes in what the other servers wrote.
    fn pull(&mut self) {
        let Some(sh) = self.shared.as_mut() else {
            return;
        };
        let rows = (sh.hooks.pull)();
        for (key, server, entry) in rows {
            let (Some(key), Some(entry)) = (shared::parse_key(&key), shared::parse_entry(&entry))
            else {
                continue;
            };
            let slot = match &key {
                Key::AuthNetwork(n) => Slot::AuthNetwork(*n),
                Key::Connections(n) => Slot::Connections(*n),
                Key::AuthLogin(l) => Slot::AuthLogin(self.hasher.hash_one(l)),
            };
            let cap = self.capacity;
            if !sh.others.contains_key(&slot) && sh.others.len() >= cap {
                // Bounded like our own entries: the least worth keeping go.
                let mut ages: Vec<u64> = sh.others.values().map(keep_until_of).collect();
                let n = (cap / 8).max(1).min(ages.len());
                let (_, cutoff, _) = ages.select_nth_unstable(n - 1);
                let cutoff = *cutoff;
                sh.others.retain(|_, m| keep_until_of(m) > cutoff);
            }
            let servers = sh.others.entry(slot).or_default();
            if servers.len() < MAX_SERVERS || servers.contains_key(&server) {
                servers.insert(server, entry);
            }
        }
    }

    /// The other servers' entries of `slot`, added up.
    fn others(&self, slot: &Slot) -> Option<Entry> {
        let servers = self.shared.as_ref()?.others.get(slot)?;
        servers.values().copied().reduce(|a, b| shared::add(&a, &b))
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

fn keep_until_of(servers: &HashMap<String, Entry>) -> u64 {
    servers.values().map(Entry::keep_until).max().unwrap_or(0)
}

impl GuardStore for MemoryStore {
    fn get(&mut self, key: &Key) -> Option<Entry> {
        self.pull();
        let slot = self.slot(key);
        let own = self.entries.get(&slot).copied();
        match (own, self.others(&slot)) {
            (Some(o), Some(r)) => Some(shared::add(&o, &r)),
            (o, r) => o.or(r),
        }
    }

    fn put(&mut self, key: Key, entry: Entry) {
        let slot = self.slot(&key);
        // `entry` came from `get` (ours plus the others'): keep our part.
        let entry = match self.others(&slot) {
            Some(r) => shared::own_part(&entry, &r),
            None => entry,
        };
        if !self.entries.contains_key(&slot) && self.entries.len() >= self.capacity {
            self.evict();
        }
        self.entries.insert(slot, entry);
        if let Some(sh) = self.shared.as_mut()
            && let Some(text) = shared::key_text(&key)
        {
            (sh.hooks.push)(&text, &shared::entry_text(&entry), entry.keep_until());
        }
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

    /// Two stores joined by an in-memory "table": failures on either add
    /// up, and a ban decided by one is seen by the other.
    #[test]
    fn shared_stores_add_up() {
        use std::sync::{Arc, Mutex};
        type Rows = Arc<Mutex<Vec<(String, String, String)>>>;
        let table: Rows = Arc::default();
        let join = |me: &'static str| {
            let (w, r) = (table.clone(), table.clone());
            let mut seen = 0;
            MemoryStore::new(64).shared(SharedHooks::new(
                Box::new(move |k, e, _| {
                    w.lock()
                        .expect("table")
                        .push((k.into(), me.into(), e.into()))
                }),
                Box::new(move || {
                    let rows = r.lock().expect("table");
                    let new: Vec<_> = rows[seen..].iter().filter(|r| r.1 != me).cloned().collect();
                    seen = rows.len();
                    new
                }),
            ))
        };
        let (mut a, mut b) = (join("a"), join("b"));
        let k = net(7);
        let bump = |s: &mut MemoryStore, t: u64| {
            let mut e = s.get(&k).unwrap_or_default();
            e.minute.add(t, 60);
            e.day.add(t, 86_400);
            e.last_seen = t;
            s.put(k.clone(), e);
        };
        let t = 1_000_000;
        for i in 0..3 {
            bump(&mut a, t + i);
            bump(&mut b, t + i);
        }
        assert_eq!(a.get(&k).expect("a").day.estimate(t + 3, 86_400), 6);
        assert_eq!(b.get(&k).expect("b").day.estimate(t + 3, 86_400), 6);
        let mut e = a.get(&k).expect("a");
        e.banned_until = Some(t + 3600);
        a.put(k.clone(), e);
        assert_eq!(b.get(&k).expect("b").banned_until, Some(t + 3600));
        // Connection counts stay local.
        let c = Key::Connections("192.0.2.0/24".parse().expect("net"));
        a.put(c.clone(), Entry::default());
        assert_eq!(b.get(&c), None);
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
