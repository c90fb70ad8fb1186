//! [`Log`]: the public handle, and the state its threads share.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::committer::{self, Committer};
use super::config::LogConfig;
use super::error::{Damage, LogError, Problem};
use super::index::Index;
use super::io::{FsIo, LogIo, SegmentIo};
use super::maintain::{self, Maintenance};
use super::record::{
    HEADER_LEN, MessageKey, Record, RecordKind, StoredRecord, encoded_len, verify_read,
};
use super::recover::{self, RecoveryReport};
use super::segment::segment_name;
use super::ticket::{Slot, Ticket};

/// One record copied forward by compaction.
#[derive(Debug)]
pub(crate) struct CopyRecord {
    pub(crate) key: MessageKey,
    pub(crate) origin: u64,
    /// `None`: a tombstone.
    pub(crate) kind: Option<RecordKind>,
    pub(crate) payload: Vec<u8>,
    /// The segment the original is in.
    pub(crate) source: u64,
}

/// What a writer hands the committer.
#[derive(Debug)]
pub(crate) enum Work {
    Append(Vec<Record>),
    Finish(MessageKey),
    Copy(Vec<CopyRecord>),
}

#[derive(Debug)]
pub(crate) struct Submission {
    pub(crate) work: Work,
    pub(crate) slot: Arc<Slot>,
}

#[derive(Debug, Default)]
pub(crate) struct Queue {
    pub(crate) subs: Vec<Submission>,
    pub(crate) shutdown: bool,
    pub(crate) failed: bool,
}

/// Counters, for tests and the benchmark.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) groups: AtomicU64,
    pub(crate) syncs: AtomicU64,
    pub(crate) submissions: AtomicU64,
    pub(crate) records: AtomicU64,
    pub(crate) segments_created: AtomicU64,
    pub(crate) segments_removed: AtomicU64,
}

/// Counters of a log since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LogStats {
    /// Group commits written.
    pub groups: u64,
    /// `fdatasync` calls on the commit path (one per group, plus one per
    /// segment rollover inside a group).
    pub syncs: u64,
    /// Submissions committed.
    pub submissions: u64,
    /// Records written (including seals, tombstones and copies).
    pub records: u64,
    /// Segment files created.
    pub segments_created: u64,
    /// Segment files removed by maintenance.
    pub segments_removed: u64,
    /// Segment files now.
    pub segments: u64,
    /// Live messages now.
    pub messages: u64,
}

/// A spare segment being made (`None`) or made (the outcome).
pub(crate) type Spare = (u64, Option<Result<Arc<dyn SegmentIo>, LogError>>);

/// Background work requests: the next spare segment, and maintenance.
#[derive(Default)]
pub(crate) struct Background {
    /// The spare segment being prepared or ready: `(seq, result)`.
    pub(crate) spare: Option<Spare>,
    pub(crate) maintain: bool,
    pub(crate) shutdown: bool,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("spare", &self.spare.as_ref().map(|s| s.0))
            .field("maintain", &self.maintain)
            .finish()
    }
}

/// What the log's threads share.
pub(crate) struct Shared {
    pub(crate) io: Arc<dyn LogIo>,
    pub(crate) config: LogConfig,
    pub(crate) index: Mutex<Index>,
    pub(crate) queue: Mutex<Queue>,
    pub(crate) queue_cv: Condvar,
    pub(crate) background: Mutex<Background>,
    pub(crate) background_cv: Condvar,
    /// One maintenance pass at a time.
    pub(crate) maintaining: Mutex<()>,
    pub(crate) counters: Counters,
    pub(crate) recovery: RecoveryReport,
}

impl Shared {
    pub(crate) fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn background(&self) -> MutexGuard<'_, Background> {
        self.background.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn submit(&self, work: Work) -> Ticket {
        let (ticket, slot) = Ticket::new();
        let mut q = self.queue();
        if q.failed {
            slot.complete(Err(LogError::Failed));
        } else if q.shutdown {
            slot.complete(Err(LogError::Closed));
        } else {
            q.subs.push(Submission { work, slot });
            drop(q);
            self.queue_cv.notify_one();
        }
        ticket
    }

    pub(crate) fn io_err(&self, op: &'static str, seg: u64, source: std::io::Error) -> LogError {
        LogError::Io {
            op,
            path: self.io.path(&segment_name(seg)),
            source,
        }
    }
}

