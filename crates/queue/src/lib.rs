//! `postern-queue`: a durable mail queue and what works on it.
//!
//! | module | holds |
//! |---|---|
//! | [`Spool`] | the local store: one body file and one sealed envelope file per message, group-committed syncs, holds |
//! | [`Envelope`] | the envelope kept with each message: sender, parameters, recipients and their state |
//! | [`RetryPolicy`] | backoff and expiry |
//! | [`runner`] | the delivery runner, generic over a [`Router`](runner::Router) and a [`BounceSink`] |
//! | [`BounceSink`], [`SpoolBounces`] | where delivery status reports go |
//! | [`maildir`] | local delivery into Maildir, the local half of the queue |
//! | [`report`] | RFC 3464 delivery status notifications and the per-recipient [`Diagnosis`](report::Diagnosis) |

mod bounce;
mod compat;
mod envelope;
mod id;
mod lock;
pub mod maildir;
pub mod report;
mod retry;
pub mod runner;
mod seal;
mod spool;
mod sync;

pub use bounce::{BounceRequest, BounceSink, SpoolBounces, wants_report};
pub use envelope::{Envelope, MessageParams, RcptStatus, RecipientState, unix_now};
pub use id::{BadQueueId, QueueId};
pub use lock::QueueLocked;
pub use retry::RetryPolicy;
pub use spool::{Hold, MessageWriter, Spool};
pub use sync::{Syncer, sync_dir};
