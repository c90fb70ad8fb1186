//! Sharing the AUTH limiter's counts between servers: the hooks a
//! [`MemoryStore`](super::MemoryStore) calls to write its own entries
//! behind to a shared table and to read what the other servers wrote,
//! and the arithmetic that keeps the sums right.
//!
//! Each server keeps **its own** counts (what it saw) and writes them,
//! whole, under its name; it reads the other servers' rows and adds them
//! up. So no write conflicts (every row has one writer), a lost or late
//! write only delays what others see, and the sum of the rows is the
//! count of every server together. The limiter sees `own + others` from
//! `get`; the store keeps `put - others` as its own.
//!
//! Only the AUTH keys are shared ([`Key::AuthNetwork`], [`Key::AuthLogin`]):
//! connection rates are per listener and stay local.
//!
//! Keys and entries cross as text (the table's columns):
//! `net:192.0.2.0/24`, `login:alice` (logins cut to 256 octets) and
//! `MINUTE_INDEX MINUTE_CUR MINUTE_PREV DAY_INDEX DAY_CUR DAY_PREV
//! BANNED_UNTIL LAST_SEEN` (`BANNED_UNTIL` 0: none). Text that does not
//! parse (another version's row) is ignored.

use std::fmt;

use super::counter::Counter;
use super::store::{Entry, Key};
use super::window::{DAY, MINUTE};

/// Writes this server's entry of a key behind (never blocks): `(key,
/// entry, keep_until)` in the text forms of the module docs.
pub type PushHook = Box<dyn FnMut(&str, &str, u64) + Send>;

/// The other servers' entries written since the last call, `(key,
/// server, entry)`; never blocks (returns what has arrived).
pub type PullHook = Box<dyn FnMut() -> Vec<(String, String, String)> + Send>;

/// Where a [`MemoryStore`](super::MemoryStore) shares its AUTH entries:
/// built by the shared table's owner (the PostgreSQL queue store, say).
pub struct SharedHooks {
    pub(crate) push: PushHook,
    pub(crate) pull: PullHook,
}

impl SharedHooks {
    /// Hooks over a table: `push` writes behind, `pull` drains what was
    /// read.
    pub fn new(push: PushHook, pull: PullHook) -> SharedHooks {
        SharedHooks { push, pull }
    }
}

impl fmt::Debug for SharedHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedHooks").finish_non_exhaustive()
    }
}

/// The longest login kept in a shared key.
const MAX_LOGIN: usize = 256;

/// A key's shared text; `None` for keys that stay local.
pub fn key_text(key: &Key) -> Option<String> {
    match key {
        Key::AuthNetwork(n) => Some(format!("net:{n}")),
        Key::AuthLogin(l) => {
            let mut end = l.len().min(MAX_LOGIN);
            while !l.is_char_boundary(end) {
                end -= 1;
            }
            Some(format!("login:{}", &l[..end]))
        }
        _ => None,
    }
}

/// The key of a shared text.
pub fn parse_key(text: &str) -> Option<Key> {
    if let Some(n) = text.strip_prefix("net:") {
        return n.parse().ok().map(Key::AuthNetwork);
    }
    text.strip_prefix("login:")
        .map(|l| Key::AuthLogin(l.to_owned()))
}

/// An entry's shared text.
pub fn entry_text(e: &Entry) -> String {
    format!(
        "{} {} {} {} {} {} {} {}",
        e.minute.period_index,
        e.minute.current,
        e.minute.previous,
        e.day.period_index,
        e.day.current,
        e.day.previous,
        e.banned_until.unwrap_or(0),
        e.last_seen
    )
}

