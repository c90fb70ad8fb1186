//! The durable queue: one body file and one envelope file per message.
//!
//! # Contract (used by the inbound server, local delivery and the outbound runner)
//!
//! Layout under the queue directory (`DATA_DIR/queue`, the directory passed
//! to [`Spool::open`]):
//!
//! ```text
//! queue/tmp/            temporary files; emptied by Spool::open
//! queue/ID.msg          the raw RFC 5322 message as it will be delivered
//!                       (starts with our Received header), CRLF line endings
//! queue/ID.env          the Envelope, TOML (see `Envelope`)
//! ```
//!
//! **A message exists (is committed) exactly when `ID.env` exists.**
//! [`MessageWriter::commit`] writes and fsyncs the body in `tmp/`, writes and
//! fsyncs the envelope in `tmp/`, renames the body into place, then the
//! envelope, then fsyncs the queue directory. Only when `commit` returns
//! `Ok` may the server answer `250`. A crash at any point leaves either
//! nothing, or a lone `ID.msg` (removed by [`Spool::open`]; it was never
//! acknowledged), or the complete message. A half-written body is never
//! visible under its final name.
//!
//! [`Spool::remove`] deletes the envelope first, then the body, so a crash in
//! between leaves a lone body, again cleaned by `open`. [`Spool::update`]
//! replaces the envelope atomically (temp file, fsync, rename, fsync dir).
//!
//! # Who does what
//!
//! - The inbound server writes a message with [`Spool::writer`] and
//!   commits it with every recipient [`RcptStatus::Pending`]; recipients in a
//!   local domain have [`RecipientState::local`] set.
//! - Local delivery (`crate::maildir`, run by the MTA right after commit and
//!   by a periodic sweep) delivers `local` recipients into Maildir and marks
//!   them `Delivered` (or `Failed`/`Deferred`). While it works on a message it
//!   **holds** the id ([`Spool::hold`]); [`Spool::list`] never returns held
//!   ids. A freshly committed message stays held until its local recipients
//!   are done, so the outbound runner only ever sees it afterwards.
//! - The outbound runner handles recipients with `local == false` that are
//!   `Pending` or `Deferred`: it lists, [`load`](Spool::load)s, relays, and
//!   [`update`](Spool::update)s per-recipient status, `attempts` and
//!   `next_attempt`; it should also [`hold`](Spool::hold) an id while it
//!   works on it. It must leave `local == true` recipients alone. When no
//!   recipient is `Pending` or `Deferred` any more
//!   ([`Envelope::is_finished`]), whoever finished last calls
//!   [`Spool::remove`].
//! - A DSN (bounce) is queued like any message: [`Spool::new_id`],
//!   [`Spool::writer`], `write`, `commit` with sender `""` (null). Mark a
//!   recipient `local` when its domain is local (`Config::is_local_domain`);
//!   the local sweep picks such recipients up within seconds.
//!
//! Everything here is blocking file IO; async callers use
//! `tokio::task::spawn_blocking` (or accept the short block for small
//! writes). [`Spool`] is cheap to clone and shareable between threads.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A queue id: 26 lowercase hex digits, `TTTTTTTTTTTTTT` (unix time in
/// microseconds, 14 digits) `PPPP` (process nonce) `CCCCCCCC` (counter).
///
/// Ids sort by arrival time, are unique within a spool (the nonce changes per
/// process start, the counter per message) and are safe as file names. They
/// appear in the `250` reply, the logs, the Received header and Maildir
/// file names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QueueId(String);

const ID_LEN: usize = 26;

impl QueueId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Text that is not a queue id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a queue id: {0:?} (expected {ID_LEN} lowercase hex digits)")]
pub struct BadQueueId(pub String);

impl FromStr for QueueId {
    type Err = BadQueueId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(QueueId(s.to_owned()))
        } else {
            Err(BadQueueId(s.to_owned()))
        }
    }
}

impl TryFrom<String> for QueueId {
    type Error = BadQueueId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<QueueId> for String {
    fn from(id: QueueId) -> String {
        id.0
    }
}

/// DSN `RET` (RFC 3461 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Ret {
    /// Return the full message in a DSN.
    Full,
    /// Return only the headers.
    Hdrs,
}

