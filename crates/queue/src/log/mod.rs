//! A log-structured durable store with group commit.
//!
//! Messages are stored as typed [`Record`]s (body, envelope, state change)
//! appended to preallocated segment files. Writers [`submit`](Log::submit)
//! records and wait on a [`Ticket`]; one committer thread writes everything
//! submitted meanwhile with one `pwrite` and makes it durable with **one
//! `fdatasync` shared by every writer of the group**. An in-memory index of
//! live messages is rebuilt at [`Log::open`] by scanning the segments.
//! [`Log::finish`] writes a tombstone; segments are removed once nothing in
//! them is live, and [`Log::maintain`] compacts mostly-dead segments by
//! copying their live records forward.
//!
//! # Why this shape
//!
//! Making a record durable costs, on the disk this was built on: 0.87 ms
//! for a new file with `fsync` and a directory `fsync`, 1.15 ms with a
//! sync of the whole file system, 0.45 ms for an append to a growing file, and 0.26 ms for an
//! overwrite inside a preallocated file with `fdatasync` — the floor,
//! because only data blocks are written and no metadata is journaled. So
//! the store never creates a file on the acknowledgement path, writes into
//! space that was allocated *and initialised* ahead of time
//! ([`Preallocation::ZeroFill`]), and shares each `fdatasync` among all the
//! writers waiting at that moment: under load the cost per commit falls
//! below the floor.
//!
//! # On-disk format
//!
//! A log is a directory of segment files named `seg-` + 16 lowercase hex
//! digits (the sequence number) + `.log`, e.g. `seg-000000000000002a.log`;
//! names sort in sequence order. No other file is used; files with other
//! names are ignored.
//!
//! A segment is [`LogConfig::segment_size`] bytes, reserved when it is
//! created. It starts with a 64-byte header (little endian):
//!
//! ```text
//! 0   8  magic "PSTNSEG\0"
//! 8   4  format version (1)
//! 12  4  reserved (0)
//! 16  8  sequence number (the one in the file name)
//! 24  8  capacity: the file's length in bytes
//! 32 28  reserved (0)
//! 60  4  CRC-32 of bytes 0..60
//! ```
//!
//! Records follow, each starting at a multiple of 8 bytes:
//!
//! ```text
//! 0   4  magic "PQRC"
//! 4   1  record format version (1)
//! 5   1  kind: 1 body, 2 envelope, 3 state, 4 finish (tombstone), 5 seal
//! 6   2  flags: bit 0 = copy made by compaction
//! 8   4  payload length
//! 12  4  CRC-32 (IEEE, crc32fast) of header bytes 0..12 and 16..64, then the payload
//! 16  8  lsn: log sequence number, +1 per record across the whole log
//! 24  8  origin: the lsn the record was first written with (= lsn unless a copy)
//! 32  4  lsn minus the lsn of the first record of the same submission
//! 36  4  the lsn of the last record of the same submission minus lsn
//! 40  8  group: the group commit that wrote it
//! 48 16  message key (0 for seals)
//! 64  …  payload, then zero padding to a multiple of 8
//! ```
//!
//! The rest of a segment is zeros (never-written preallocated space). A
//! segment ends with a **seal** record when the log moved on to the next
//! one; nothing after a seal is read.
//!
//! # Writing rules (what recovery relies on)
//!
//! - The committer writes one group at a time and issues the next group's
//!   writes only after the previous group's `fdatasync` returned. So at any
//!   moment at most one group is unsynced, and it is the last one.
//! - A submission's records are contiguous and never span two segments.
//! - When a group crosses into a new segment, the old segment gets its seal
//!   and is synced before anything is written to the new one.
//! - A new segment is created, reserved, given its header, `fsync`ed and
//!   its directory entry `fsync`ed before it is used (in the background,
//!   one segment ahead).
//! - A ticket resolves only after the `fdatasync` covering its records.
//!
//! # Recovery rules (at open)
//!
//! Every segment is read in sequence order. Valid records are those whose
//! header and CRC verify; after bytes that do not, the scan looks for the
//! next valid record at every 8-byte boundary, so one bad record hides
//! nothing else.
//!
//! - **Spares.** Segments after the last one with any content are unused
//!   preallocated segments (possibly half-made): they are removed.
//! - **Torn tail.** In the last segment, invalid bytes after which the only
//!   valid records (if any) belong to one single group, no older than the
//!   last valid record before them, are the torn remains of the last group
//!   commit, whose sync never returned. The log is cut there: a seal
//!   record is written at that offset and synced, the group's records are
//!   discarded ([`RecoveryReport::torn_tail`]). A submission whose records
//!   stop short at the end of the log was never acknowledged either and is
//!   dropped whole.
//! - **Damage.** Invalid bytes anywhere else — followed by records of
//!   later groups, or in a segment that is not the last — are damage: they
//!   were synced and acknowledged. Each is reported as a [`Damage`] naming
//!   the segment file and byte offset ([`RecoveryReport::damage`]); so is a
//!   segment header that does not verify, a file shorter than its header
//!   says (truncated), a non-last segment without its seal, and a
//!   submission whose records are incomplete. The message a damaged record
//!   probably belongs to (from a header whose fields are consistent) is
//!   kept in the index, flagged: [`Log::damaged`] lists it, [`Log::records`]
//!   refuses it with [`LogError::Damaged`] so a partial message is never
//!   delivered, and [`Log::finish`] removes it. Everything else is served.
//!   Nothing in a damaged file makes open fail or panic; only IO errors do.
//! - **Index.** Records are applied in lsn order; only whole submissions
//!   (from their first to their last lsn) are applied. A tombstone removes its message;
//!   records of a message after its tombstone are ignored. A compaction copy
//!   replaces the record with the same origin, so each record appears once.
//! - A bad record in the very last group cannot be told from a torn write
//!   and is treated as one; a group is only acknowledged after its sync, so
//!   this loses data only if the disk corrupts synced data in the last
//!   group (which no log can detect without a separate commit record).
//!
//! # Reclamation and compaction
//!
//! A segment other than the active one is removed when no live record is
//! in it and none of its tombstones is still needed (a tombstone is needed
//! while another segment holds records of its message). Removals are made
//! durable before the segments holding the tombstones are reconsidered, so
//! a crash never resurrects a finished message. Compaction copies the live
//! records (and needed tombstones) of segments less than
//! [`LogConfig::compact_below`] live into the active segment, keeping their
//! origin lsn, then the old segment is reclaimed: one stuck message costs a
//! copy per segment cycle, never a pinned segment.
//!
//! # Async use
//!
//! [`Log::submit`] and [`Log::finish`] never block; `.await` the returned
//! [`Ticket`] in a tokio task (the committer thread wakes it), or call
//! [`Ticket::wait`] from a thread. Reads ([`Log::records`]) do blocking
//! `pread`s; call them in `spawn_blocking` for large bodies. No tokio
//! dependency: any executor works.
//!
//! # Testing crash consistency
//!
//! All file operations go through [`LogIo`]; [`recorder::RecordingIo`]
//! records them and [`recorder::crash_image`] rebuilds any crash state
//! (every prefix; unsynced writes dropped, torn or reordered), which the
//! tests in `crates/queue/tests/log_crash.rs` open and check.

mod committer;
mod config;
mod error;
mod index;
mod io;
mod maintain;
mod record;
pub mod recorder;
mod recover;
mod segment;
mod snapshot;
mod store;
mod ticket;

pub use config::LogConfig;
pub use error::{Damage, LogError, Problem};
pub use io::{FsIo, LogIo, Preallocation, SegmentIo};
pub use maintain::Maintenance;
pub use record::{MessageKey, Record, RecordKind, StoredRecord};
pub use recover::{RecoveryReport, TornTail};
pub use snapshot::snapshot;
pub use store::{Log, LogStats};
pub use ticket::{Committed, Ticket};
