//! [`LogStore`]: the default [`Store`], messages as records in the
//! log-structured engine ([`crate::log`]).
//!
//! # Layout
//!
//! ```text
//! QUEUE/lock      flock(2)ed by the owning process; its pid
//! QUEUE/log/      the log's segment files (see crate::log)
//! ```
//!
//! A queue directory of the file-per-message spool (`ID.env`, `ID.msg`,
//! `tmp/`, `format`) is imported at open: see [`crate::legacy`].
//!
//! # Records of a message
//!
//! A message's key is its queue id read as a hexadecimal number (26 hex
//! digits fit in the key's 128 bits), so keys map back to ids. Its records:
//!
//! - **Body** records: the body in chunks of at most [`BODY_CHUNK`] octets
//!   (one submission must fit in a segment, and a large body should not
//!   sit in memory). Full chunks are submitted while the client is still
//!   sending; they are not waited for until the commit.
//! - One **Envelope** record (the envelope as TOML), submitted with the
//!   last body chunk. The commit resolves once this submission's group
//!   commit returned and every earlier chunk's had: the message exists
//!   exactly when its envelope record does.
//! - **State** records: later envelopes ([`Store::update`]); the last
//!   Envelope or State record is the envelope.
//! - A tombstone ([`Log::finish`]) removes it.
//!
//! At open, messages whose records include no envelope are the remains of
//! writers that never committed (a crash mid-body, an abandoned writer
//! whose tombstone was not yet durable): they are finished. Damaged
//! messages ([`Log::damaged`]) are logged and left out of the queue, the
//! rest is served.
//!
//! Envelopes are cached in memory (loaded at open), so listing and loading
//! never touch the disk; bodies are read back from the segments.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::envelope::Envelope;
use crate::id::QueueId;
use crate::log::{Log, LogConfig, LogError, MessageKey, Record, RecordKind, Ticket};
use crate::store::{BodySink, Commit, Holds, MessageWriter, Store};
use crate::{Hold, legacy};

/// The largest body record: a body is split into records of this size.
pub const BODY_CHUNK: usize = 256 * 1024;

/// Segment size of a store's log: large enough for many small messages
/// per segment, small enough to preallocate (zero-fill) quickly.
const SEGMENT_SIZE: u64 = 16 << 20;

/// The default [`Store`]: a log of checksummed records in preallocated
/// segment files, made durable by group commit (see the module docs).
///
/// Opening a directory this process has open already returns the same
/// store; a second process gets [`QueueLocked`](crate::QueueLocked).
pub struct LogStore {
    this: Weak<LogStore>,
    _lock: Arc<crate::lock::DirLock>,
    dir: PathBuf,
    log: Log,
    nonce: u16,
    counter: AtomicU32,
    holds: Holds,
    messages: Mutex<BTreeMap<QueueId, Cached>>,
}

/// A message's envelope as the queue knows it.
#[derive(Debug, Clone)]
enum Cached {
    Envelope(Box<Envelope>),
    /// Listed (an operator sees it) but not loadable: why.
    Unreadable(String),
}

impl fmt::Debug for LogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn registry() -> MutexGuard<'static, HashMap<PathBuf, Weak<LogStore>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<LogStore>>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn log_err(e: LogError) -> io::Error {
    match e {
        LogError::UnknownMessage(_) => io::Error::new(io::ErrorKind::NotFound, e),
        e => io::Error::other(e),
    }
}

fn not_found(id: &QueueId) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("queue id {id} is not in the queue"),
    )
}

/// The log key of a queue id.
fn key_of(id: &QueueId) -> io::Result<MessageKey> {
    u128::from_str_radix(id.as_str(), 16)
        .ok()
        .and_then(MessageKey::new)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("queue id {id}")))
}

/// The queue id of a log key.
fn id_of(key: MessageKey) -> Option<QueueId> {
    format!("{:026x}", key.get()).parse().ok()
}

/// The envelope in a record, or why not: the parser's message names the
/// field and the bad value (an address that does not parse, say), which is
/// what an operator needs to repair it.
fn parse_envelope(payload: &[u8]) -> Result<Envelope, String> {
    let text = std::str::from_utf8(payload).map_err(|e| format!("not UTF-8: {e}"))?;
    toml::from_str(text).map_err(|e| e.to_string())
}

