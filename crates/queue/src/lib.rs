//! `postern-queue`: a durable mail queue and what works on it.
//!
//! A message is committed to a [`Store`] (its body and an [`Envelope`],
//! made durable together) before the server answers `250`. The default
//! store, [`LogStore`], appends checksummed records to preallocated
//! segment files ([`log`]) and shares one `fdatasync` among every session
//! committing at that moment. From there, [`maildir::LocalDelivery`]
//! delivers local recipients and the [`runner::Runner`] relays the others
//! along the routes a [`runner::Router`] picks, retrying by the
//! [`RetryPolicy`] and reporting failures (RFC 3464, [`report`]) to a
//! [`BounceSink`]. The queue knows nothing of rules or configuration
//! files: the router is where an MTA plugs its policy in.
//!
//! | item | holds |
//! |---|---|
//! | [`Store`] | what the server, local delivery, the runner and tools need from a store: writers and commits, envelopes, bodies, holds ([`Hold`]), removal |
//! | [`LogStore`] | the default store: a [`log`] in the queue directory, the directory lock ([`QueueLocked`]), import of the file-per-message spool of earlier versions |
//! | `pg` (feature `postgres`) | `PgStore`: the queue in a PostgreSQL database shared by several nodes, with delivery leases |
//! | [`log`] | the log-structured engine: records, segments, group commit, recovery, compaction |
//! | [`Envelope`] | the envelope kept with each message, in proto's types: sender, parameters, recipients and their state |
//! | [`RetryPolicy`] | backoff and expiry |
//! | [`runner`] | the delivery runner, generic over a [`Router`](runner::Router) and a [`BounceSink`] |
//! | [`BounceSink`], [`SpoolBounces`] | where delivery status reports go |
//! | [`maildir`] | local delivery into Maildir, the local half of the queue |
//! | [`report`] | RFC 3464 delivery status notifications and the per-recipient [`Diagnosis`](report::Diagnosis) |
//! | [`tlsrpt`] | TLS-RPT (RFC 8460): the outbound TLS results per policy domain and the daily reports, mailed through the queue or POSTed |
//! | [`dkim`] | DKIM signing (RFC 6376) of the mail the queue writes itself: the mailed TLS-RPT reports |
//!
//! # Example
//!
//! Commit a message, find it, record a delivery, remove it:
//!
//! ```
//! use postern_proto::{Mailbox, Reply, ReplyCode, ReversePath};
//! use postern_queue::report::Diagnosis;
//! use postern_queue::{Envelope, LogStore, RcptStatus, RecipientState, Store};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("postern-queue-doc-{}", std::process::id()));
//! let store = LogStore::open(&dir)?;
//! let id = store.new_id();
//! let mut body = store.writer(&id)?;
//! body.write(b"Subject: hello\r\n\r\nHi.\r\n")?;
//! // Addresses as the session parsed them at MAIL and RCPT.
//! let alice = Mailbox::parse("alice@example.org")?.into_owned();
//! let bob = Mailbox::parse("bob@example.net")?.into_owned();
//! let mut env = Envelope::new(id.clone(), ReversePath::Mailbox(alice));
//! env.recipients.push(RecipientState::pending(bob, false));
//! // Durable once the commit resolves (`.await` it in async code): only
//! // then may the server answer 250. The message stays held (hidden from
//! // `list`) until the hold is dropped.
//! let hold = body.commit(&env).wait()?;
//! assert!(store.list()?.is_empty());
//! drop(hold);
//! assert_eq!(store.list()?, [id.clone()]);
//!
//! let mut env = store.load(&id)?;
//! // The next hop's reply, as the relay parsed it.
//! let ok = Reply::fixed(ReplyCode::OK, None, "ok");
//! env.recipients[0].status = RcptStatus::Delivered(Diagnosis::from_reply(ok, None));
//! store.update(&id, &env)?;
//! if store.load(&id)?.is_finished() {
//!     store.remove(&id)?;
//! }
//! assert!(store.list_all()?.is_empty());
//! # drop(store);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! A second process opening the same directory gets [`QueueLocked`] (as the
//! source of an `io::Error`), naming the directory and the holder's pid.

// The runner builds TLS configurations with a provider of its own when the
// embedder brings none; say so at build time rather than with a link error.
#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!(
    "postern-queue needs a crypto provider: enable feature `aws-lc-rs` (default) or `ring`"
);

pub mod admin;
mod bounce;
mod compat;
#[cfg(unix)]
pub mod control;
pub mod dkim;
mod envelope;
mod id;
mod legacy;
mod lock;
pub mod log;
mod logstore;
pub mod maildir;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod report;
mod retry;
pub mod runner;
mod schedule;
mod seal;
mod store;
mod sync;
pub mod tlsrpt;
pub mod trace;

pub use bounce::{BounceRequest, BounceSink, SpoolBounces, wants_report};
pub use envelope::{Envelope, MessageParams, RcptStatus, RecipientState, unix_now};
pub use id::{BadQueueId, QueueId};
pub use lock::QueueLocked;
pub use logstore::{BODY_CHUNK, LogStore};
pub use retry::RetryPolicy;
pub use schedule::QueueSchedule;
pub use store::{BodySink, Commit, Hold, Holds, MessageWriter, Store, fill_chunks};
pub use sync::{sync_dir, sync_paths, write_atomically};

/// Addresses for the unit tests, from text known to parse.
#[cfg(test)]
pub(crate) mod test_support {
    use postern_proto::{Mailbox, ReversePath};

    /// `local@domain` as a mailbox.
    pub(crate) fn mailbox(text: &str) -> Mailbox<'static> {
        Mailbox::parse(text).expect("a test address").into_owned()
    }

    /// `""` as the null sender, anything else as a sender mailbox.
    pub(crate) fn sender(text: &str) -> ReversePath<'static> {
        if text.is_empty() {
            ReversePath::Null
        } else {
            ReversePath::Mailbox(mailbox(text))
        }
    }
}
