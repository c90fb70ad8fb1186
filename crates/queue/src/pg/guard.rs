//! [`GuardTable`]: the AUTH limiter's counts shared through the queue's
//! database (`postern_guard`), for a limiter whose store calls
//! synchronous hooks (postern-listener's `MemoryStore::shared`).
//!
//! The limiter is synchronous and must never wait for the network, so
//! both directions go through memory: [`GuardTable::push`] leaves this
//! node's latest entry of a key in a map that a background thread writes
//! every second (one statement for all of them); the same thread reads
//! the rows the other nodes changed since its last read and leaves them
//! for [`GuardTable::pull`]. Another node sees a failure within about two
//! seconds. Both maps are bounded ([`MAX_PENDING`]): under a flood the
//! newest changes wait for the next round, and memory does not grow.
//! Rows whose `keep_until` is two days past (the day window and any ban
//! are over) are swept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::PgConfig;
use super::lock;
use super::pool::Pool;

/// Entries waiting to be written, and rows waiting to be pulled, at most.
pub const MAX_PENDING: usize = 65_536;

/// How often the thread writes and reads.
const EVERY: Duration = Duration::from_secs(1);

/// Rows read per round, at most.
const READ_LIMIT: i64 = 10_000;

/// How far back each read looks before the last row seen: a transaction
/// that started earlier may commit after a later one (`updated` is the
/// start time), and a row read twice does no harm.
const OVERLAP_SECS: f64 = 5.0;

/// The shared table of the AUTH limiter's counts. Cheap to clone; the
/// background thread stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct GuardTable {
    inner: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// This node's changes: key to (entry, keep_until).
    outgoing: Mutex<HashMap<String, (String, u64)>>,
    /// Others' rows: (key, node, entry).
    incoming: Mutex<Vec<(String, String, String)>>,
    stop: AtomicBool,
}

impl Drop for GuardTable {
    fn drop(&mut self) {
        // The thread holds one reference itself.
        if Arc::strong_count(&self.inner) == 2 {
            self.inner.stop.store(true, Ordering::Relaxed);
        }
    }
}

impl GuardTable {
    /// Starts the thread that syncs with the database of `config` as node
    /// `config.node`. Never fails: an unreachable database is retried
    /// every round (the limiter keeps counting locally meanwhile).
    pub fn start(config: PgConfig) -> std::io::Result<GuardTable> {
        let pg_config: tokio_postgres::Config = config
            .dsn
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let inner = Arc::new(Shared::default());
        let theirs = inner.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("postern-guard-sync".into())
            .spawn(move || {
                let pool = Pool::new(pg_config, 1, Duration::ZERO);
                rt.block_on(run(pool, config.node, theirs));
            })?;
        Ok(GuardTable { inner })
    }

    /// Leaves this node's entry of `key` to be written (never blocks).
    pub fn push(&self, key: &str, entry: &str, keep_until: u64) {
        let mut out = lock(&self.inner.outgoing);
        if out.len() < MAX_PENDING || out.contains_key(key) {
            out.insert(key.to_owned(), (entry.to_owned(), keep_until));
        }
    }

    /// The other nodes' rows read since the last call: (key, node, entry).
    pub fn pull(&self) -> Vec<(String, String, String)> {
        std::mem::take(&mut *lock(&self.inner.incoming))
    }
}

async fn run(pool: Pool, node: String, shared: Arc<Shared>) {
    let mut since: f64 = 0.0;
    let mut rounds: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(EVERY).await;
        rounds += 1;
        let batch = std::mem::take(&mut *lock(&shared.outgoing));
        if !batch.is_empty() {
            let n = batch.len();
            let (mut keys, mut entries, mut keeps) = (Vec::new(), Vec::new(), Vec::new());
            for (k, (e, u)) in batch {
                keys.push(k);
                entries.push(e);
                keeps.push(i64::try_from(u).unwrap_or(i64::MAX));
            }
            let written = pool
                .run(|c| {
                    let (node, keys, entries, keeps) =
                        (node.clone(), keys.clone(), entries.clone(), keeps.clone());
                    async move {
                        c.execute(
                            "INSERT INTO postern_guard (key, node, entry, keep_until, updated) \
                             SELECT k, $1, e, u, now() FROM unnest($2::text[], $3::text[], $4::bigint[]) AS t(k, e, u) \
                             ON CONFLICT (key, node) DO UPDATE SET entry = excluded.entry, \
                             keep_until = excluded.keep_until, updated = now()",
                            &[&node, &keys, &entries, &keeps],
                        )
                        .await
                    }
                })
                .await;
            if let Err(e) = written {
                // Put back what is not superseded, within the bound.
                tracing::warn!(error = %e, entries = n, "auth limiter: shared counts not written; retrying");
                let mut out = lock(&shared.outgoing);
                for ((k, e), u) in keys.into_iter().zip(entries).zip(keeps) {
                    if out.len() < MAX_PENDING && !out.contains_key(&k) {
                        out.insert(k, (e, u64::try_from(u).unwrap_or(0)));
                    }
                }
            }
        }
        let from = since - OVERLAP_SECS;
        let read = pool
            .run(|c| {
                let node = node.clone();
                async move {
                    c.query(
                        "SELECT key, node, entry, extract(epoch from updated)::float8 FROM postern_guard \
                         WHERE node <> $1 AND updated > to_timestamp($2) ORDER BY updated LIMIT $3",
                        &[&node, &from, &READ_LIMIT],
                    )
                    .await
                }
            })
            .await;
        match read {
            Ok(rows) => {
                let mut inc = lock(&shared.incoming);
                for r in &rows {
                    since = since.max(r.get::<_, f64>(3));
                    if inc.len() < MAX_PENDING {
                        inc.push((r.get(0), r.get(1), r.get(2)));
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "auth limiter: shared counts not read"),
        }
        if rounds % 600 == 1 {
            let swept = pool
                .run(|c| async move {
                    c.execute(
                        "DELETE FROM postern_guard WHERE keep_until < extract(epoch from now()) - 172800",
                        &[],
                    )
                    .await
                })
                .await;
            if let Err(e) = swept {
                tracing::debug!(error = %e, "auth limiter: sweep failed");
            }
        }
    }
}