impl LogStore {
    /// Opens (creating if needed) the queue directory `dir`
    /// (conventionally `DATA_DIR/queue`): locks it, recovers the log,
    /// imports a file-per-message spool found there, and returns the
    /// store.
    pub fn open(dir: &Path) -> io::Result<Arc<LogStore>> {
        Self::open_with(dir, LogConfig::default().segment_size(SEGMENT_SIZE))
    }

    /// [`LogStore::open`] with the log tuned by `config`.
    pub fn open_with(dir: &Path, config: LogConfig) -> io::Result<Arc<LogStore>> {
        std::fs::create_dir_all(dir)?;
        let canonical = std::fs::canonicalize(dir)?;
        let mut open = registry();
        if let Some(store) = open.get(&canonical).and_then(Weak::upgrade) {
            return Ok(store);
        }
        let lock = crate::lock::lock_dir(dir)?;
        let log = Log::open(dir.join("log"), config).map_err(log_err)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let nonce = (std::process::id() as u16) ^ (nanos as u16) ^ ((nanos >> 16) as u16);
        let messages = Mutex::new(load_all(&log)?);
        let store = Arc::new_cyclic(|this| LogStore {
            this: this.clone(),
            _lock: lock,
            dir: dir.to_owned(),
            messages,
            log,
            nonce,
            counter: AtomicU32::new(0),
            holds: Holds::default(),
        });
        if legacy::present(dir) {
            let n = legacy::import(dir, &store)?;
            tracing::info!(dir = %dir.display(), messages = n, "imported the file-per-message spool into the log store");
        }
        open.retain(|_, s| s.strong_count() > 0);
        open.insert(canonical, Arc::downgrade(&store));
        Ok(store)
    }

    /// The queue directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log underneath: recovery report, damaged messages, statistics.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The envelopes of the queue in `dir`, read without writing anything
    /// or taking the lock: for tools and tests that look at a queue a
    /// running server owns. What the owner is committing right now may be
    /// missing.
    pub fn inspect(dir: &Path) -> io::Result<Vec<Envelope>> {
        let log_dir = dir.join("log");
        if !log_dir.is_dir() {
            return Ok(Vec::new());
        }
        let not_body = |k| k != RecordKind::Body;
        // A segment may be removed by maintenance between listing and
        // reading: look again.
        let mut tries = 0;
        let messages = loop {
            match crate::log::snapshot(&log_dir, not_body) {
                Ok(m) => break m,
                Err(_) if tries < 5 => tries += 1,
                Err(e) => return Err(log_err(e)),
            }
        };
        Ok(messages
            .into_iter()
            .filter_map(|(_, records)| parse_envelope(&records.last()?.payload).ok())
            .collect())
    }

    fn messages(&self) -> MutexGuard<'_, BTreeMap<QueueId, Cached>> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn contains(&self, id: &QueueId) -> bool {
        self.messages().contains_key(id)
    }
}

/// The envelopes of the log's messages; finishes the uncommitted ones.
/// Damaged messages and envelopes that do not parse are listed, and
/// loading them fails: the runner reports them, an operator removes them.
fn load_all(log: &Log) -> io::Result<BTreeMap<QueueId, Cached>> {
    let damaged: HashMap<MessageKey, _> = log.damaged().into_iter().collect();
    for (key, damage) in &damaged {
        tracing::error!(key = %key, %damage, "queue: a damaged message is not served (remove it, or repair the segment)");
    }
    let mut out = BTreeMap::new();
    for key in log.messages() {
        let Some(id) = id_of(key) else {
            tracing::error!(key = %key, "queue: a log key that is no queue id");
            continue;
        };
        if let Some(damage) = damaged.get(&key) {
            out.insert(id, Cached::Unreadable(format!("damaged: {damage}")));
            continue;
        }
        let records = match log.records_of(key, |k| k != RecordKind::Body) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(key = %key, error = %e, "queue: unreadable message not served");
                out.insert(id, Cached::Unreadable(e.to_string()));
                continue;
            }
        };
        let Some(last) = records.last() else {
            // Body chunks of a writer that never committed.
            log.finish(key).wait().map_err(log_err)?;
            continue;
        };
        let cached = match parse_envelope(&last.payload) {
            Ok(env) => Cached::Envelope(Box::new(env)),
            Err(why) => {
                tracing::error!(queue_id = %id, error = %why, "queue: an envelope that does not parse is not served");
                Cached::Unreadable(format!("the envelope does not parse: {why}"))
            }
        };
        out.insert(id, cached);
    }
    Ok(out)
}

