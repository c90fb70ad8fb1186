//! The durable queue: one body file and one envelope file per message.
//!
//! # Contract (used by the inbound server, local delivery and the outbound runner)
//!
//! Layout under the queue directory (`DATA_DIR/queue`, the directory passed
//! to [`Spool::open`]):
//!
//! ```text
//! queue/lock          flock(2)ed by the process that owns the queue; its pid
//! queue/tmp/            envelope updates in progress; emptied by Spool::open
//! queue/format          marker: every envelope here is sealed (a queue
//!                       without it is from before seals; Spool::open seals
//!                       its envelopes, which were complete, and adds it)
//! queue/ID.msg          the raw RFC 5322 message as it will be delivered
//!                       (starts with our Received header), CRLF line endings
//! queue/ID.env          the Envelope, TOML (see `Envelope`)
//! ```
//!
//! **A message exists (is committed) exactly when `ID.env` exists and its
//! seal verifies.** The last line of every envelope file is a seal,
//! `# postern-seal v1 env=LEN:CRC body=LEN:CRC` (a TOML comment): the
//! length and CRC-32 of the envelope text before it and, for an envelope
//! written by a commit, of the body file. [`MessageWriter::commit`] writes
//! the body straight into `ID.msg` and the sealed envelope straight into
//! `ID.env` (no temporary names, no renames), then makes both and their
//! directory entries durable in **one** journal commit: `syncfs(2)` on the
//! queue's file system, shared by every commit waiting at that moment
//! (group commit, see [`Syncer`]). Only when `commit` returns `Ok` may the
//! server answer `250`.
//!
//! Crash safety: until the sync returns, nothing was acknowledged. A crash
//! before or during it can leave nothing, a lone or short `ID.msg`, or an
//! `ID.env` that is empty, torn, or complete beside a body that is not.
//! [`Spool::open`] checks every seal (envelope and body lengths and CRCs)
//! and removes the message when it does not verify; a complete, verified
//! message that was never acknowledged is kept (the client retries: a
//! duplicate is possible, a loss is not). After the sync returned, body and
//! envelope are durable and the seal verifies, so an acknowledged message
//! always survives and a half-written one is never delivered.
//!
//! [`Spool::update`] replaces the envelope atomically (sealed temp file in
//! `tmp/`, fsync, rename, fsync dir; the seal carries `body=-`: the body was
//! verified durable at commit). [`Spool::remove`] deletes the envelope
//! first, then the body, then fsyncs the directory;
//! [`Spool::remove_unsynced`] skips that fsync for callers whose redo is
//! idempotent (local delivery, see `crate::maildir`).
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
//!   [`Spool::writer`], `write`, `commit` with the null sender
//!   (`ReversePath::Null`). Mark a
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
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::envelope::Envelope;
use crate::id::QueueId;
use crate::seal::{FORMAT_MARKER, NO_SEAL, sealed, verify_sealed};
use crate::sync::{Syncer, sync_dir};

