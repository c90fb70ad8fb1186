//! The [`Store`] trait: what the inbound server, local delivery, the
//! outbound runner and queue tools need from wherever messages are kept.
//!
//! [`LogStore`](crate::LogStore) is the default implementation (segment
//! files on local disk, group commit); a shared database is the other
//! shape this trait is cut for. Everything but the commit is blocking:
//! async callers use `spawn_blocking` (or accept a short block for small
//! records). The commit returns a future ([`Commit`]) because the session
//! answers `250` only after it resolves, and many sessions wait on one
//! group commit at a time.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use crate::envelope::Envelope;
use crate::id::QueueId;

/// Where queued messages live.
///
/// # Contract
///
/// - A message exists once its commit ([`MessageWriter::commit`]) resolved
///   `Ok`; only then may the server acknowledge it. After a crash every
///   acknowledged message is there exactly once, and a removed one never
///   comes back (except through [`Store::remove_unsynced`]).
/// - A commit leaves the message **held** ([`Hold`]): hidden from
///   [`Store::list`] until the hold is dropped, so local delivery finishes
///   before the outbound runner sees it. Whoever works on a message holds
///   it ([`Store::hold`]).
/// - [`Store::update`] replaces the envelope (recipient states, attempts,
///   next attempt) durably; the body never changes.
/// - Recovery happens when the store is opened (its constructor), before
///   anything is served.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// A new unique, time-sortable id.
    fn new_id(&self) -> QueueId;

    /// Starts writing the body of message `id`.
    fn writer(&self, id: &QueueId) -> io::Result<MessageWriter>;

    /// Queues a message whose body is already whole (the reports the
    /// queue writes itself): written, committed under `env` (whose id
    /// names it) and released at once. Durable when it returns.
    fn put(&self, env: &Envelope, body: &[u8]) -> io::Result<()> {
        let mut writer = self.writer(&env.id)?;
        writer.write(body)?;
        drop(writer.commit(env).wait()?);
        Ok(())
    }

    /// Committed messages nobody holds, oldest first.
    fn list(&self) -> io::Result<Vec<QueueId>>;

    /// Every committed message, held or not, oldest first.
    fn list_all(&self) -> io::Result<Vec<QueueId>>;

    /// The unheld messages with an open recipient whose next attempt is due
    /// at `now` (unix seconds), oldest first; none on an operator's hold
    /// ([`Envelope::on_hold`]).
    fn due(&self, now: u64) -> io::Result<Vec<QueueId>> {
        let mut due = Vec::new();
        for id in self.list()? {
            if let Ok(env) = self.load(&id)
                && !env.is_finished()
                && !env.on_hold
                && env.next_attempt <= now
            {
                due.push(id);
            }
        }
        Ok(due)
    }

    /// A committed message's envelope; `NotFound` if there is none.
    fn load(&self, id: &QueueId) -> io::Result<Envelope>;

    /// A committed message's body: the RFC 5322 message as it will be
    /// delivered (starting with our Received header), CRLF line endings.
    fn body(&self, id: &QueueId) -> io::Result<Vec<u8>>;

    /// The length of a committed message's body in octets (what
    /// [`Store::body`] returns), for listings. The default reads the body;
    /// stores that know the length answer without reading it.
    fn body_size(&self, id: &QueueId) -> io::Result<u64> {
        self.body(id).map(|b| b.len() as u64)
    }

    /// Replaces a committed message's envelope durably; `NotFound` if the
    /// message is not there.
    fn update(&self, id: &QueueId, env: &Envelope) -> io::Result<()>;

    /// Removes a message durably. Removing a missing message is not an
    /// error.
    fn remove(&self, id: &QueueId) -> io::Result<()>;

    /// Removes a message without waiting for the removal to be durable: a
    /// crash may bring it back. Only for callers whose work on the message
    /// is idempotent (local delivery finds its Maildir file and does not
    /// deliver twice).
    fn remove_unsynced(&self, id: &QueueId) -> io::Result<()> {
        self.remove(id)
    }

    /// Claims `id` for exclusive work within this process; `None` if
    /// someone holds it already.
    fn hold(&self, id: &QueueId) -> Option<Hold>;
}

/// A set of held ids, for [`Store`] implementations whose holds live in
/// this process. Cheap to clone; clones share the set.
#[derive(Debug, Clone, Default)]
pub struct Holds {
    held: Arc<Mutex<HashSet<QueueId>>>,
}

impl Holds {
    /// Claims `id`; `None` if it is held.
    pub fn hold(&self, id: &QueueId) -> Option<Hold> {
        self.lock().insert(id.clone()).then(|| Hold {
            id: id.clone(),
            release: Release::Local(self.clone()),
        })
    }

    /// Whether `id` is held.
    pub fn is_held(&self, id: &QueueId) -> bool {
        self.lock().contains(id)
    }

