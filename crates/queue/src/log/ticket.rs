//! The handle a writer waits on until its records are durable.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};

use super::error::LogError;

/// What a successful commit reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Committed {
    /// The lsn of the submission's last record (0 when nothing was
    /// written, e.g. finishing a message the log does not hold).
    pub lsn: u64,
    /// The group commit that made it durable; writers with the same group
    /// shared one `fdatasync`.
    pub group: u64,
}

type Outcome = Result<Committed, LogError>;

#[derive(Debug, Default)]
struct SlotState {
    outcome: Option<Outcome>,
    waker: Option<Waker>,
    /// The outcome was taken (a second poll after Ready gets `Closed`).
    taken: bool,
}

/// Where the committer puts one submission's outcome.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
}

impl Slot {
    /// Sets the outcome and wakes the waiter (thread or task).
    pub(crate) fn complete(&self, outcome: Outcome) {
        let waker = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.outcome.is_some() || st.taken {
                return;
            }
            st.outcome = Some(outcome);
            st.waker.take()
        };
        self.ready.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A submission in flight. It resolves once the group commit that covers
/// its records has returned from `fdatasync` (or failed).
///
/// Wait for it either way:
/// - from a thread: [`Ticket::wait`] blocks;
/// - from async code: `.await` it (it implements [`Future`], is `Send`, and
///   needs no particular runtime: the committer thread wakes the task).
///
/// Dropping a ticket does not cancel the commit; the records are still
/// written, only nobody learns the outcome.
#[derive(Debug)]
#[must_use = "a commit is only acknowledged once its ticket resolves"]
pub struct Ticket {
    slot: Arc<Slot>,
}

impl Ticket {
    pub(crate) fn new() -> (Ticket, Arc<Slot>) {
        let slot = Arc::new(Slot::default());
        (Ticket { slot: slot.clone() }, slot)
    }

    /// Blocks the calling thread until the commit is durable (or failed).
    pub fn wait(self) -> Result<Committed, LogError> {
        let mut st = self.slot.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(outcome) = st.outcome.take() {
                st.taken = true;
                return outcome;
            }
            if st.taken {
                return Err(LogError::Closed);
            }
            st = self.slot.ready.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Future for Ticket {
    type Output = Result<Committed, LogError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.slot.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(outcome) = st.outcome.take() {
            st.taken = true;
            return Poll::Ready(outcome);
        }
        if st.taken {
            return Poll::Ready(Err(LogError::Closed));
        }
        match &mut st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}
