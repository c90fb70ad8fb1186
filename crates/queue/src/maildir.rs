//! Local delivery into Maildir, and the local half of the queue.
//!
//! Mailboxes live at `DATA_DIR/mail/DOMAIN/LOCALPART/{tmp,new,cur}`
//! (lowercase). A message is written to `tmp/`, fsynced, renamed into
//! `new/`, and `new/` is fsynced: a reader never sees half a message. Lines
//! end in LF as Maildir readers expect; a `Return-Path:` and a
//! `Delivered-To:` header go first, then the spooled message (which starts
//! with our `Received:` header).
//!
//! File names are `ARRIVAL.Q<queue id>R<recipient index>.HOST`, fixed per
//! queued recipient: after a crash between the rename and the envelope
//! update, redelivery finds the file (in `new/`, or in `cur/` with flags)
//! and does not deliver it twice.
//!
//! Delivery works in batches so that many messages share each sync:
//! every file of the batch is written to `tmp/`, the files are fsynced
//! (several threads at once, so the journal commits them together,
//! [`sync_paths`]), they are renamed into `new/`, each `new/` directory is
//! fsynced once, and only then are the recipients marked delivered in the
//! queue, or the queue entries removed (without waiting for the removal
//! to be durable: if a crash brings a queue entry back, redelivery finds the file by its fixed name and does
//! not deliver it twice).
//!
//! Who delivers: the inbound server hands each freshly committed message it
//! holds (see [`Store`]) to a delivery thread ([`DeliveryQueue`]),
//! off the path of the `250`; [`sweep`] delivers whatever is left (a
//! restart, a deferred local delivery, a DSN queued by the outbound runner
//! for a local sender).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use crate::bounce::{BounceRequest, BounceSink};
use postern_proto::Mailbox;

use crate::report::{Diagnosis, DsnAction, status};
use crate::{Envelope, Hold, QueueId, RcptStatus, Store, sync_dir, sync_paths, unix_now};

/// Which local mailboxes exist: asked before each local delivery, so a
/// mailbox removed after the message was accepted bounces (`5.1.1`)
/// instead of being created again.
pub trait MailboxDirectory: Send + Sync + std::fmt::Debug + 'static {
    /// `local@domain` has a mailbox.
    fn has_mailbox(&self, local: &str, domain: &str) -> bool;
}

/// The Maildir root.
#[derive(Debug, Clone)]
pub struct Maildirs {
    root: PathBuf,
    hostname: String,
}

impl Maildirs {
    /// Maildirs under `root` (`DATA_DIR/mail`); `hostname` ends file names.
    pub fn new(root: PathBuf, hostname: &str) -> Maildirs {
        let hostname = hostname.replace(['/', ':'], "_");
        Maildirs { root, hostname }
    }

    /// The Maildir of `local@domain` (lowercase, names already validated by
    /// the mailbox lookup).
    pub fn mailbox(&self, local: &str, domain: &str) -> PathBuf {
        self.root
            .join(domain.to_ascii_lowercase())
            .join(local.to_ascii_lowercase())
    }

    /// The fixed file name of recipient `index` of a message.
    pub fn file_name(&self, env: &Envelope, index: usize) -> String {
        format!("{}.Q{}R{}.{}", env.arrival, env.id, index, self.hostname)
    }

    /// Delivers `body` (the spooled message) to recipient `index` of `env`,
    /// durably. Returns the final path. Idempotent per (message, recipient).
    pub fn deliver(&self, env: &Envelope, index: usize, body: &[u8]) -> io::Result<PathBuf> {
        match self.prepare(env, index, body, true)? {
            Prepared::Present(target) => Ok(target),
            Prepared::Written { tmp, target } => {
                File::open(&tmp)?.sync_all()?;
                fs::rename(&tmp, &target)?;
                sync_dir(target.parent().unwrap_or(Path::new(".")))?;
                Ok(target)
            }
        }
    }

