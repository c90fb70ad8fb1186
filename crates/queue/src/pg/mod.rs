//! [`PgStore`]: the queue in a PostgreSQL database that several MTA
//! nodes share (feature `postgres`), so a node that dies strands nothing:
//! its messages wait one lease and another node delivers them.
//!
//! # Tables
//!
//! ```text
//! postern_schema    the schema version (migrated at open, see schema.rs)
//! postern_messages  one row per committed message: envelope (TOML, as the
//!                   log store keeps it), whether it is open, next attempt,
//!                   size, and the delivery lease (owner node, token, expiry)
//! postern_bodies    body chunks of at most BODY_CHUNK octets: (id, seq, data)
//! postern_guard     the AUTH limiter's counts and bans, one row per key and
//!                   node ([`GuardTable`])
//! ```
//!
//! # Bodies apart, in chunks
//!
//! Bodies live in their own table, in chunks of [`BODY_CHUNK`](crate::BODY_CHUNK)
//! octets, rather than in the message row, because:
//!
//! - a body is written once and never changes while the envelope is
//!   rewritten at every attempt: PostgreSQL writes a new row version on
//!   each update, and the claim scans (`FOR UPDATE SKIP LOCKED`) walk
//!   that table, so it is kept to small rows;
//! - chunks bound memory on both sides: full chunks are sent while the
//!   client is still sending DATA (the session keeps at most one chunk),
//!   and no single value approaches `bytea`'s 1 GB limit;
//! - early chunks are inserted with `synchronous_commit = off`: the
//!   message's own commit (synchronous) flushes the WAL up to its commit
//!   record, which lies after theirs, so they are durable when it is,
//!   without one flush per chunk.
//!
//! A message exists when its `postern_messages` row does. Chunks without
//! a row are the remains of writers that never committed; they are
//! deleted after an hour (longer than any DATA phase), by whichever node
//! runs maintenance.
//!
//! # Durability
//!
//! Every connection sets `synchronous_commit = on`; a commit resolves
//! after PostgreSQL's `COMMIT` returned, and only then may the session
//! answer `250`. A connection lost mid-commit is retried: the retry
//! finds the row of the first try by its commit token and counts it.
//!
//! # Leases
//!
//! A [`Hold`] is a lease in the database: the row's owner (this node's
//! name), a random token and an expiry, taken with
//! `UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED)` only when
//! the row has no lease or its lease expired. Two nodes never hold one
//! message at once; a node renews its leases every third of
//! [`PgConfig::lease`] while the work runs, and releases them when the
//! hold is dropped. A node that dies stops renewing: its leases expire and
//! the next scan of another node takes the messages over. Updates and
//! removals under a lease are fenced by its token: a node whose lease was
//! taken over (it stalled longer than the lease) gets
//! [`PgError::LeaseLost`] and writes nothing. A delivery it made just
//! before is the duplicate window: at most one lease.
//!
//! # Connection loss
//!
//! Every operation retries on a new connection for
//! [`PgConfig::retry_for`], then fails with [`PgError::Unreachable`]
//! (as the source of the `io::Error`). While the last operation found the
//! database unreachable, [`Store::writer`] fails at once, so the session
//! answers `451 4.3.0` at DATA without accepting a body.
//!
//! # Example
//!
//! ```no_run
//! use postern_queue::Store;
//! use postern_queue::pg::{PgConfig, PgStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = PgConfig::new("host=127.0.0.1 user=postern dbname=mail", "mx1");
//! let store = PgStore::open(config)?;
//! println!("{} messages queued", store.list_all()?.len());
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod guard;
mod lease;
mod pool;
mod schema;
mod sink;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::runtime::{Handle, Runtime};

pub use config::PgConfig;
pub use error::PgError;
pub use guard::{GuardTable, MAX_PENDING};

use crate::envelope::Envelope;
use crate::id::QueueId;
use crate::store::{Hold, Holds, MessageWriter, Store};
use pool::Pool;

/// Chunks without a message older than this are deleted.
const ORPHAN_AGE_SECS: f64 = 3600.0;

