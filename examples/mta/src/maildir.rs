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
//! Who delivers: the inbound server right after it committed a message
//! (while it holds the queue id, see [`crate::spool`]), and [`sweep`] for
//! whatever is left (a restart, a deferred local delivery, a DSN queued by
//! the outbound runner for a local sender).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::spool::{Envelope, Hold, QueueId, RcptStatus, Spool, sync_dir, unix_now};
use crate::users::Users;

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

    /// Delivers `body` (the spooled message) to recipient `index` of `env`.
    /// Returns the final path. Idempotent per (message, recipient).
    pub fn deliver(&self, env: &Envelope, index: usize, body: &Path) -> io::Result<PathBuf> {
        let rcpt = env
            .recipients
            .get(index)
            .ok_or_else(|| io::Error::other("no such recipient"))?;
        let (local, domain) = rcpt
            .address
            .rsplit_once('@')
            .ok_or_else(|| io::Error::other("recipient without a domain"))?;
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
        if target.exists() || delivered_to_cur(&dir.join("cur"), &name)? {
            return Ok(target);
        }
        let tmp = dir.join("tmp").join(&name);
        {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            let mut out = BufWriter::with_capacity(64 * 1024, file);
            let sender = env.sender.replace(['\r', '\n', '<', '>'], "");
            writeln!(out, "Return-Path: <{sender}>")?;
            writeln!(
                out,
                "Delivered-To: {}",
                rcpt.address.replace(['\r', '\n'], "")
            )?;
            let mut input = BufReader::with_capacity(64 * 1024, File::open(body)?);
            let mut line = Vec::with_capacity(1024);
            loop {
                line.clear();
                if input.read_until(b'\n', &mut line)? == 0 {
                    break;
                }
                if line.ends_with(b"\r\n") {
                    line.truncate(line.len() - 2);
                    line.push(b'\n');
                }
                out.write_all(&line)?;
            }
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &target)?;
        sync_dir(&dir.join("new"))?;
        Ok(target)
    }
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
    /// The queue.
    pub spool: Spool,
    /// The configuration.
    pub config: Arc<Config>,
    /// The users (mailbox directory).
    pub users: Arc<Users>,
    /// The Maildir root.
    pub maildirs: Maildirs,
}

/// What one local-delivery pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
    /// Delivers every open local recipient of the held message `hold`,
    /// updates the envelope, removes the message when nothing is left, then
    /// releases the hold (the outbound runner sees the message after that).
    /// Blocking: run it on a blocking thread.
    pub fn deliver_held(&self, hold: Hold) -> io::Result<LocalOutcome> {
        let id = hold.id().clone();
        let result = self.deliver_id(&id);
        drop(hold);
        result
    }

    fn deliver_id(&self, id: &QueueId) -> io::Result<LocalOutcome> {
        let mut env = self.spool.load(id)?;
        let mut outcome = LocalOutcome::default();
        if !env.has_open_local() {
            if env.is_finished() {
                self.spool.remove(id)?;
                outcome.removed = true;
            }
            return Ok(outcome);
        }
        let body = self.spool.body_path(id);
        let expired = unix_now().saturating_sub(env.arrival) > self.config.queue.max_age.as_secs();
        for i in 0..env.recipients.len() {
            let r = &env.recipients[i];
            if !r.local || !r.status.is_open() {
                continue;
            }
            let (local, domain) = r.address.rsplit_once('@').unwrap_or((&r.address, ""));
            let status = if !self.users.has_mailbox(&self.config, local, domain) {
                outcome.failed += 1;
                RcptStatus::Failed {
                    reply: "550 5.1.1 mailbox no longer exists".into(),
                }
            } else {
                match self.maildirs.deliver(&env, i, &body) {
                    Ok(path) => {
                        outcome.delivered += 1;
                        tracing::info!(id = %id, rcpt = %r.address, file = %path.display(), "delivered to maildir");
                        RcptStatus::Delivered {
                            reply: format!("250 2.0.0 maildir {}", path.display()),
                        }
                    }
                    Err(e) if expired => {
                        outcome.failed += 1;
                        RcptStatus::Failed {
                            reply: format!("550 5.3.0 local delivery failed until expiry: {e}"),
                        }
                    }
                    Err(e) => {
                        outcome.deferred += 1;
                        tracing::warn!(id = %id, rcpt = %r.address, error = %e, "local delivery deferred");
                        RcptStatus::Deferred {
                            reply: format!("451 4.3.0 local delivery failed: {e}"),
                        }
                    }
                }
            };
            env.recipients[i].status = status;
        }
        if env.is_finished() {
            self.spool.remove(id)?;
            outcome.removed = true;
        } else {
            self.spool.update(id, &env)?;
        }
        Ok(outcome)
    }

    /// One sweep: every unheld message with an open local recipient.
    pub fn sweep_once(&self) -> io::Result<usize> {
        let mut n = 0;
        for id in self.spool.list()? {
            let Ok(env) = self.spool.load(&id) else {
                continue;
            };
            if !env.has_open_local() {
                continue;
            }
            if let Some(hold) = self.spool.hold(&id) {
                match self.deliver_held(hold) {
                    Ok(_) => n += 1,
                    Err(e) => tracing::warn!(id = %id, error = %e, "local sweep"),
                }
            }
        }
        Ok(n)
    }
}

/// Runs [`LocalDelivery::sweep_once`] now and then every `interval` until
/// shutdown.
pub async fn sweep(local: LocalDelivery, interval: Duration, mut shutdown: crate::Shutdown) {
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
    use crate::spool::RecipientState;

    #[test]
    fn deliver_once_with_lf_and_headers() {
        let dir = std::env::temp_dir().join(format!("postern-maildir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let spool = Spool::open(&dir.join("queue")).unwrap();
        let id = spool.new_id();
        let mut w = spool.writer(&id).unwrap();
        w.write(b"Received: x\r\nSubject: hi\r\n\r\nbody\r\n")
            .unwrap();
        let mut env = Envelope::new(id.clone(), "a@remote.example");
        env.recipients
            .push(RecipientState::pending("postmaster@localhost", true));
        env.recipients
            .push(RecipientState::pending("x@remote.example", false));
        let hold = w.commit(&env).unwrap();
        let mut config = Config::embedded();
        config.set_data_dir(dir.clone());
        let config = Arc::new(config);
        let users = Arc::new(Users::open(&dir.join("users")));
        let ld = LocalDelivery {
            spool: spool.clone(),
            config: config.clone(),
            users,
            maildirs: Maildirs::new(config.mail_dir(), "host"),
        };
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
        ld.maildirs.deliver(&env, 0, &spool.body_path(&id)).unwrap();
        assert_eq!(fs::read_dir(&newdir).unwrap().count(), 1);
        assert_eq!(spool.list().unwrap(), vec![id.clone()]);
        assert!(matches!(
            spool.load(&id).unwrap().recipients[0].status,
            RcptStatus::Delivered { .. }
        ));
        let _ = fs::remove_dir_all(&dir);
    }
}