struct Inner {
    /// Held while any clone lives: keeps other processes out.
    _lock: Arc<crate::lock::DirLock>,
    dir: PathBuf,
    tmp: PathBuf,
    nonce: u16,
    counter: AtomicU32,
    held: Mutex<HashSet<QueueId>>,
    syncer: Arc<Syncer>,
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
        // Before anything is cleaned: those files may be another
        // instance's work in progress.
        let lock = crate::lock::lock_dir(dir)?;
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
        // A commit interrupted by a crash can leave a torn envelope or a
        // body shorter than its seal says: never acknowledged, removed.
        // A queue written before seals existed (no format marker) has only
        // complete envelopes (they were renamed into place): those are
        // sealed now instead.
        let marker = dir.join(FORMAT_MARKER);
        let legacy = !marker.exists();
        for stem in envelopes.intersection(&bodies) {
            let env = dir.join(format!("{stem}.env"));
            let body = dir.join(format!("{stem}.msg"));
            if let Err(problem) = verify_sealed(&env, &body)? {
                if legacy && problem == NO_SEAL {
                    let text = fs::read_to_string(&env)?;
                    if let Ok(parsed) = toml::from_str::<Envelope>(&text) {
                        let tmp = tmp.join(format!("{stem}.legacy.env"));
                        let mut f = File::create(&tmp)?;
                        f.write_all(sealed(parsed.to_toml()?, None).as_bytes())?;
                        f.sync_all()?;
                        fs::rename(&tmp, &env)?;
                        continue;
                    }
                }
                tracing::warn!(file = %env.display(), %problem, "removing a message whose commit did not finish (never acknowledged)");
                fs::remove_file(&env)?;
                fs::remove_file(&body)?;
            }
        }
        if legacy {
            sync_dir(dir)?;
            let mut f = File::create(&marker)?;
            f.write_all(b"sealed envelopes v1\n")?;
            f.sync_all()?;
        }
        sync_dir(dir)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let nonce = (std::process::id() as u16) ^ (nanos as u16) ^ ((nanos >> 16) as u16);
        Ok(Spool {
            inner: Arc::new(Inner {
                _lock: lock,
                dir: dir.to_owned(),
                tmp,
                nonce,
                counter: AtomicU32::new(0),
                held: Mutex::new(HashSet::new()),
                syncer: Syncer::for_dir(dir)?,
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

    /// Starts writing the body of message `id`, straight into `ID.msg` (a
    /// body without a sealed envelope is not a message; see the module
    /// docs).
    pub fn writer(&self, id: &QueueId) -> io::Result<MessageWriter> {
        let body = self.body_path(id);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&body)?;
        Ok(MessageWriter {
            spool: self.clone(),
            id: id.clone(),
            file: Some(BufWriter::with_capacity(64 * 1024, file)),
            body,
            written: 0,
            crc: crc32fast::Hasher::new(),
        })
    }

    /// The group-commit syncer of the queue's file system.
    pub fn syncer(&self) -> &Arc<Syncer> {
        &self.inner.syncer
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

    /// Like [`Spool::remove`] without the directory fsync: a crash may bring
    /// the message back. Only for callers whose work on the message is
    /// idempotent (local delivery finds its Maildir file and does not
    /// deliver twice).
    pub fn remove_unsynced(&self, id: &QueueId) -> io::Result<()> {
        ignore_missing(fs::remove_file(self.env_path(id)))?;
        ignore_missing(fs::remove_file(self.body_path(id)))
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
        let text = sealed(env.to_toml()?, None);
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
    /// `ID.msg`; empty once committed (Drop must not delete it then).
    body: PathBuf,
    written: u64,
    crc: crc32fast::Hasher,
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
        self.crc.update(data);
        Ok(())
    }

    /// Makes the message durable and visible: writes the sealed envelope
    /// next to the body, then waits for one group commit ([`Syncer::sync`])
    /// that covers both files and their directory entries. The message is
    /// **held** on return (hidden from [`Spool::list`]) until the returned
    /// [`Hold`] is dropped, so local delivery can finish before the outbound
    /// runner sees it.
    ///
    /// Only after `Ok` may the message be acknowledged. On error the files
    /// are removed (best effort; if the sync failed after the files reached
    /// the disk, a restart may find the complete message: a duplicate is
    /// possible, a loss is not).
    pub fn commit(mut self, envelope: &Envelope) -> io::Result<Hold> {
        let spool = self.spool.clone();
        let hold = spool.hold(&self.id).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("queue id {} is already held", self.id),
            )
        })?;
        if let Err(e) = self.commit_held(envelope) {
            let _ = fs::remove_file(spool.env_path(&self.id));
            // Drop removes the body.
            return Err(e);
        }
        // Committed: the Drop below must not delete anything.
        self.body = PathBuf::new();
        Ok(hold)
    }

    fn commit_held(&mut self, envelope: &Envelope) -> io::Result<()> {
        let spool = self.spool.clone();
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("message writer already failed"))?;
        file.flush()?;
        let body_file = file.into_inner().map_err(|e| e.into_error())?;
        let text = sealed(
            envelope.to_toml()?,
            Some((self.written, self.crc.clone().finalize())),
        );
        let mut env_file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(spool.env_path(&self.id))?;
        env_file.write_all(text.as_bytes())?;
        spool.inner.syncer.sync(&[&body_file, &env_file])
    }
}