impl Store for LogStore {
    fn new_id(&self) -> QueueId {
        LogStore::new_id(self)
    }
    fn writer(&self, id: &QueueId) -> io::Result<MessageWriter> {
        LogStore::writer(self, id)
    }
    fn list(&self) -> io::Result<Vec<QueueId>> {
        LogStore::list(self)
    }
    fn list_all(&self) -> io::Result<Vec<QueueId>> {
        LogStore::list_all(self)
    }
    fn load(&self, id: &QueueId) -> io::Result<Envelope> {
        LogStore::load(self, id)
    }
    fn body(&self, id: &QueueId) -> io::Result<Vec<u8>> {
        LogStore::body(self, id)
    }
    fn body_size(&self, id: &QueueId) -> io::Result<u64> {
        LogStore::body_size(self, id)
    }
    fn update(&self, id: &QueueId, env: &Envelope) -> io::Result<()> {
        LogStore::update(self, id, env)
    }
    fn remove(&self, id: &QueueId) -> io::Result<()> {
        LogStore::remove(self, id)
    }
    fn remove_unsynced(&self, id: &QueueId) -> io::Result<()> {
        LogStore::remove_unsynced(self, id)
    }
    fn hold(&self, id: &QueueId) -> Option<Hold> {
        LogStore::hold(self, id)
    }
}

impl LogStore {
    /// A new unique, time-sortable id.
    pub fn new_id(&self) -> QueueId {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros()) as u64;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        QueueId(format!(
            "{:014x}{:04x}{:08x}",
            micros & 0x00ff_ffff_ffff_ffff,
            self.nonce,
            n
        ))
    }

    /// Starts writing message `id`.
    pub fn writer(&self, id: &QueueId) -> io::Result<MessageWriter> {
        let this = self
            .this
            .upgrade()
            .ok_or_else(|| io::Error::other("store closed"))?;
        if self.contains(id) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("queue id {id} is in the queue"),
            ));
        }
        let sink = LogSink {
            store: this,
            id: id.clone(),
            key: key_of(id)?,
            buf: Vec::new(),
            tickets: Vec::new(),
            done: false,
        };
        Ok(MessageWriter::new(id.clone(), Box::new(sink)))
    }

    /// Committed messages nobody holds, oldest first.
    pub fn list(&self) -> io::Result<Vec<QueueId>> {
        let ids: Vec<QueueId> = self.messages().keys().cloned().collect();
        Ok(self.holds.unheld(ids))
    }

    /// Every committed message, oldest first.
    pub fn list_all(&self) -> io::Result<Vec<QueueId>> {
        Ok(self.messages().keys().cloned().collect())
    }

    /// A committed message's envelope.
    pub fn load(&self, id: &QueueId) -> io::Result<Envelope> {
        match self.messages().get(id) {
            Some(Cached::Envelope(env)) => Ok((**env).clone()),
            Some(Cached::Unreadable(why)) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("queue id {id}: {why}"),
            )),
            None => Err(not_found(id)),
        }
    }

    /// A committed message's body, read from the segments.
    pub fn body(&self, id: &QueueId) -> io::Result<Vec<u8>> {
        if !self.contains(id) {
            return Err(not_found(id));
        }
        let records = self
            .log
            .records_of(key_of(id)?, |k| k == RecordKind::Body)
            .map_err(log_err)?;
        let mut body = Vec::with_capacity(records.iter().map(|r| r.payload.len()).sum());
        for r in records {
            body.extend_from_slice(&r.payload);
        }
        Ok(body)
    }

    /// The length of a message's body, from the log's index (nothing is
    /// read from the segments).
    pub fn body_size(&self, id: &QueueId) -> io::Result<u64> {
        if !self.contains(id) {
            return Err(not_found(id));
        }
        self.log
            .payload_len_of(key_of(id)?, |k| k == RecordKind::Body)
            .map_err(log_err)
    }

    /// Replaces a message's envelope durably (a State record).
    pub fn update(&self, id: &QueueId, env: &Envelope) -> io::Result<()> {
        if !self.contains(id) {
            return Err(not_found(id));
        }
        let record = Record::new(RecordKind::State, key_of(id)?, env.to_toml()?);
        self.log.commit(vec![record]).map_err(log_err)?;
        if let Some(e) = self.messages().get_mut(id) {
            *e = Cached::Envelope(Box::new(env.clone()));
        }
        Ok(())
    }

    /// Removes a message durably (a tombstone, group committed).
    pub fn remove(&self, id: &QueueId) -> io::Result<()> {
        self.messages().remove(id);
        self.log.finish(key_of(id)?).wait().map_err(log_err)?;
        Ok(())
    }

    /// Removes a message; its tombstone joins the next group commit but is
    /// not waited for.
    pub fn remove_unsynced(&self, id: &QueueId) -> io::Result<()> {
        self.messages().remove(id);
        drop(self.log.finish(key_of(id)?));
        Ok(())
    }

    /// Claims `id` for exclusive work in this process.
    pub fn hold(&self, id: &QueueId) -> Option<Hold> {
        self.holds.hold(id)
    }
}