    /// `ids` without the held ones.
    pub fn unheld(&self, mut ids: Vec<QueueId>) -> Vec<QueueId> {
        let held = self.lock();
        ids.retain(|id| !held.contains(id));
        ids
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<QueueId>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// While alive, the id is hidden from [`Store::list`] and [`Store::hold`]
/// returns `None` for it. Dropping it releases the id.
#[derive(Debug)]
pub struct Hold {
    id: QueueId,
    release: Release,
}

/// What dropping a [`Hold`] releases.
#[derive(Debug)]
enum Release {
    /// An entry of a [`Holds`] set in this process.
    Local(Holds),
    /// Whatever the store's guard releases when dropped (a lease in a
    /// shared database).
    Guard(#[allow(dead_code)] Box<dyn fmt::Debug + Send + Sync>),
}

impl Hold {
    /// A hold released by dropping `guard`: for a [`Store`] whose holds
    /// live outside this process (a lease in a database shared by
    /// several nodes), where [`Holds`] alone cannot keep others out.
    pub fn with_guard(id: QueueId, guard: Box<dyn fmt::Debug + Send + Sync>) -> Hold {
        Hold {
            id,
            release: Release::Guard(guard),
        }
    }

    /// The held id.
    pub fn id(&self) -> &QueueId {
        &self.id
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Release::Local(holds) = &self.release {
            holds.lock().remove(&self.id);
        }
    }
}

/// Appends `data` to `buf` and hands every full `chunk`-octet piece to
/// `full` as it fills, keeping the rest in `buf`: how a [`BodySink`] cuts
/// a body it receives in arbitrary writes into the fixed-size records (or
/// rows) it stores.
pub fn fill_chunks(
    buf: &mut Vec<u8>,
    mut data: &[u8],
    chunk: usize,
    mut full: impl FnMut(Vec<u8>),
) {
    let chunk = chunk.max(1);
    while !data.is_empty() {
        let take = data.len().min(chunk - buf.len());
        buf.extend_from_slice(&data[..take]);
        data = &data[take..];
        if buf.len() == chunk {
            full(std::mem::take(buf));
        }
    }
}

/// What a [`Store`] implements to receive one message's body.
pub trait BodySink: Send + 'static {
    /// Appends body octets (may hand complete chunks to the store already).
    fn write(&mut self, data: &[u8]) -> io::Result<()>;

    /// Makes body and `envelope` durable together; see
    /// [`MessageWriter::commit`].
    fn commit(self: Box<Self>, envelope: &Envelope) -> Commit;
}

/// A message being written: body octets, then one commit with the
/// envelope. Dropping it without committing abandons the message (nothing
/// of it is ever delivered).
pub struct MessageWriter {
    id: QueueId,
    written: u64,
    sink: Box<dyn BodySink>,
}

impl fmt::Debug for MessageWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageWriter")
            .field("id", &self.id)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl MessageWriter {
    /// A writer for message `id` over a store's sink.
    pub fn new(id: QueueId, sink: Box<dyn BodySink>) -> MessageWriter {
        MessageWriter {
            id,
            written: 0,
            sink,
        }
    }

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
        self.sink.write(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    /// Commits the message: once the returned future resolves `Ok`, body
    /// and envelope are durable and the message may be acknowledged. It is
    /// then **held** until the returned [`Hold`] is dropped. From a thread,
    /// [`Commit::wait`] blocks instead.
    pub fn commit(self, envelope: &Envelope) -> Commit {
        self.sink.commit(envelope)
    }
}

/// A commit in flight (see [`MessageWriter::commit`]): `.await` it, or
/// [`Commit::wait`] from a thread. It needs no particular runtime.
#[must_use = "a message is only committed once its commit resolves"]
pub struct Commit {
    inner: Pin<Box<dyn Future<Output = io::Result<Hold>> + Send>>,
}

impl fmt::Debug for Commit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Commit").finish_non_exhaustive()
    }
}

impl Commit {
    /// A commit that resolves as `future` does.
    pub fn new(future: impl Future<Output = io::Result<Hold>> + Send + 'static) -> Commit {
        Commit {
            inner: Box::pin(future),
        }
    }

    /// A commit already decided (typically a failure found before any IO).
    pub fn ready(outcome: io::Result<Hold>) -> Commit {
        Commit::new(std::future::ready(outcome))
    }

    /// Blocks the calling thread until the commit resolves.
    pub fn wait(mut self) -> io::Result<Hold> {
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(outcome) = self.inner.as_mut().poll(&mut cx) {
                return outcome;
            }
            std::thread::park();
        }
    }
}

impl Future for Commit {
    type Output = io::Result<Hold>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fill_chunks_hands_out_full_chunks_whatever_the_writes() {
        let (mut buf, mut got) = (Vec::new(), Vec::new());
        for piece in [&b"abc"[..], b"", b"defghij", b"k"] {
            super::fill_chunks(&mut buf, piece, 4, |c| got.push(c));
        }
        assert_eq!(got, [b"abcd".to_vec(), b"efgh".to_vec()]);
        assert_eq!(buf, b"ijk");
    }
}