/// The log-structured store: a directory of segment files holding
/// checksummed records, an index of live messages, and a committer thread
/// that makes submissions durable in groups.
///
/// Cheap to clone; clones share everything. The threads stop (after
/// committing what was submitted) when the last clone is dropped.
///
/// # Writing
///
/// [`Log::submit`] hands records to the committer and returns a
/// [`Ticket`] at once; it never blocks on IO, so it is fine to call from
/// async code. The committer takes every submission that arrived while the
/// previous group was syncing, writes them with one `pwrite` into the
/// current segment and calls `fdatasync` once for all of them; then every
/// ticket of the group resolves. Await the ticket from tokio (or any
/// executor), or [`Ticket::wait`] from a thread. A submission is atomic:
/// after a crash either all its records are there or none.
///
/// # Reading
///
/// [`Log::messages`] and [`Log::records`] answer from the index; `records`
/// reads the segment files (`pread`, checksums verified), so from async
/// code call it in `spawn_blocking` when bodies are large.
#[derive(Clone)]
pub struct Log {
    owner: Arc<Owner>,
}

struct Owner {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        // The committer first (it drains the queue and may still need a
        // spare segment), then the background threads.
        let mut threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        self.shared.queue().shutdown = true;
        self.shared.queue_cv.notify_all();
        if !threads.is_empty() {
            let _ = threads.remove(0).join();
        }
        self.shared.background().shutdown = true;
        self.shared.background_cv.notify_all();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Log {
    /// Opens (creating if needed) the log in directory `dir`: scans every
    /// segment, rebuilds the index, seals a torn tail, and starts the
    /// committer. Damage found is in [`Log::recovery`]; only IO errors
    /// (and a bad configuration) fail the open.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log, LogError> {
        let dir = dir.as_ref();
        let io = FsIo::new(dir).map_err(|source| LogError::Io {
            op: "create directory",
            path: dir.to_owned(),
            source,
        })?;
        Log::open_with(Arc::new(io), config)
    }