/// The queue in PostgreSQL. See the module documentation.
pub struct PgStore {
    inner: Arc<Inner>,
    /// The store's own runtime: the driver's connections and the lease
    /// renewal run here, whatever runtime (or none) the caller has.
    runtime: Mutex<Option<Runtime>>,
}

/// What the store's tasks, sinks and lease guards share.
struct Inner {
    config: PgConfig,
    pool: Pool,
    handle: Handle,
    holds: Holds,
    /// The leases this node holds: id to token.
    leases: Mutex<HashMap<QueueId, i64>>,
    nonce: u16,
    counter: AtomicU32,
    /// The last operation found the database unreachable.
    down: AtomicBool,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("node", &self.inner.config.node)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Not a plain drop: dropping a runtime inside another runtime's
        // task panics; leases still held expire in the database.
        if let Some(rt) = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            rt.shutdown_background();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn parse_envelope(id: &QueueId, text: &str) -> Result<Envelope, PgError> {
    toml::from_str(text).map_err(|e| PgError::BadEnvelope {
        id: id.clone(),
        reason: e.to_string(),
    })
}

fn parse_id(text: &str) -> Option<QueueId> {
    match text.parse() {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::error!(error = %e, "queue database: a row whose id is no queue id");
            None
        }
    }
}

impl Inner {
    /// Runs `fut` on the store's runtime and blocks the calling thread for
    /// its result (the [`Store`] methods are blocking).
    fn block<T: Send + 'static>(
        self: &Arc<Self>,
        fut: impl Future<Output = Result<T, PgError>> + Send + 'static,
    ) -> Result<T, PgError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let this = self.clone();
        self.handle.spawn(async move {
            let outcome = fut.await;
            this.note(&outcome);
            let _ = tx.send(outcome);
        });
        rx.recv().unwrap_or(Err(PgError::Closed))
    }

    /// Tracks whether the database is reachable.
    fn note<T>(&self, outcome: &Result<T, PgError>) {
        let down = matches!(outcome, Err(PgError::Unreachable { .. }));
        if self.down.swap(down, Ordering::Relaxed) != down {
            if down {
                tracing::error!("queue database unreachable: new messages are refused with 451");
            } else {
                tracing::info!("queue database reachable again");
            }
        }
    }

    fn lease_secs(&self) -> f64 {
        self.config.lease.as_secs_f64()
    }

    fn token_of(&self, id: &QueueId) -> Option<i64> {
        lock(&self.leases).get(id).copied()
    }
}

impl PgStore {
    /// Connects (retrying for [`PgConfig::retry_for`]), creates or
    /// migrates the schema, takes back the leases a previous life of this
    /// node left, deletes old orphan chunks and starts renewing leases.
    pub fn open(config: PgConfig) -> Result<Arc<PgStore>, PgError> {
        let pg_config: tokio_postgres::Config = config.dsn.parse().map_err(PgError::Database)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("postern-pg")
            .enable_all()
            .build()
            .map_err(|_| PgError::Closed)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let node_hash = config
            .node
            .bytes()
            .fold(0u16, |h, b| h.rotate_left(5) ^ u16::from(b));
        let nonce =
            (std::process::id() as u16) ^ (nanos as u16) ^ ((nanos >> 16) as u16) ^ node_hash;
        let inner = Arc::new(Inner {
            pool: Pool::new(pg_config, config.pool_size, config.retry_for),
            config,
            handle: runtime.handle().clone(),
            holds: Holds::default(),
            leases: Mutex::new(HashMap::new()),
            nonce,
            counter: AtomicU32::new(0),
            down: AtomicBool::new(false),
        });
        let store = PgStore {
            inner: inner.clone(),
            runtime: Mutex::new(Some(runtime)),
        };
        let setup = inner.clone();
        inner.block(async move {
            setup
                .pool
                .run(|c| async move { schema::migrate(&c).await })
                .await?;
            setup
                .pool
                .run(|c| async move { schema::check(&c).await })
                .await??;
            let node = setup.config.node.clone();
            let released = setup
                .pool
                .run(|c| {
                    let node = node.clone();
                    async move {
                        c.execute(&c.prep("UPDATE postern_messages SET lease_owner = NULL, lease_token = NULL, \
                             lease_until = NULL WHERE lease_owner = $1").await?,
                            &[&node],
                        )
                        .await
                    }
                })
                .await?;
            if released > 0 {
                tracing::info!(node = %node, released, "queue database: leases of this node's previous run released");
            }
            lease::maintain(&setup).await;
            Ok(())
        })?;
        inner
            .handle
            .spawn(lease::renew_loop(Arc::downgrade(&inner)));
        inner
            .handle
            .spawn(lease::probe_loop(Arc::downgrade(&inner)));
        tracing::info!(node = %inner.config.node, "queue database open");
        Ok(Arc::new(store))
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.inner.config.node
    }

