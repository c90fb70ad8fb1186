//! A TTL cache with one lookup in flight per key: callers asking for a
//! name being looked up wait for that lookup instead of starting their
//! own, and a slow zone delays only the deliveries that need it.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

type Slot<V> = Arc<OnceCell<(V, Instant)>>;

/// Values by key, each kept until its own expiry.
pub(crate) struct Cache<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
    max_entries: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            max_entries,
        }
    }

    /// The cached value of `key`, or the value `fetch` produces with the
    /// time it may be kept. A lookup in flight for `key` is joined; if
    /// its caller gives up (is dropped), the next waiter runs `fetch`.
    pub(crate) async fn get_or_fetch<F, Fut>(&self, key: K, fetch: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = (V, Duration)>,
    {
        let slot = {
            let now = Instant::now();
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            let fresh = slots
                .get(&key)
                .filter(|s| s.get().is_none_or(|(_, expiry)| *expiry > now))
                .cloned();
            match fresh {
                Some(slot) => slot,
                None => {
                    if slots.len() >= self.max_entries {
                        slots.retain(|_, s| s.get().is_none_or(|(_, expiry)| *expiry > now));
                        if slots.len() >= self.max_entries {
                            slots.clear();
                        }
                    }
                    let slot = Slot::default();
                    slots.insert(key, slot.clone());
                    slot
                }
            }
        };
        let (value, _) = slot
            .get_or_init(|| async {
                let (value, ttl) = fetch().await;
                (value, Instant::now() + ttl)
            })
            .await;
        value.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn one_lookup_in_flight_and_expiry() {
        let cache = Arc::new(Cache::<&str, u32>::new(10));
        let calls = Arc::new(AtomicUsize::new(0));
        let slow = |calls: Arc<AtomicUsize>, ttl| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            (7, ttl)
        };
        let (a, b) = tokio::join!(
            cache.get_or_fetch("k", || slow(calls.clone(), Duration::from_secs(60))),
            cache.get_or_fetch("k", || slow(calls.clone(), Duration::from_secs(60))),
        );
        assert_eq!((a, b, calls.load(Ordering::SeqCst)), (7, 7, 1));
        // Expired at once: fetched again.
        cache
            .get_or_fetch("z", || slow(calls.clone(), Duration::ZERO))
            .await;
        cache
            .get_or_fetch("z", || slow(calls.clone(), Duration::ZERO))
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