    /// Writes recipient `index`'s copy to `tmp/` (not synced), unless it is
    /// already delivered. `check_cur`: also look in `cur/` (a reader moves
    /// files there); needed whenever an earlier attempt may have delivered
    /// the file, i.e. for everything but a message committed by this
    /// process and never tried before.
    fn prepare(
        &self,
        env: &Envelope,
        index: usize,
        body: &[u8],
        check_cur: bool,
    ) -> io::Result<Prepared> {
        let rcpt = env
            .recipients
            .get(index)
            .ok_or_else(|| io::Error::other("no such recipient"))?;
        let (local, domain) = mailbox_names(&rcpt.address);
        let (local, domain) = (local.as_str(), domain.as_str());
        if local.contains(['/', '\0']) || local.starts_with('.') || domain.contains(['/', '\0']) {
            return Err(io::Error::other("unsafe mailbox name"));
        }
        let dir = self.mailbox(local, domain);
        if !dir.join("new").is_dir() {
            // A new mailbox: make its directories durable too, or a crash
            // could lose `new/` with the message after the queue let go.
            for sub in ["tmp", "new", "cur"] {
                fs::create_dir_all(dir.join(sub))?;
            }
            sync_dir(&dir)?;
            if let Some(domain_dir) = dir.parent() {
                sync_dir(domain_dir)?;
            }
            sync_dir(&self.root)?;
        }
        let name = self.file_name(env, index);
        let target = dir.join("new").join(&name);
        if target.exists() || (check_cur && delivered_to_cur(&dir.join("cur"), &name)?) {
            return Ok(Prepared::Present(target));
        }
        let tmp = dir.join("tmp").join(&name);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut out = BufWriter::with_capacity(64 * 1024, file);
        // Both from proto's grammar, which admits no CR or LF.
        writeln!(out, "Return-Path: {}", env.sender)?;
        writeln!(out, "Delivered-To: {}", rcpt.address)?;
        for line in body.split_inclusive(|&b| b == b'\n') {
            match line.strip_suffix(b"\r\n") {
                Some(text) => {
                    out.write_all(text)?;
                    out.write_all(b"\n")?;
                }
                None => out.write_all(line)?,
            }
        }
        out.flush()?;
        Ok(Prepared::Written { tmp, target })
    }
}

/// One recipient's copy on its way into a Maildir.
enum Prepared {
    /// Already delivered by an earlier attempt.
    Present(PathBuf),
    /// Written to `tmp/`, not yet synced nor renamed.
    Written { tmp: PathBuf, target: PathBuf },
}