    /// Whether the last operation found the database unreachable.
    pub fn is_down(&self) -> bool {
        self.inner.down.load(Ordering::Relaxed)
    }

    /// The ids of messages whose lease some node holds now, with the
    /// owner (for tools and tests).
    pub fn leases(&self) -> io::Result<Vec<(QueueId, String)>> {
        let inner = self.inner.clone();
        let rows = self.inner.block(async move {
            inner
                .pool
                .run(|c| async move {
                    c.query(
                        &c.prep(
                            "SELECT id, lease_owner FROM postern_messages \
                         WHERE lease_until >= now() ORDER BY id",
                        )
                        .await?,
                        &[],
                    )
                    .await
                })
                .await
        })?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((parse_id(r.get(0))?, r.get(1))))
            .collect())
    }

    /// The rows of `sql` with `$1` bound to `id` (the statement prepared
    /// once per connection; retried as every query is).
    fn rows_of(
        &self,
        sql: &'static str,
        id: &QueueId,
    ) -> Result<Vec<tokio_postgres::Row>, PgError> {
        let inner = self.inner.clone();
        let key = id.as_str().to_owned();
        self.inner.block(async move {
            inner
                .pool
                .run(|c| {
                    let key = key.clone();
                    async move { c.query(&c.prep(sql).await?, &[&key]).await }
                })
                .await
        })
    }

    fn ids(&self, sql: &'static str, due: Option<i64>) -> io::Result<Vec<QueueId>> {
        let inner = self.inner.clone();
        let rows = self.inner.block(async move {
            inner
                .pool
                .run(|c| async move {
                    match due {
                        Some(now) => c.query(&c.prep(sql).await?, &[&now]).await,
                        None => c.query(&c.prep(sql).await?, &[]).await,
                    }
                })
                .await
        })?;
        Ok(rows.iter().filter_map(|r| parse_id(r.get(0))).collect())
    }

    /// Deletes `id` (fenced by this node's lease, if it holds one).
    fn delete(&self, id: &QueueId, synchronous: bool) -> io::Result<()> {
        let inner = self.inner.clone();
        let token = self.inner.token_of(id);
        let key = id.as_str().to_owned();
        let lost = self.inner.block(async move {
            inner
                .pool
                .run(|c| {
                    let key = key.clone();
                    async move {
                        c.batch_execute(if synchronous {
                            "BEGIN"
                        } else {
                            "BEGIN; SET LOCAL synchronous_commit = off"
                        })
                        .await?;
                        let n = c
                            .execute(
                                "DELETE FROM postern_messages WHERE id = $1 \
                                 AND ($2::bigint IS NULL OR lease_token = $2)",
                                &[&key, &token],
                            )
                            .await?;
                        let lost = n == 0
                            && c.query_opt(
                                &c.prep("SELECT 1 FROM postern_messages WHERE id = $1")
                                    .await?,
                                &[&key],
                            )
                            .await?
                            .is_some();
                        if !lost {
                            c.execute(
                                &c.prep("DELETE FROM postern_bodies WHERE id = $1").await?,
                                &[&key],
                            )
                            .await?;
                        }
                        c.batch_execute("COMMIT").await?;
                        Ok(lost)
                    }
                })
                .await
        })?;
        if lost {
            return Err(PgError::LeaseLost(id.clone()).into());
        }
        Ok(())
    }
}