/// The declared body type (`BODY=`, RFC 6152 / RFC 3030).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyType {
    /// `BODY=7BIT`.
    #[serde(rename = "7BIT")]
    SevenBit,
    /// `BODY=8BITMIME`.
    #[serde(rename = "8BITMIME")]
    EightBitMime,
    /// `BODY=BINARYMIME`.
    #[serde(rename = "BINARYMIME")]
    BinaryMime,
}

/// When the sender asked for DSNs for one recipient (`NOTIFY=`, RFC 3461 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Notify {
    /// `NOTIFY=NEVER`: no DSN at all.
    Never,
    /// On successful delivery.
    Success,
    /// On failure.
    Failure,
    /// On delay.
    Delay,
}

/// MAIL FROM parameters kept with the message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageParams {
    /// DSN `ENVID` (decoded from xtext).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    /// DSN `RET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<Ret>,
    /// `BODY=` as declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyType>,
    /// `SMTPUTF8` was given.
    #[serde(default)]
    pub smtputf8: bool,
    /// `SIZE=` as declared (the real size is the body file's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// The delivery state of one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum RcptStatus {
    /// Not yet attempted.
    Pending,
    /// Delivered (locally, or accepted by the next hop).
    Delivered {
        /// What happened, e.g. the remote `250` reply or `maildir alice`.
        #[serde(default)]
        reply: String,
    },
    /// Permanently failed; a DSN is due (unless the sender is null or
    /// `NOTIFY` excludes failure).
    Failed {
        /// The reply or error text, for logs and the DSN.
        reply: String,
    },
    /// Transiently failed; retried at [`Envelope::next_attempt`].
    Deferred {
        /// The last reply or error text.
        reply: String,
    },
}

impl RcptStatus {
    /// `Pending` or `Deferred`: work remains.
    pub fn is_open(&self) -> bool {
        matches!(self, RcptStatus::Pending | RcptStatus::Deferred { .. })
    }
}

/// One recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientState {
    /// The address as accepted at RCPT (`local@domain`, no angle brackets).
    pub address: String,
    /// Where delivery stands.
    pub status: RcptStatus,
    /// DSN `ORCPT` as `addr-type;address` (xtext decoded), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
    /// DSN `NOTIFY`, if given (`None`: the default, failure and delay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Vec<Notify>>,
    /// In a local domain: delivered to Maildir by the MTA itself, never
    /// relayed. The outbound runner must skip these.
    #[serde(default)]
    pub local: bool,
}

impl RecipientState {
    /// A pending recipient without DSN parameters.
    pub fn pending(address: impl Into<String>, local: bool) -> Self {
        RecipientState {
            address: address.into(),
            status: RcptStatus::Pending,
            orcpt: None,
            notify: None,
            local,
        }
    }

    /// The domain part of the address (after the last `@`), or `""`.
    pub fn domain(&self) -> &str {
        self.address.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// A queued message's envelope and bookkeeping, stored as `ID.env` (TOML).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// The message's queue id.
    pub id: QueueId,
    /// The reverse-path without angle brackets; `""` for the null sender
    /// (never bounce to it).
    pub sender: String,
    /// MAIL FROM parameters.
    #[serde(default)]
    pub params: MessageParams,
    /// Arrival, unix seconds (see [`Envelope::arrival_time`]); the
    /// outbound runner measures the maximum queue age from here.
    pub arrival: u64,
    /// Outbound delivery attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Unix seconds before which the outbound runner should not retry
    /// (0: now).
    #[serde(default)]
    pub next_attempt: u64,
    /// The listener that received it (for logs and DSNs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<String>,
    /// The client's address, `ip:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The client's HELO/EHLO name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helo: Option<String>,
    /// Negotiated TLS version on the inbound connection, e.g. `TLSv1.3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    /// Negotiated TLS cipher suite on the inbound connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cipher: Option<String>,
    /// The authenticated (SASL) user, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_user: Option<String>,
    /// The recipients, in RCPT order.
    pub recipients: Vec<RecipientState>,
}

impl Envelope {
    /// A fresh envelope: arrival now, no attempts, no recipients.
    pub fn new(id: QueueId, sender: impl Into<String>) -> Self {
        Envelope {
            id,
            sender: sender.into(),
            params: MessageParams::default(),
            arrival: unix_now(),
            attempts: 0,
            next_attempt: 0,
            listener: None,
            peer: None,
            helo: None,
            tls_version: None,
            tls_cipher: None,
            auth_user: None,
            recipients: Vec::new(),
        }
    }