impl Drop for MessageWriter {
    fn drop(&mut self) {
        if !self.body.as_os_str().is_empty() {
            self.file = None;
            let _ = fs::remove_file(&self.body);
        }
    }
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
    use crate::envelope::{RcptStatus, RecipientState, unix_now};
    use crate::report::Diagnosis;
    use crate::test_support::{mailbox, sender};
    use postern_proto::{Body, Notify, Ret};

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
        let mut env = Envelope::new(id.clone(), sender("a@b.example"));
        env.recipients
            .push(RecipientState::pending(mailbox("c@d.example"), false));
        env.recipients[0].notify = Notify::from_keyword("FAILURE,DELAY");
        env.params.ret = Some(Ret::Headers);
        env.params.body = Some(Body::EightBitMime);
        let hold = w.commit(&env).unwrap();
        assert!(spool.list().unwrap().is_empty(), "held ids are hidden");
        drop(hold);
        assert_eq!(spool.list().unwrap(), vec![id.clone()]);
        assert_eq!(spool.load(&id).unwrap(), env);
        env.recipients[0].status = RcptStatus::Deferred(Diagnosis::parse(
            "451 4.3.0 later (remote mta: mx[192.0.2.1]:25)",
            crate::report::OTHER_TRANSIENT,
        ));
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
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            3,
            "only tmp/, the lock and the format marker left"
        );
        // A writer abandoned by a crash, a lone body, a lone envelope.
        let w = spool.writer(&spool.new_id()).unwrap();
        std::mem::forget(w);
        fs::write(dir.join(format!("{}.msg", spool.new_id())), b"x").unwrap();
        fs::write(dir.join(format!("{}.env", spool.new_id())), b"x").unwrap();
        let spool = Spool::open(&dir).unwrap();
        assert!(spool.list().unwrap().is_empty());
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            3,
            "only tmp/, the lock and the format marker left"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_queue_from_before_seals_is_sealed_not_emptied() {
        let dir = tempdir("legacy");
        fs::create_dir_all(dir.join("tmp")).unwrap();
        let id: QueueId = "0123456789abcdef0123456789".parse().unwrap();
        let mut env = Envelope::new(id.clone(), sender("a@b.example"));
        env.recipients
            .push(RecipientState::pending(mailbox("c@d.example"), false));
        fs::write(dir.join(format!("{id}.env")), env.to_toml().unwrap()).unwrap();
        fs::write(dir.join(format!("{id}.msg")), b"Subject: old\r\n\r\n").unwrap();
        let spool = Spool::open(&dir).unwrap();
        assert_eq!(spool.list().unwrap(), vec![id.clone()]);
        assert_eq!(spool.load(&id).unwrap(), env);
        // From now on an envelope without a seal is a torn commit.
        fs::write(dir.join(format!("{id}.env")), env.to_toml().unwrap()).unwrap();
        let spool = Spool::open(&dir).unwrap();
        assert!(spool.list().unwrap().is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn torn_commits_are_removed_and_sealed_ones_kept() {
        let dir = tempdir("seal");
        let spool = Spool::open(&dir).unwrap();
        let mut ids = Vec::new();
        for i in 0..5 {
            let id = spool.new_id();
            let mut w = spool.writer(&id).unwrap();
            w.write(format!("Subject: {i}\r\n\r\n").as_bytes()).unwrap();
            w.write(&vec![b'x'; 100_000 + i]).unwrap();
            let mut env = Envelope::new(id.clone(), sender("a@b.example"));
            env.recipients
                .push(RecipientState::pending(mailbox("c@d.example"), false));
            drop(w.commit(&env).unwrap());
            ids.push(id);
        }
        // 0: intact. 1: envelope torn (crash while writing it). 2: body
        // short. 3: body altered. 4: updated (sealed without a body CRC).
        let env1 = spool.env_path(&ids[1]);
        let text = fs::read(&env1).unwrap();
        fs::write(&env1, &text[..text.len() - 10]).unwrap();
        let body2 = spool.body_path(&ids[2]);
        let len = fs::metadata(&body2).unwrap().len();
        File::options()
            .write(true)
            .open(&body2)
            .unwrap()
            .set_len(len - 4096)
            .unwrap();
        let body3 = spool.body_path(&ids[3]);
        let mut b = fs::read(&body3).unwrap();
        b[50_000] = 0;
        fs::write(&body3, b).unwrap();
        let mut env4 = spool.load(&ids[4]).unwrap();
        env4.attempts = 3;
        spool.update(&ids[4], &env4).unwrap();
        assert!(
            fs::read_to_string(spool.env_path(&ids[4]))
                .unwrap()
                .contains(" body=-\n")
        );
        let spool = Spool::open(&dir).unwrap();
        assert_eq!(spool.list().unwrap(), vec![ids[0].clone(), ids[4].clone()]);
        assert_eq!(spool.load(&ids[4]).unwrap(), env4);
        assert!(!spool.body_path(&ids[1]).exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn concurrent_commits_share_sync_rounds() {
        let dir = tempdir("group");
        let spool = Spool::open(&dir).unwrap();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..5 {
                        let id = spool.new_id();
                        let mut w = spool.writer(&id).unwrap();
                        w.write(b"Subject: x\r\n\r\nbody\r\n").unwrap();
                        let env = Envelope::new(id.clone(), sender("a@b.example"));
                        drop(w.commit(&env).unwrap());
                    }
                });
            }
        });
        assert_eq!(spool.list().unwrap().len(), 40);
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