impl Store for PgStore {
    fn new_id(&self) -> QueueId {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros()) as u64;
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        QueueId(format!(
            "{:014x}{:04x}{:08x}",
            micros & 0x00ff_ffff_ffff_ffff,
            self.inner.nonce,
            n
        ))
    }

    fn writer(&self, id: &QueueId) -> io::Result<MessageWriter> {
        if self.is_down() {
            // Refuse before the client sends a body that cannot be kept.
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the queue database is unreachable",
            ));
        }
        Ok(MessageWriter::new(
            id.clone(),
            Box::new(sink::PgSink::new(self.inner.clone(), id.clone())),
        ))
    }

    fn list(&self) -> io::Result<Vec<QueueId>> {
        let ids = self.ids(
            "SELECT id FROM postern_messages \
             WHERE lease_until IS NULL OR lease_until < now() ORDER BY id",
            None,
        )?;
        Ok(self.inner.holds.unheld(ids))
    }

    fn list_all(&self) -> io::Result<Vec<QueueId>> {
        self.ids("SELECT id FROM postern_messages ORDER BY id", None)
    }

    fn due(&self, now: u64) -> io::Result<Vec<QueueId>> {
        let ids = self.ids(
            "SELECT id FROM postern_messages WHERE open AND next_attempt <= $1 \
             AND (lease_until IS NULL OR lease_until < now()) ORDER BY id",
            Some(i64::try_from(now).unwrap_or(i64::MAX)),
        )?;
        Ok(self.inner.holds.unheld(ids))
    }

    fn load(&self, id: &QueueId) -> io::Result<Envelope> {
        let rows = self.rows_of("SELECT envelope FROM postern_messages WHERE id = $1", id)?;
        let row = rows.first().ok_or_else(|| PgError::NotFound(id.clone()))?;
        Ok(parse_envelope(id, row.get(0))?)
    }

    fn body(&self, id: &QueueId) -> io::Result<Vec<u8>> {
        let rows = self.rows_of(
            "SELECT data FROM postern_bodies WHERE id = $1 AND EXISTS \
             (SELECT 1 FROM postern_messages WHERE id = $1) ORDER BY seq",
            id,
        )?;
        // Every committed message has at least one chunk (maybe empty).
        if rows.is_empty() {
            return Err(PgError::NotFound(id.clone()).into());
        }
        let mut body = Vec::new();
        for r in &rows {
            body.extend_from_slice(r.get::<_, &[u8]>(0));
        }
        Ok(body)
    }

    fn body_size(&self, id: &QueueId) -> io::Result<u64> {
        let rows = self.rows_of("SELECT size FROM postern_messages WHERE id = $1", id)?;
        let row = rows.first().ok_or_else(|| PgError::NotFound(id.clone()))?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    fn update(&self, id: &QueueId, env: &Envelope) -> io::Result<()> {
        let text = env.to_toml()?;
        let open = !env.is_finished();
        let next = i64::try_from(env.next_attempt).unwrap_or(i64::MAX);
        let token = self.inner.token_of(id);
        let inner = self.inner.clone();
        let key = id.as_str().to_owned();
        let outcome = self.inner.block(async move {
            inner
                .pool
                .run(|c| {
                    let (key, text) = (key.clone(), text.clone());
                    async move {
                        let n = c
                            .execute(
                                "UPDATE postern_messages SET envelope = $2, open = $3, \
                                 next_attempt = $4 WHERE id = $1 \
                                 AND ($5::bigint IS NULL OR lease_token = $5)",
                                &[&key, &text, &open, &next, &token],
                            )
                            .await?;
                        if n == 1 {
                            return Ok(Ok(()));
                        }
                        let exists = c
                            .query_opt("SELECT 1 FROM postern_messages WHERE id = $1", &[&key])
                            .await?
                            .is_some();
                        Ok(Err(exists))
                    }
                })
                .await
        })?;
        match outcome {
            Ok(()) => Ok(()),
            Err(true) => Err(PgError::LeaseLost(id.clone()).into()),
            Err(false) => Err(PgError::NotFound(id.clone()).into()),
        }
    }

    fn remove(&self, id: &QueueId) -> io::Result<()> {
        self.delete(id, true)
    }

    fn remove_unsynced(&self, id: &QueueId) -> io::Result<()> {
        self.delete(id, false)
    }

    fn hold(&self, id: &QueueId) -> Option<Hold> {
        lease::claim(&self.inner, id)
    }
}