    /// [`Envelope::arrival`] as a `SystemTime`.
    pub fn arrival_time(&self) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_secs(self.arrival)
    }

    /// No recipient is `Pending` or `Deferred`: the message can be removed.
    pub fn is_finished(&self) -> bool {
        !self.recipients.iter().any(|r| r.status.is_open())
    }

    /// Some local recipient is `Pending` or `Deferred`.
    pub fn has_open_local(&self) -> bool {
        self.recipients
            .iter()
            .any(|r| r.local && r.status.is_open())
    }

    /// Some remote recipient is `Pending` or `Deferred`.
    pub fn has_open_remote(&self) -> bool {
        self.recipients
            .iter()
            .any(|r| !r.local && r.status.is_open())
    }

    fn to_toml(&self) -> io::Result<String> {
        toml::to_string(self).map_err(|e| io::Error::other(format!("envelope {}: {e}", self.id)))
    }
}

/// Unix time in seconds (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct Inner {
    dir: PathBuf,
    tmp: PathBuf,
    nonce: u16,
    counter: AtomicU32,
    held: Mutex<HashSet<QueueId>>,
}

/// The queue directory. Cheap to clone; clones share the hold set.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

impl fmt::Debug for Spool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

/// While alive, the id is hidden from [`Spool::list`] and [`Spool::hold`]
/// returns `None` for it. Dropping it releases the id.
#[derive(Debug)]
pub struct Hold {
    spool: Spool,
    id: QueueId,
}

impl Hold {
    /// The held id.
    pub fn id(&self) -> &QueueId {
        &self.id
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.spool.held().remove(&self.id);
    }
}

