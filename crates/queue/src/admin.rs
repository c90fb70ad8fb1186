//! Operators' work on a live queue: list, show, retry, hold, release and
//! remove messages, safely beside the delivery runner.
//!
//! [`QueueAdmin`] works through the [`Store`]'s holds: before it changes a
//! message it holds it, so it never rewrites an envelope the runner is
//! writing too (a delivery in progress finishes first, up to
//! [`QueueAdmin::with_wait`]). Holds live in the process that owns the
//! store, so the admin runs inside the server; tools reach it through the
//! [`control`](crate::control) socket.
//!
//! ```
//! use std::sync::Arc;
//! use postern_proto::ReversePath;
//! use postern_queue::admin::{EntryState, QueueAdmin};
//! use postern_queue::{Envelope, LogStore, Store};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("admin-doc-{}", std::process::id()));
//! let store: Arc<dyn Store> = LogStore::open(&dir)?;
//! let id = store.new_id();
//! let mut w = store.writer(&id)?;
//! w.write(b"Subject: hi\r\n\r\nhello\r\n")?;
//! drop(w.commit(&Envelope::new(id.clone(), ReversePath::Null)).wait()?);
//!
//! let admin = QueueAdmin::new(store);
//! admin.hold(&id)?;
//! let entry = admin.show(&id)?;
//! assert_eq!(entry.state, EntryState::Hold);
//! assert_eq!(entry.size, 22);
//! admin.remove(&id)?;
//! assert!(admin.list()?.is_empty());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

use std::fmt::Write as _;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, RcptStatus};
use crate::id::QueueId;
use crate::runner::RunnerHandle;
use crate::store::{Hold, Store};

/// Where a message stands, as `mailq` marks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EntryState {
    /// Waiting for its next attempt (or due now).
    Queued,
    /// Being worked on: delivery in progress (`*` in the listing).
    Active,
    /// Put on hold by an operator (`!` in the listing).
    Hold,
}

/// One message as the tools show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueueEntry {
    /// Where it stands.
    pub state: EntryState,
    /// The body's length in octets.
    pub size: u64,
    /// The envelope: sender, parameters, each recipient's state and last
    /// diagnosis, attempts and the next attempt.
    pub envelope: Envelope,
}

/// Why an operation on the queue failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No message with this id is in the queue.
    #[error("no message {0} in the queue")]
    UnknownId(QueueId),
    /// A delivery of the message stayed in progress for the whole wait.
    #[error("message {id} is being delivered; try again (waited {waited:?})")]
    Busy {
        /// The message.
        id: QueueId,
        /// How long we waited for the delivery to finish.
        waited: Duration,
    },
    /// The store failed.
    #[error("the queue store: {0}")]
    Store(#[source] io::Error),
}

impl AdminError {
    fn from_io(id: &QueueId, e: io::Error) -> AdminError {
        if e.kind() == io::ErrorKind::NotFound {
            AdminError::UnknownId(id.clone())
        } else {
            AdminError::Store(e)
        }
    }
}

/// Operators' operations on a store. See the module documentation.
#[derive(Debug, Clone)]
pub struct QueueAdmin {
    store: Arc<dyn Store>,
    runner: Option<RunnerHandle>,
    wait: Duration,
}

impl QueueAdmin {
    /// Operations on `store`, waiting up to 10 s for a delivery in progress.
    pub fn new(store: Arc<dyn Store>) -> QueueAdmin {
        QueueAdmin {
            store,
            runner: None,
            wait: Duration::from_secs(10),
        }
    }

    /// Tells `runner` of retries and releases, so they start at once.
    pub fn with_runner(mut self, runner: RunnerHandle) -> QueueAdmin {
        self.runner = Some(runner);
        self
    }

    /// How long a change waits for a delivery in progress to finish.
    pub fn with_wait(mut self, wait: Duration) -> QueueAdmin {
        self.wait = wait;
        self
    }