fn delivered_to_cur(cur: &Path, name: &str) -> io::Result<bool> {
    let prefix = format!("{name}:");
    for entry in fs::read_dir(cur)? {
        let entry = entry?;
        if let Some(n) = entry.file_name().to_str()
            && (n == name || n.starts_with(&prefix))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The local-delivery service: delivers held messages, sweeps the rest.
#[derive(Debug, Clone)]
pub struct LocalDelivery {
    store: Arc<dyn Store>,
    maildirs: Maildirs,
    mailboxes: Arc<dyn MailboxDirectory>,
    bounces: Arc<dyn BounceSink>,
    max_age: Duration,
}

/// What one local-delivery pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalOutcome {
    /// Recipients delivered now.
    pub delivered: usize,
    /// Recipients that failed for good.
    pub failed: usize,
    /// Recipients deferred (retried by the sweep).
    pub deferred: usize,
    /// The message was complete and removed from the queue.
    pub removed: bool,
}

impl LocalDelivery {
    /// Delivers the local recipients of `spool` into `maildirs`, for the
    /// mailboxes `mailboxes` knows; failures are reported to `bounces`.
    /// A recipient whose delivery keeps failing is given up after 5 days
    /// (see [`LocalDelivery::max_age`]).
    pub fn new(
        store: Arc<dyn Store>,
        maildirs: Maildirs,
        mailboxes: Arc<dyn MailboxDirectory>,
        bounces: Arc<dyn BounceSink>,
    ) -> Self {
        LocalDelivery {
            store,
            maildirs,
            mailboxes,
            bounces,
            max_age: crate::RetryPolicy::default().max_age,
        }
    }

    /// Gives up a failing local delivery once the message is older than
    /// `max_age` (the queue's maximum age).
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The Maildir root.
    pub fn maildirs(&self) -> &Maildirs {
        &self.maildirs
    }

    /// Delivers every open local recipient of the held message `hold`,
    /// updates the envelope, removes the message when nothing is left, then
    /// releases the hold (the outbound runner sees the message after that).
    /// Blocking: run it on a blocking thread.
    pub fn deliver_held(&self, hold: Hold) -> io::Result<LocalOutcome> {
        self.deliver_batch(vec![hold], false)
            .pop()
            .unwrap_or_else(|| Ok(LocalOutcome::default()))
    }

    /// [`deliver_held`](Self::deliver_held) for many messages at once:
    /// two syncs for the whole batch (files in `tmp/`, then the renames)
    /// instead of two fsyncs per file. `fresh`: every message was committed
    /// by this process and never tried (no need to look for an earlier
    /// copy in `cur/`). One outcome per hold, in order.
    pub fn deliver_batch(&self, holds: Vec<Hold>, fresh: bool) -> Vec<io::Result<LocalOutcome>> {
        struct Work {
            env: Envelope,
            outcome: LocalOutcome,
            /// Which recipients were open when the envelope was loaded.
            open_before: Vec<bool>,
            /// (recipient index, tmp, target) written to tmp/.
            written: Vec<(usize, PathBuf, PathBuf)>,
        }
        let mut works: Vec<io::Result<Work>> = Vec::with_capacity(holds.len());
        let mut any_written = false;
        for hold in &holds {
            let id = hold.id();
            let env = match self.store.load(id) {
                Ok(env) => env,
                Err(e) => {
                    works.push(Err(e));
                    continue;
                }
            };
            let mut w = Work {
                open_before: env.recipients.iter().map(|r| r.status.is_open()).collect(),
                env,
                outcome: LocalOutcome::default(),
                written: Vec::new(),
            };
            let mut body: Option<Vec<u8>> = None;
            let expired = unix_now().saturating_sub(w.env.arrival) > self.max_age.as_secs();
            for i in 0..w.env.recipients.len() {
                let r = &w.env.recipients[i];
                if !r.local || !r.status.is_open() {
                    continue;
                }
                let (local, domain) = mailbox_names(&r.address);
                if !self.mailboxes.has_mailbox(&local, &domain) {
                    w.outcome.failed += 1;
                    w.env.recipients[i].status = RcptStatus::Failed(Diagnosis::local(
                        status(5, 1, 1),
                        "mailbox no longer exists",
                        None,
                    ));
                    continue;
                }
                if body.is_none() {
                    match self.store.body(id) {
                        Ok(b) => body = Some(b),
                        Err(e) => {
                            let status = failed(&mut w.outcome, id, &r.address, &e, expired);
                            w.env.recipients[i].status = status;
                            continue;
                        }
                    }
                }
                let body = body.as_deref().unwrap_or_default();
                match self.maildirs.prepare(&w.env, i, body, !fresh) {
                    Ok(Prepared::Present(path)) => {
                        w.outcome.delivered += 1;
                        w.env.recipients[i].status = delivered(id, &r.address, &path);
                    }
                    Ok(Prepared::Written { tmp, target }) => {
                        any_written = true;
                        w.written.push((i, tmp, target));
                    }
                    Err(e) => {
                        let status = failed(&mut w.outcome, id, &r.address, &e, expired);
                        w.env.recipients[i].status = status;
                    }
                }
            }
            works.push(Ok(w));
        }
        if any_written {
            // Phase 1: the new files' contents; phase 2: their names.
            let written = || works.iter().flatten().flat_map(|w| w.written.iter());
            let synced = self
                .sync(written().map(|(_, tmp, _)| tmp.as_path()))
                .and_then(|()| {
                    for (_, tmp, target) in written() {
                        fs::rename(tmp, target)?;
                    }
                    self.sync(written().filter_map(|(_, _, target)| target.parent()))
                });
            for (w, hold) in works.iter_mut().zip(&holds) {
                let Ok(w) = w else { continue };
                let expired = unix_now().saturating_sub(w.env.arrival) > self.max_age.as_secs();
                for (i, tmp, target) in std::mem::take(&mut w.written) {
                    let address = w.env.recipients[i].address.clone();
                    w.env.recipients[i].status = match &synced {
                        Ok(()) => {
                            w.outcome.delivered += 1;
                            delivered(hold.id(), &address, &target)
                        }
                        Err(e) => {
                            let _ = fs::remove_file(&tmp);
                            failed(&mut w.outcome, hold.id(), &address, e, expired)
                        }
                    };
                }
            }
        }
        let results = works
            .into_iter()
            .zip(&holds)
            .map(|(w, hold)| {
                let mut w = w?;
                // A recipient given up here is reported to the sender before
                // the envelope records it, so a crash in between repeats the
                // report rather than losing it (as the outbound runner does).
                self.report_failures(hold.id(), &w.env, &w.open_before)?;
                if w.env.is_finished() {
                    self.store.remove_unsynced(hold.id())?;
                    w.outcome.removed = true;
                } else if w.outcome != LocalOutcome::default() {
                    self.store.update(hold.id(), &w.env)?;
                }
                Ok(w.outcome)
            })
            .collect();
        drop(holds);
        results
    }

    /// Queues an RFC 3464 failure report for the recipients of `env` that
    /// were open (`open_before`) and are now `Failed`: the mailbox was
    /// removed, or local delivery kept failing until the queue's maximum
    /// age. Nothing is queued for a null sender or when `NOTIFY` excludes
    /// failures (see [`BounceSink`]).
    fn report_failures(
        &self,
        id: &QueueId,
        env: &Envelope,
        open_before: &[bool],
    ) -> io::Result<()> {
        let failed: Vec<(usize, Diagnosis)> = env
            .recipients
            .iter()
            .enumerate()
            .filter(|(i, _)| open_before.get(*i).copied().unwrap_or(false))
            .filter_map(|(i, r)| match &r.status {
                RcptStatus::Failed(d) => Some((i, d.clone())),
                _ => None,
            })
            .collect();
        if failed.is_empty() {
            return Ok(());
        }
        let original = self.store.body(id)?;
        let request = BounceRequest::new(env, &original, DsnAction::Failed, &failed, unix_now())
            .reason("Local delivery to the mailbox failed for good.");
        if let Some(dsn) = self.bounces.bounce(&request)? {
            tracing::info!(id = %id, dsn = %dsn, recipients = failed.len(), "local delivery failed; DSN queued");
        }
        Ok(())
    }

    /// Makes `paths` (the batch's files, then their `new/` directories,
    /// each once) durable, fsyncing several at a time so the journal
    /// commits them together ([`sync_paths`]).
    fn sync<'a>(&self, paths: impl Iterator<Item = &'a Path>) -> io::Result<()> {
        sync_paths(paths)
    }

    /// One sweep: every unheld message with an open local recipient.
    pub fn sweep_once(&self) -> io::Result<usize> {
        let mut holds = Vec::new();
        for id in self.store.list()? {
            let Ok(env) = self.store.load(&id) else {
                continue;
            };
            if !env.has_open_local() {
                continue;
            }
            if let Some(hold) = self.store.hold(&id) {
                holds.push(hold);
            }
        }
        let mut n = 0;
        while !holds.is_empty() {
            let rest = holds.split_off(holds.len().min(256));
            let ids: Vec<QueueId> = holds.iter().map(|h| h.id().clone()).collect();
            for (id, r) in ids.iter().zip(self.deliver_batch(holds, false)) {
                match r {
                    Ok(_) => n += 1,
                    Err(e) => tracing::warn!(id = %id, error = %e, "local sweep"),
                }
            }
            holds = rest;
        }
        Ok(n)
    }

    /// Starts the delivery thread for freshly committed messages (see
    /// [`DeliveryQueue`]).
    pub fn start_queue(&self) -> DeliveryQueue {
        let (tx, rx) = mpsc::channel::<Hold>();
        let this = self.clone();
        let spawned = std::thread::Builder::new()
            .name("local-delivery".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < 256 {
                        match rx.try_recv() {
                            Ok(h) => batch.push(h),
                            Err(_) => break,
                        }
                    }
                    let ids: Vec<QueueId> = batch.iter().map(|h| h.id().clone()).collect();
                    for (id, r) in ids.iter().zip(this.deliver_batch(batch, true)) {
                        if let Err(e) = r {
                            tracing::warn!(id = %id, error = %e, "local delivery after commit failed; the sweep retries");
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the local delivery thread; the sweep delivers");
        }
        DeliveryQueue { tx }
    }
}

/// Hands freshly committed, held messages to the local delivery thread,
/// which delivers whatever has queued up as one batch. A message whose
/// delivery is interrupted (shutdown, crash) stays in the queue and the
/// sweep delivers it. The thread ends when every clone is dropped.
#[derive(Debug, Clone)]
pub struct DeliveryQueue {
    tx: mpsc::Sender<Hold>,
}

impl DeliveryQueue {
    /// Queues a held message; it is released once delivered.
    pub fn push(&self, hold: Hold) {
        // If the thread is gone the hold is dropped: the sweep delivers.
        let _ = self.tx.send(hold);
    }
}

/// The local part and the host of `address` as the mailbox lookup and
/// the Maildir path name them (`"a b"@x` keeps its quotes, an address
/// literal its brackets).
fn mailbox_names(address: &Mailbox<'_>) -> (String, String) {
    (address.local_part().to_string(), address.host().to_string())
}

fn delivered(id: &QueueId, rcpt: &Mailbox<'_>, path: &Path) -> RcptStatus {
    tracing::info!(id = %id, rcpt = %rcpt, file = %path.display(), "delivered to maildir");
    // No server replied: what local delivery did is our own account.
    RcptStatus::Delivered(Diagnosis::local(
        status(2, 0, 0),
        &format!("maildir {}", path.display()),
        None,
    ))
}

fn failed(
    outcome: &mut LocalOutcome,
    id: &QueueId,
    rcpt: &Mailbox<'_>,
    e: &io::Error,
    expired: bool,
) -> RcptStatus {
    if expired {
        outcome.failed += 1;
        RcptStatus::Failed(Diagnosis::local(
            status(5, 3, 0),
            &format!("local delivery failed until expiry: {e}"),
            None,
        ))
    } else {
        outcome.deferred += 1;
        tracing::warn!(id = %id, rcpt = %rcpt, error = %e, "local delivery deferred");
        RcptStatus::Deferred(Diagnosis::local(
            status(4, 3, 0),
            &format!("local delivery failed: {e}"),
            None,
        ))
    }
}

/// Runs [`LocalDelivery::sweep_once`] now and then every `interval` until
/// `shutdown` turns true.
pub async fn sweep(
    local: LocalDelivery,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let l = local.clone();
        match tokio::task::spawn_blocking(move || l.sweep_once()).await {
            Ok(Ok(n)) if n > 0 => tracing::debug!(messages = n, "local sweep"),
            Ok(Err(e)) => tracing::warn!(error = %e, "local sweep failed"),
            _ => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{mailbox, sender as test_sender};
    use crate::{LogStore, RecipientState, SpoolBounces};
    use postern_proto::ReversePath;

    /// Every mailbox exists but `gone@...`.
    #[derive(Debug)]
    struct AllBut;

    impl MailboxDirectory for AllBut {
        fn has_mailbox(&self, local: &str, _: &str) -> bool {
            local != "gone"
        }
    }

    fn local_delivery(spool: &Arc<LogStore>, dir: &Path) -> LocalDelivery {
        let bounces = SpoolBounces::new(spool.clone(), "host").local_domains(["localhost"]);
        LocalDelivery::new(
            spool.clone(),
            Maildirs::new(dir.join("mail"), "host"),
            Arc::new(AllBut),
            Arc::new(bounces),
        )
    }

    #[test]
    fn deliver_once_with_lf_and_headers() {
        let dir = std::env::temp_dir().join(format!("postern-maildir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let spool = LogStore::open(&dir.join("queue")).unwrap();
        let id = spool.new_id();
        let mut w = spool.writer(&id).unwrap();
        w.write(b"Received: x\r\nSubject: hi\r\n\r\nbody\r\n")
            .unwrap();
        let mut env = Envelope::new(id.clone(), test_sender("a@remote.example"));
        env.recipients.push(RecipientState::pending(
            mailbox("postmaster@localhost"),
            true,
        ));
        env.recipients
            .push(RecipientState::pending(mailbox("x@remote.example"), false));
        let hold = w.commit(&env).wait().unwrap();
        let ld = local_delivery(&spool, &dir);
        let out = ld.deliver_held(hold).unwrap();
        assert_eq!(out.delivered, 1);
        assert!(!out.removed, "the remote recipient is still open");
        let newdir = dir.join("mail/localhost/postmaster/new");
        let files: Vec<_> = fs::read_dir(&newdir).unwrap().collect();
        assert_eq!(files.len(), 1);
        let text = fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        assert_eq!(
            text,
            "Return-Path: <a@remote.example>\nDelivered-To: postmaster@localhost\nReceived: x\nSubject: hi\n\nbody\n"
        );
        // Redelivery (crash before the envelope update) finds the file.
        let env = spool.load(&id).unwrap();
        ld.maildirs
            .deliver(&env, 0, &spool.body(&id).unwrap())
            .unwrap();
        assert_eq!(fs::read_dir(&newdir).unwrap().count(), 1);
        assert_eq!(spool.list().unwrap(), vec![id.clone()]);
        assert!(matches!(
            spool.load(&id).unwrap().recipients[0].status,
            RcptStatus::Delivered { .. }
        ));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_vanished_mailbox_bounces_to_the_sender_and_null_senders_get_nothing() {
        let dir = std::env::temp_dir().join(format!("postern-maildir-gone-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let spool = LogStore::open(&dir.join("queue")).unwrap();
        let ld = local_delivery(&spool, &dir);
        let mut ids = Vec::new();
        for sender in ["postmaster@localhost", ""] {
            let id = spool.new_id();
            let mut w = spool.writer(&id).unwrap();
            w.write(b"Subject: to a user who left\r\n\r\nbody\r\n")
                .unwrap();
            let mut env = Envelope::new(id.clone(), test_sender(sender));
            // "gone" has no mailbox (it was accepted, then the user removed).
            env.recipients
                .push(RecipientState::pending(mailbox("gone@localhost"), true));
            let hold = w.commit(&env).wait().unwrap();
            let out = ld.deliver_held(hold).unwrap();
            assert_eq!(out.failed, 1);
            assert!(out.removed, "nothing is left open");
            ids.push(id);
        }
        // Exactly one report: to postmaster for the first message, none
        // for the null sender. The report itself waits for local delivery.
        let queued: Vec<QueueId> = spool.list().unwrap();
        assert_eq!(queued.len(), 1, "{queued:?}");
        let dsn = spool.load(&queued[0]).unwrap();
        assert_eq!(
            dsn.sender,
            ReversePath::Null,
            "reports go out with the null sender"
        );
        assert_eq!(dsn.recipients.len(), 1);
        assert_eq!(dsn.recipients[0].address, mailbox("postmaster@localhost"));
        let body = String::from_utf8(spool.body(&queued[0]).unwrap()).unwrap();
        assert!(body.contains("report-type=delivery-status"), "{body}");
        assert!(
            body.contains("Final-Recipient: rfc822; gone@localhost"),
            "{body}"
        );
        assert!(body.contains("Action: failed"), "{body}");
        assert!(body.contains("Status: 5.1.1"), "{body}");
        let _ = fs::remove_dir_all(&dir);
    }

    /// A store that checks, whenever local delivery records something,
    /// that every recipient it marks delivered has its file in `new/`
    /// (renamed there only after the file was fsynced) and nothing is
    /// left in `tmp/`.
    #[derive(Debug)]
    struct Watch {
        inner: Arc<LogStore>,
        mail: PathBuf,
        checked: std::sync::atomic::AtomicUsize,
    }

    impl Watch {
        fn check(&self, id: &QueueId, env: &Envelope) {
            let box_dir = self.mail.join("localhost/postmaster");
            let names: Vec<String> = fs::read_dir(box_dir.join("new"))
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            for (i, r) in env.recipients.iter().enumerate() {
                if r.local && matches!(r.status, RcptStatus::Delivered { .. }) {
                    let want = format!("Q{id}R{i}.");
                    assert!(
                        names.iter().any(|n| n.contains(&want)),
                        "{want} not in new/: {names:?}"
                    );
                    self.checked
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            assert_eq!(fs::read_dir(box_dir.join("tmp")).unwrap().count(), 0);
        }
    }

    impl Store for Watch {
        fn new_id(&self) -> QueueId {
            self.inner.new_id()
        }
        fn writer(&self, id: &QueueId) -> io::Result<crate::MessageWriter> {
            self.inner.writer(id)
        }
        fn list(&self) -> io::Result<Vec<QueueId>> {
            self.inner.list()
        }
        fn list_all(&self) -> io::Result<Vec<QueueId>> {
            self.inner.list_all()
        }
        fn load(&self, id: &QueueId) -> io::Result<Envelope> {
            self.inner.load(id)
        }
        fn body(&self, id: &QueueId) -> io::Result<Vec<u8>> {
            self.inner.body(id)
        }
        fn update(&self, id: &QueueId, env: &Envelope) -> io::Result<()> {
            self.check(id, env);
            self.inner.update(id, env)
        }
        fn remove(&self, id: &QueueId) -> io::Result<()> {
            self.inner.remove(id)
        }
        fn remove_unsynced(&self, id: &QueueId) -> io::Result<()> {
            // Finished: every local recipient was delivered or failed.
            let env = self.inner.load(id)?;
            let mut done = env.clone();
            for r in done
                .recipients
                .iter_mut()
                .filter(|r| r.local && r.status.is_open())
            {
                r.status =
                    RcptStatus::Delivered(Diagnosis::local(status(2, 0, 0), "delivered", None));
            }
            self.check(id, &done);
            self.inner.remove_unsynced(id)
        }
        fn hold(&self, id: &QueueId) -> Option<Hold> {
            self.inner.hold(id)
        }
    }

    #[test]
    fn files_are_synced_into_new_before_recipients_are_marked_delivered() {
        let dir =
            std::env::temp_dir().join(format!("postern-maildir-order-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let inner = LogStore::open(&dir.join("queue")).unwrap();
        let store = Arc::new(Watch {
            inner: inner.clone(),
            mail: dir.join("mail"),
            checked: Default::default(),
        });
        let bounces = SpoolBounces::new(store.clone(), "host");
        let ld = LocalDelivery::new(
            store.clone(),
            Maildirs::new(dir.join("mail"), "host"),
            Arc::new(AllBut),
            Arc::new(bounces),
        );
        let mut holds = Vec::new();
        for i in 0..20 {
            let id = inner.new_id();
            let mut w = inner.writer(&id).unwrap();
            w.write(format!("Subject: {i}\r\n\r\nbody\r\n").as_bytes())
                .unwrap();
            let mut env = Envelope::new(id.clone(), test_sender("a@remote.example"));
            env.recipients.push(RecipientState::pending(
                mailbox("postmaster@localhost"),
                true,
            ));
            if i % 2 == 0 {
                // Stays queued: the update path.
                env.recipients
                    .push(RecipientState::pending(mailbox("x@remote.example"), false));
            }
            holds.push(w.commit(&env).wait().unwrap());
        }
        let outcomes = ld.deliver_batch(holds, true);
        assert!(
            outcomes
                .iter()
                .all(|o| o.as_ref().is_ok_and(|o| o.delivered == 1))
        );
        assert_eq!(store.checked.load(std::sync::atomic::Ordering::Relaxed), 20);
        assert_eq!(inner.list().unwrap().len(), 10);
        for id in inner.list().unwrap() {
            assert!(matches!(
                inner.load(&id).unwrap().recipients[0].status,
                RcptStatus::Delivered { .. }
            ));
        }
        drop((ld, store, inner));
        let _ = fs::remove_dir_all(&dir);
    }
}