impl Spool {
    /// Opens (creating if needed) the queue directory `dir`
    /// (conventionally `DATA_DIR/queue`). Empties `dir/tmp`, and removes
    /// bodies without an envelope and envelopes without a body: both are
    /// leftovers of a crash before a commit finished (never acknowledged)
    /// or during a remove.
    pub fn open(dir: &Path) -> io::Result<Spool> {
        let tmp = dir.join("tmp");
        let created = !dir.is_dir();
        fs::create_dir_all(&tmp)?;
        if created && let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            // The queue directory itself must survive a crash.
            sync_dir(parent)?;
        }
        for entry in fs::read_dir(&tmp)? {
            let path = entry?.path();
            if path.is_file() {
                fs::remove_file(&path)?;
            }
        }
        let mut bodies = HashSet::new();
        let mut envelopes = HashSet::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(stem) = name.strip_suffix(".msg") {
                bodies.insert(stem.to_owned());
            } else if let Some(stem) = name.strip_suffix(".env") {
                envelopes.insert(stem.to_owned());
            }
        }
        for stem in bodies.difference(&envelopes) {
            fs::remove_file(dir.join(format!("{stem}.msg")))?;
        }
        for stem in envelopes.difference(&bodies) {
            fs::remove_file(dir.join(format!("{stem}.env")))?;
        }
        sync_dir(dir)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let nonce = (std::process::id() as u16) ^ (nanos as u16) ^ ((nanos >> 16) as u16);
        Ok(Spool {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                tmp,
                nonce,
                counter: AtomicU32::new(0),
                held: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The queue directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// A new unique, time-sortable id.
    pub fn new_id(&self) -> QueueId {
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

    /// Starts writing the body of message `id` into a temporary file.
    pub fn writer(&self, id: &QueueId) -> io::Result<MessageWriter> {
        let tmp_body = self.inner.tmp.join(format!("{id}.msg"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_body)?;
        Ok(MessageWriter {
            spool: self.clone(),
            id: id.clone(),
            file: Some(BufWriter::with_capacity(64 * 1024, file)),
            tmp_body,
            written: 0,
        })
    }

    /// Committed messages that nobody holds, oldest first.
    pub fn list(&self) -> io::Result<Vec<QueueId>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.inner.dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = name.strip_suffix(".env").and_then(|s| s.parse().ok()) {
                ids.push(id);
            }
        }
        let held = self.held();
        ids.retain(|id| !held.contains(id));
        drop(held);
        ids.sort();
        Ok(ids)
    }

    /// Every committed message, held or not, oldest first.
    pub fn list_all(&self) -> io::Result<Vec<QueueId>> {
        let mut ids: Vec<QueueId> = Vec::new();
        for entry in fs::read_dir(&self.inner.dir)? {
            let name = entry?.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".env"))
                .and_then(|s| s.parse().ok())
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Reads a committed message's envelope.
    pub fn load(&self, id: &QueueId) -> io::Result<Envelope> {
        let path = self.env_path(id);
        let text = fs::read_to_string(&path)?;
        toml::from_str(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }

    /// Replaces a committed message's envelope atomically and durably.
    pub fn update(&self, id: &QueueId, env: &Envelope) -> io::Result<()> {
        if !self.env_path(id).exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("queue id {id} is not in the spool"),
            ));
        }
        let tmp = self.write_tmp_envelope(id, env)?;
        fs::rename(&tmp, self.env_path(id))?;
        sync_dir(&self.inner.dir)
    }

    /// The raw message file (RFC 5322, starting with our Received header).
    pub fn body_path(&self, id: &QueueId) -> PathBuf {
        self.inner.dir.join(format!("{id}.msg"))
    }

    /// Removes a message: envelope first, then body, then fsyncs the
    /// directory. Removing a missing message is not an error.
    pub fn remove(&self, id: &QueueId) -> io::Result<()> {
        ignore_missing(fs::remove_file(self.env_path(id)))?;
        ignore_missing(fs::remove_file(self.body_path(id)))?;
        sync_dir(&self.inner.dir)
    }

    /// Claims `id` for exclusive work (local delivery, an outbound attempt)
    /// within this process; `None` if someone else holds it. Held ids are
    /// not returned by [`Spool::list`].
    pub fn hold(&self, id: &QueueId) -> Option<Hold> {
        if self.held().insert(id.clone()) {
            Some(Hold {
                spool: self.clone(),
                id: id.clone(),
            })
        } else {
            None
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<QueueId>> {
        self.inner.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn env_path(&self, id: &QueueId) -> PathBuf {
        self.inner.dir.join(format!("{id}.env"))
    }

    fn write_tmp_envelope(&self, id: &QueueId, env: &Envelope) -> io::Result<PathBuf> {
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.inner.tmp.join(format!("{id}.{n}.env"));
        let text = env.to_toml()?;
        let mut file = File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        Ok(tmp)
    }
}

/// The body of one message being received. Dropping it without
/// [`commit`](MessageWriter::commit) deletes the temporary file.
pub struct MessageWriter {
    spool: Spool,
    id: QueueId,
    file: Option<BufWriter<File>>,
    tmp_body: PathBuf,
    written: u64,
}

impl fmt::Debug for MessageWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageWriter")
            .field("id", &self.id)
            .field("written", &self.written)
            .finish()
    }
}

impl MessageWriter {
    /// The id being written.
    pub fn id(&self) -> &QueueId {
        &self.id
    }