/// The entry of a shared text.
pub fn parse_entry(text: &str) -> Option<Entry> {
    let f: Vec<u64> = text
        .split(' ')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [mi, mc, mp, di, dc, dp, b, s] = f[..] else {
        return None;
    };
    let counter = |index, current: u64, previous: u64| {
        Some(Counter {
            period_index: index,
            current: u32::try_from(current).ok()?,
            previous: u32::try_from(previous).ok()?,
        })
    };
    Some(Entry {
        minute: counter(mi, mc, mp)?,
        day: counter(di, dc, dp)?,
        banned_until: (b > 0).then_some(b),
        last_seen: s,
    })
}

/// `a` and `b` moved to the later of their periods.
fn aligned(a: Counter, b: Counter, period: u64) -> (Counter, Counter) {
    let index = a.period_index.max(b.period_index);
    let at = index.saturating_mul(period);
    (a.rolled(at, period), b.rolled(at, period))
}

fn add_counter(a: Counter, b: Counter, period: u64) -> Counter {
    let (a, b) = aligned(a, b, period);
    Counter {
        period_index: a.period_index,
        current: a.current.saturating_add(b.current),
        previous: a.previous.saturating_add(b.previous),
    }
}

fn sub_counter(a: Counter, b: Counter, period: u64) -> Counter {
    let (a, b) = aligned(a, b, period);
    Counter {
        period_index: a.period_index,
        current: a.current.saturating_sub(b.current),
        previous: a.previous.saturating_sub(b.previous),
    }
}

/// Two servers' entries together.
pub(crate) fn add(a: &Entry, b: &Entry) -> Entry {
    let mut e = *a;
    e.minute = add_counter(a.minute, b.minute, MINUTE);
    e.day = add_counter(a.day, b.day, DAY);
    e.banned_until = a.banned_until.max(b.banned_until);
    e.last_seen = a.last_seen.max(b.last_seen);
    e
}

/// `total` without `others`: what this server itself counted.
pub(crate) fn own_part(total: &Entry, others: &Entry) -> Entry {
    let mut e = *total;
    e.minute = sub_counter(total.minute, others.minute, MINUTE);
    e.day = sub_counter(total.day, others.day, DAY);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(t: u64, events: u32) -> Entry {
        let mut e = Entry::default();
        for _ in 0..events {
            e.minute.add(t, MINUTE);
            e.day.add(t, DAY);
        }
        e.last_seen = t;
        e
    }

    #[test]
    fn texts_round_trip_and_bad_text_is_ignored() {
        let mut e = entry(1_000_000, 7);
        e.banned_until = Some(1_003_600);
        assert_eq!(parse_entry(&entry_text(&e)), Some(e));
        let k = Key::AuthNetwork("192.0.2.0/24".parse().expect("net"));
        assert_eq!(parse_key(&key_text(&k).expect("shared")), Some(k));
        let long = Key::AuthLogin("é".repeat(300));
        assert!(key_text(&long).expect("shared").len() <= 6 + MAX_LOGIN);
        assert_eq!(
            key_text(&Key::Connections("192.0.2.0/24".parse().expect("net"))),
            None
        );
        for bad in [
            "",
            "1 2 3",
            "a b c d e f g h",
            "1 2 3 4 5 6 7 8 9",
            "1 99999999999 3 4 5 6 7 8",
        ] {
            assert_eq!(parse_entry(bad), None, "{bad:?}");
        }
        assert_eq!(parse_key("net:nonsense"), None);
        assert_eq!(parse_key("other:x"), None);
    }

    #[test]
    fn own_plus_others_minus_others_is_own() {
        let t = 1_000_000;
        let own = entry(t, 3);
        let others = entry(t + 70, 4); // a minute later: own's minute rolls
        let total = add(&own, &others);
        assert_eq!(total.day.estimate(t + 70, DAY), 7);
        let mut bumped = total;
        bumped.minute.add(t + 70, MINUTE);
        bumped.day.add(t + 70, DAY);
        let mine = own_part(&bumped, &others);
        assert_eq!(
            mine.day.estimate(t + 70, DAY),
            4,
            "3 before and the new one"
        );
    }
}