    /// Every message, oldest first. Messages removed while listing are
    /// left out; one whose envelope cannot be read is an error.
    pub fn list(&self) -> Result<Vec<QueueEntry>, AdminError> {
        let mut out = Vec::new();
        for id in self.store.list_all().map_err(AdminError::Store)? {
            match self.show(&id) {
                Ok(e) => out.push(e),
                Err(AdminError::UnknownId(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// One message.
    pub fn show(&self, id: &QueueId) -> Result<QueueEntry, AdminError> {
        let envelope = self
            .store
            .load(id)
            .map_err(|e| AdminError::from_io(id, e))?;
        let size = self
            .store
            .body_size(id)
            .map_err(|e| AdminError::from_io(id, e))?;
        let state = if envelope.on_hold {
            EntryState::Hold
        } else if self.store.list().map_err(AdminError::Store)?.contains(id) {
            EntryState::Queued
        } else {
            EntryState::Active
        };
        Ok(QueueEntry {
            state,
            size,
            envelope,
        })
    }

    /// Makes a message due now (its open recipients are tried at the next
    /// pass, which starts at once). Returns whether it had open recipients.
    pub fn retry(&self, id: &QueueId) -> Result<bool, AdminError> {
        let changed = self.change(id, |env| {
            let open = !env.is_finished();
            if open {
                env.next_attempt = 0;
            }
            open
        })?;
        self.wake();
        Ok(changed)
    }

    /// [`retry`](Self::retry) for every message not on hold; returns how
    /// many had open recipients.
    pub fn retry_all(&self) -> Result<usize, AdminError> {
        let mut n = 0;
        for id in self.store.list_all().map_err(AdminError::Store)? {
            match self.change(&id, |env| {
                let open = !env.is_finished() && !env.on_hold;
                if open {
                    env.next_attempt = 0;
                }
                open
            }) {
                Ok(true) => n += 1,
                Ok(false) | Err(AdminError::UnknownId(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.wake();
        Ok(n)
    }

    /// Puts a message on hold: no delivery attempt until it is released.
    /// Returns whether it was not on hold before.
    pub fn hold(&self, id: &QueueId) -> Result<bool, AdminError> {
        self.change(id, |env| !std::mem::replace(&mut env.on_hold, true))
    }

    /// Releases a held message and makes it due now. Returns whether it
    /// was on hold.
    pub fn release(&self, id: &QueueId) -> Result<bool, AdminError> {
        let changed = self.change(id, |env| {
            let was = std::mem::replace(&mut env.on_hold, false);
            if was {
                env.next_attempt = 0;
            }
            was
        })?;
        self.wake();
        Ok(changed)
    }

    /// Removes a message from the queue for good (no report is sent, as
    /// with `postsuper -d`).
    pub fn remove(&self, id: &QueueId) -> Result<(), AdminError> {
        let _hold = self.hold_message(id)?;
        // Not there (finished meanwhile) is an unknown id to the operator.
        self.store
            .load(id)
            .map_err(|e| AdminError::from_io(id, e))?;
        self.store.remove(id).map_err(AdminError::Store)?;
        tracing::info!(queue_id = %id, "queue: removed by an operator");
        Ok(())
    }

    /// Holds `id`, changes its envelope with `f` and writes it if `f`
    /// says it changed.
    fn change(
        &self,
        id: &QueueId,
        f: impl FnOnce(&mut Envelope) -> bool,
    ) -> Result<bool, AdminError> {
        let _hold = self.hold_message(id)?;
        let mut env = self
            .store
            .load(id)
            .map_err(|e| AdminError::from_io(id, e))?;
        let changed = f(&mut env);
        if changed {
            self.store
                .update(id, &env)
                .map_err(|e| AdminError::from_io(id, e))?;
            if let Some(r) = &self.runner {
                r.reread(id);
            }
            tracing::info!(queue_id = %id, on_hold = env.on_hold, next_attempt = env.next_attempt, "queue: changed by an operator");
        }
        Ok(changed)
    }

    /// Waits (polling: holds have no waiters) for whoever works on `id` to
    /// let go, up to the configured wait.
    fn hold_message(&self, id: &QueueId) -> Result<Hold, AdminError> {
        let start = Instant::now();
        loop {
            if let Some(h) = self.store.hold(id) {
                return Ok(h);
            }
            if !self
                .store
                .list_all()
                .map_err(AdminError::Store)?
                .contains(id)
            {
                return Err(AdminError::UnknownId(id.clone()));
            }
            if start.elapsed() >= self.wait {
                return Err(AdminError::Busy {
                    id: id.clone(),
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wake(&self) {
        if let Some(r) = &self.runner {
            r.wake();
        }
    }
}

/// The listing as `mailq` prints it: one block per message (id with `*`
/// for active or `!` for held, size, arrival, sender), then each recipient
/// still to do, a deferred one after its last reason in parentheses; a
/// total line at the end.
pub fn format_listing(entries: &[QueueEntry]) -> String {
    if entries.is_empty() {
        return "Mail queue is empty\n".to_owned();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<27} {:>8} {:<24} Sender/Recipient",
        "Queue ID", "Size", "Arrival Time (UTC)"
    );
    let mut total = 0u64;
    for e in entries {
        total += e.size;
        let mark = match e.state {
            EntryState::Active => "*",
            EntryState::Hold => "!",
            EntryState::Queued => " ",
        };
        let env = &e.envelope;
        let _ = writeln!(
            out,
            "{:<27} {:>8} {:<24} {}",
            format!("{}{mark}", env.id),
            e.size,
            crate::report::rfc5322_date(env.arrival)
                .trim_end_matches(" +0000")
                .to_owned(),
            env.sender
        );
        for r in env.recipients.iter().filter(|r| r.status.is_open()) {
            if let RcptStatus::Deferred(d) = &r.status {
                let _ = writeln!(out, "{:>62}({d})", "");
            }
            let _ = writeln!(out, "{:>62}{}", "", r.address);
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "-- {} Kbytes in {} Request{}.",
        total.div_ceil(1024),
        entries.len(),
        if entries.len() == 1 { "" } else { "s" }
    );
    out
}

/// One message in full, for `queue show`: the envelope, each recipient's
/// state and last diagnosis, and the next attempt.
pub fn format_entry(e: &QueueEntry) -> String {
    let env = &e.envelope;
    let mut out = String::new();
    let date = crate::report::rfc5322_date;
    let _ = writeln!(out, "id: {}", env.id);
    let _ = writeln!(out, "state: {:?}", e.state);
    let _ = writeln!(out, "size: {}", e.size);
    let _ = writeln!(out, "arrival: {}", date(env.arrival));
    let _ = writeln!(out, "sender: {}", env.sender);
    for (name, value) in [
        ("listener", env.listener.as_deref()),
        ("peer", env.peer.as_deref()),
        ("helo", env.helo.as_deref()),
        ("auth user", env.auth_user.as_deref()),
        ("tls cipher", env.tls_cipher.as_deref()),
    ] {
        if let Some(v) = value {
            let _ = writeln!(out, "{name}: {v}");
        }
    }
    if let Some(v) = env.tls_version {
        let _ = writeln!(out, "tls: {v}");
    }
    let _ = writeln!(out, "attempts: {}", env.attempts);
    if env.is_finished() {
        let _ = writeln!(out, "next attempt: none (finished)");
    } else if env.on_hold {
        let _ = writeln!(out, "next attempt: none (on hold)");
    } else if env.next_attempt == 0 {
        let _ = writeln!(out, "next attempt: now");
    } else {
        let _ = writeln!(out, "next attempt: {}", date(env.next_attempt));
    }
    for r in &env.recipients {
        let state = match &r.status {
            RcptStatus::Pending => "pending",
            RcptStatus::Delivered(_) => "delivered",
            RcptStatus::Failed(_) => "failed",
            RcptStatus::Deferred(_) => "deferred",
        };
        let local = if r.local { " (local)" } else { "" };
        let _ = writeln!(out, "recipient: {}{local}: {state}", r.address);
        if let Some(d) = r.status.diagnosis() {
            let _ = writeln!(out, "  last: {d}");
        }
    }
    out
}