    /// [`Log::open`] over any [`LogIo`] (tests record the file operations
    /// with [`recorder::RecordingIo`](super::recorder::RecordingIo)).
    pub fn open_with(io: Arc<dyn LogIo>, config: LogConfig) -> Result<Log, LogError> {
        config.check()?;
        let recovered = recover::recover(&*io, &config)?;
        let shared = Arc::new(Shared {
            io,
            config,
            index: Mutex::new(recovered.index),
            queue: Mutex::new(Queue::default()),
            queue_cv: Condvar::new(),
            background: Mutex::new(Background::default()),
            background_cv: Condvar::new(),
            maintaining: Mutex::new(()),
            counters: Counters::default(),
            recovery: recovered.report,
        });
        let committer = Committer::start(
            &shared,
            recovered.next_seq,
            recovered.next_lsn,
            recovered.next_group,
        )?;
        let mut threads = Vec::new();
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(f)
                .map_err(|source| LogError::Io {
                    op: "spawn thread",
                    path: shared.io.path(""),
                    source,
                })
        };
        threads.push(spawn(
            "postern-log-commit",
            Box::new(move || committer.run()),
        )?);
        let s = shared.clone();
        threads.push(spawn(
            "postern-log-prealloc",
            Box::new(move || committer::preallocator(&s)),
        )?);
        if shared.config.auto_maintain {
            let s = shared.clone();
            threads.push(spawn(
                "postern-log-maintain",
                Box::new(move || maintain::background(&s)),
            )?);
        }
        Ok(Log {
            owner: Arc::new(Owner {
                shared,
                threads: Mutex::new(threads),
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.owner.shared
    }

    /// What the scan at open found: torn tail, damage, counts.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.shared().recovery
    }

    /// Appends `records` as one atomic submission; the ticket resolves
    /// once they are durable. Records of several messages may be mixed.
    /// Fails (through the ticket) if a record's message is finished or the
    /// submission does not fit in a segment.
    pub fn submit(&self, records: Vec<Record>) -> Ticket {
        self.shared().submit(Work::Append(records))
    }

    /// [`Log::submit`] and [`Ticket::wait`]: blocks until durable.
    pub fn commit(&self, records: Vec<Record>) -> Result<super::Committed, LogError> {
        self.submit(records).wait()
    }

    /// Marks message `key` finished (a tombstone record, group committed
    /// like any submission): once the ticket resolves it is gone from the
    /// index and never comes back after a crash; its segments become
    /// reclaimable. Finishing a message the log does not hold succeeds
    /// without writing anything.
    pub fn finish(&self, key: MessageKey) -> Ticket {
        self.shared().submit(Work::Finish(key))
    }

    /// The live (not finished) messages, including damaged ones, in key
    /// order.
    pub fn messages(&self) -> Vec<MessageKey> {
        let mut keys: Vec<MessageKey> = self.shared().index().messages.keys().copied().collect();
        keys.sort();
        keys
    }

    /// Whether `key` is a live message.
    pub fn contains(&self, key: MessageKey) -> bool {
        self.shared().index().messages.contains_key(&key)
    }

    /// The damaged live messages and the first damage of each.
    pub fn damaged(&self) -> Vec<(MessageKey, Damage)> {
        let mut out: Vec<(MessageKey, Damage)> = self
            .shared()
            .index()
            .messages
            .iter()
            .filter_map(|(k, m)| m.damage.clone().map(|d| (*k, d)))
            .collect();
        out.sort_by_key(|d| d.0);
        out
    }

    /// The records of live message `key`, in append order, read from the
    /// segments with their checksums verified.
    pub fn records(&self, key: MessageKey) -> Result<Vec<StoredRecord>, LogError> {
        self.records_of(key, |_| true)
    }

    /// The summed payload length of `key`'s records of the kinds `want`
    /// picks, from the index (nothing is read).
    pub fn payload_len_of(
        &self,
        key: MessageKey,
        want: impl Fn(RecordKind) -> bool,
    ) -> Result<u64, LogError> {
        let index = self.shared().index();
        let m = index
            .messages
            .get(&key)
            .ok_or(LogError::UnknownMessage(key))?;
        Ok(m.records
            .values()
            .filter(|loc| want(loc.kind))
            .map(|loc| u64::from(loc.len))
            .sum())
    }

    /// [`Log::records`] restricted to the kinds `want` accepts: only those
    /// are read from disk (the queue reads a message's envelopes without
    /// its body).
    pub fn records_of(
        &self,
        key: MessageKey,
        want: impl Fn(RecordKind) -> bool,
    ) -> Result<Vec<StoredRecord>, LogError> {
        let locs = {
            let index = self.shared().index();
            let m = index
                .messages
                .get(&key)
                .ok_or(LogError::UnknownMessage(key))?;
            if let Some(d) = &m.damage {
                return Err(LogError::Damaged {
                    key,
                    damage: Box::new(d.clone()),
                });
            }
            m.records
                .iter()
                .filter(|(_, loc)| want(loc.kind))
                .map(|(&origin, loc)| {
                    index
                        .segments
                        .get(&loc.seg)
                        .map(|s| (origin, *loc, s.file.clone()))
                        .ok_or(LogError::UnknownMessage(key))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut out = Vec::with_capacity(locs.len());
        for (origin, loc, file) in locs {
            let mut buf = vec![0u8; encoded_len(loc.len as usize)];
            file.read_at(&mut buf, loc.offset)
                .map_err(|e| self.shared().io_err("read", loc.seg, e))?;
            let Some(payload) = verify_read(&buf, loc.lsn) else {
                return Err(LogError::Damaged {
                    key,
                    damage: Box::new(Damage {
                        segment: self.shared().io.path(&segment_name(loc.seg)),
                        offset: loc.offset,
                        problem: Problem::ReadMismatch,
                        key: Some(key),
                    }),
                });
            };
            debug_assert!(buf.len() >= HEADER_LEN);
            out.push(StoredRecord {
                kind: loc.kind,
                payload: payload.to_vec(),
                lsn: origin,
            });
        }
        Ok(out)
    }

    /// Removes segments none of whose records are live any more, and
    /// compacts mostly-dead ones (copies their live records forward, then
    /// removes them). Runs on a background thread after each rollover
    /// unless [`LogConfig::auto_maintain`] is off; blocking.
    pub fn maintain(&self) -> Result<Maintenance, LogError> {
        maintain::run(self.shared())
    }

    /// Counters since open.
    pub fn stats(&self) -> LogStats {
        let c = &self.shared().counters;
        let index = self.shared().index();
        LogStats {
            groups: c.groups.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            submissions: c.submissions.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            segments_created: c.segments_created.load(Ordering::Relaxed),
            segments_removed: c.segments_removed.load(Ordering::Relaxed),
            segments: index.segments.len() as u64,
            messages: index.messages.len() as u64,
        }
    }
}