    /// Octets written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends body octets.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("message writer already failed"))?;
        file.write_all(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    /// Makes the message durable and visible: fsync the body, write and
    /// fsync the envelope, rename body then envelope into the queue, fsync
    /// the queue directory. The message is **held** on return (hidden from
    /// [`Spool::list`]) until the returned [`Hold`] is dropped, so local
    /// delivery can finish before the outbound runner sees it.
    ///
    /// Only after `Ok` may the message be acknowledged. On error nothing is
    /// left under the final names... except in the rare case the envelope
    /// rename succeeded and the directory fsync failed; then the message is
    /// committed as far as this process can tell and reported as an error
    /// (so not acknowledged; a duplicate is possible, a loss is not).
    pub fn commit(mut self, envelope: &Envelope) -> io::Result<Hold> {
        let spool = self.spool.clone();
        let hold = spool.hold(&self.id).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("queue id {} is already held", self.id),
            )
        })?;
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("message writer already failed"))?;
        file.flush()?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        let tmp_env = spool.write_tmp_envelope(&self.id, envelope)?;
        let body = spool.body_path(&self.id);
        let env = spool.env_path(&self.id);
        if let Err(e) = fs::rename(&self.tmp_body, &body) {
            let _ = fs::remove_file(&tmp_env);
            return Err(e);
        }
        if let Err(e) = fs::rename(&tmp_env, &env) {
            let _ = fs::remove_file(&tmp_env);
            let _ = fs::remove_file(&body);
            return Err(e);
        }
        // Renamed: the Drop below must not delete anything.
        self.tmp_body = PathBuf::new();
        sync_dir(&spool.inner.dir)?;
        Ok(hold)
    }
}

impl Drop for MessageWriter {
    fn drop(&mut self) {
        if !self.tmp_body.as_os_str().is_empty() {
            self.file = None;
            let _ = fs::remove_file(&self.tmp_body);
        }
    }
}

/// fsyncs a directory so renames and removals in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "postern-spool-{name}-{}-{}",
            std::process::id(),
            unix_now()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn commit_list_load_update_remove() {
        let dir = tempdir("cycle");
        let spool = Spool::open(&dir).unwrap();
        let id = spool.new_id();
        let mut w = spool.writer(&id).unwrap();
        w.write(b"Subject: x\r\n\r\nhello\r\n").unwrap();
        let mut env = Envelope::new(id.clone(), "a@b.example");
        env.recipients
            .push(RecipientState::pending("c@d.example", false));
        env.recipients[0].notify = Some(vec![Notify::Failure, Notify::Delay]);
        env.params.ret = Some(Ret::Hdrs);
        env.params.body = Some(BodyType::EightBitMime);
        let hold = w.commit(&env).unwrap();
        assert!(spool.list().unwrap().is_empty(), "held ids are hidden");
        drop(hold);
        assert_eq!(spool.list().unwrap(), vec![id.clone()]);
        assert_eq!(spool.load(&id).unwrap(), env);
        env.recipients[0].status = RcptStatus::Deferred {
            reply: "451 later".into(),
        };
        env.attempts = 1;
        spool.update(&id, &env).unwrap();
        assert_eq!(spool.load(&id).unwrap(), env);
        assert_eq!(
            fs::read(spool.body_path(&id)).unwrap(),
            b"Subject: x\r\n\r\nhello\r\n"
        );
        spool.remove(&id).unwrap();
        assert!(spool.list().unwrap().is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn uncommitted_and_orphans_are_cleaned() {
        let dir = tempdir("clean");
        let spool = Spool::open(&dir).unwrap();
        let id = spool.new_id();
        let mut w = spool.writer(&id).unwrap();
        w.write(b"half").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
        // A writer abandoned by a crash, a lone body, a lone envelope.
        let w = spool.writer(&spool.new_id()).unwrap();
        std::mem::forget(w);
        fs::write(dir.join(format!("{}.msg", spool.new_id())), b"x").unwrap();
        fs::write(dir.join(format!("{}.env", spool.new_id())), b"x").unwrap();
        let spool = Spool::open(&dir).unwrap();
        assert!(spool.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "only tmp/ left");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn ids_are_unique_sortable_and_parse() {
        let dir = tempdir("ids");
        let spool = Spool::open(&dir).unwrap();
        let ids: Vec<QueueId> = (0..1000).map(|_| spool.new_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 1000);
        for id in &ids {
            assert_eq!(id.as_str().parse::<QueueId>().unwrap(), *id);
        }
        assert!("../etc".parse::<QueueId>().is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