/// One message being written into the log.
struct LogSink {
    store: Arc<LogStore>,
    id: QueueId,
    key: MessageKey,
    buf: Vec<u8>,
    /// Chunks submitted, not yet known durable.
    tickets: Vec<Ticket>,
    done: bool,
}

impl BodySink for LogSink {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let (store, key, tickets) = (&self.store, self.key, &mut self.tickets);
        crate::fill_chunks(&mut self.buf, data, BODY_CHUNK, |chunk| {
            let record = Record::new(RecordKind::Body, key, chunk);
            tickets.push(store.log.submit(vec![record]));
        });
        Ok(())
    }

    fn commit(mut self: Box<Self>, envelope: &Envelope) -> Commit {
        self.done = true;
        let Some(hold) = self.store.holds.hold(&self.id) else {
            let e = io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("queue id {} is already held", self.id),
            );
            return Commit::ready(Err(e));
        };
        let text = match envelope.to_toml() {
            Ok(t) => t,
            Err(e) => return Commit::ready(Err(e)),
        };
        let mut records = Vec::with_capacity(2);
        if !self.buf.is_empty() || self.tickets.is_empty() {
            let last = std::mem::take(&mut self.buf);
            records.push(Record::new(RecordKind::Body, self.key, last));
        }
        records.push(Record::new(RecordKind::Envelope, self.key, text));
        let ticket = self.store.log.submit(records);
        let chunks = std::mem::take(&mut self.tickets);
        // In the index (held, so unlisted) before it is durable: a commit
        // future dropped before it resolves still leaves the message
        // served once its records are durable.
        self.store.messages().insert(
            self.id.clone(),
            Cached::Envelope(Box::new(envelope.clone())),
        );
        let store = self.store.clone();
        let (id, key) = (self.id.clone(), self.key);
        Commit::new(async move {
            let mut outcome = Ok(());
            for t in chunks {
                if let Err(e) = t.await {
                    outcome = Err(e);
                }
            }
            let last = ticket.await;
            match outcome.and(last.map(|_| ())) {
                Ok(()) => Ok(hold),
                Err(e) => {
                    store.messages().remove(&id);
                    drop(store.log.finish(key));
                    Err(log_err(e))
                }
            }
        })
    }
}

impl Drop for LogSink {
    fn drop(&mut self) {
        if !self.done && !self.tickets.is_empty() {
            // Chunks reached the log: a tombstone makes sure they never
            // count as a message (open would finish them anyway).
            drop(self.store.log.finish(self.key));
        }
    }
}

#[cfg(test)]
mod tests;
