//! The log's errors and damage reports.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::record::MessageKey;

/// What went wrong in a log operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// A file operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`create`, `write`, `fdatasync`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A group commit's write or `fdatasync` failed. Every writer of that
    /// group gets this error, and the log refuses further writes: after a
    /// failed `fdatasync` the kernel may have dropped the dirty pages, so
    /// retrying could acknowledge data that is not on disk.
    #[error("group commit failed; the log accepts no more writes: {source}")]
    CommitFailed {
        /// The failure, shared by every writer of the group.
        #[source]
        source: Arc<LogError>,
    },
    /// An earlier group commit failed (see [`LogError::CommitFailed`]).
    #[error("the log failed earlier and accepts no more writes")]
    Failed,
    /// The log was closed before the records were committed.
    #[error("the log is closed")]
    Closed,
    /// A record is larger than a segment can hold.
    #[error("a submission of {len} bytes does not fit in a segment (at most {max})")]
    TooLarge {
        /// Encoded bytes of the submission.
        len: usize,
        /// The most one submission may take (the segment size less its
        /// header and seal).
        max: usize,
    },
    /// Records were appended to a message that is already finished.
    #[error("message {0} is finished")]
    Finished(MessageKey),
    /// The message is not in the log.
    #[error("message {0} is not in the log")]
    UnknownMessage(MessageKey),
    /// Some of the message's records are damaged on disk (found at open or
    /// when reading); its records are not returned, so a partial message
    /// is never delivered. [`crate::log::Log::finish`] still removes it.
    #[error("message {key} is damaged: {damage}")]
    Damaged {
        /// The message.
        key: MessageKey,
        /// The first damage found.
        damage: Box<Damage>,
    },
    /// The configuration is unusable.
    #[error("bad log configuration: {0}")]
    Config(&'static str),
}

/// Damage found in a segment: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Damage {
    /// The segment file.
    pub segment: PathBuf,
    /// Byte offset in it where the damage starts.
    pub offset: u64,
    /// What is wrong there.
    pub problem: Problem,
    /// The message the damaged bytes probably belong to (read from a
    /// header whose fields are consistent but whose checksum fails), or the
    /// message whose records around the damage are incomplete. `None` when
    /// nothing identifies it: a queue should then check its messages for
    /// missing parts.
    pub key: Option<MessageKey>,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {}: {}",
            self.segment.display(),
            self.offset,
            self.problem
        )?;
        if let Some(key) = self.key {
            write!(f, " (message {key})")?;
        }
        Ok(())
    }
}

/// The kinds of damage a scan recognises.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A record's checksum or header does not verify, and valid records of
    /// later commits follow it (so it is not a torn tail). `skipped` bytes
    /// up to the next valid record were not read.
    BadRecord {
        /// Bytes skipped to reach the next valid record (or the end).
        skipped: u64,
    },
    /// The segment header does not verify (the records are still read).
    BadSegmentHeader,
    /// The file is shorter than the size its header gives: it was
    /// truncated. Records past the cut are lost.
    Truncated {
        /// The file's length.
        len: u64,
        /// The length the header gives.
        expected: u64,
    },
    /// A segment that is not the last one ends without its seal record:
    /// its tail was lost (truncated or overwritten).
    MissingSeal,
    /// A commit's records stop short of its last record: part of an
    /// acknowledged commit is unreadable.
    IncompleteCommit,
    /// A record read back does not match what the index expects.
    ReadMismatch,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::BadRecord { skipped } => write!(
                f,
                "corrupt record (checksum or header), {skipped} bytes skipped to the next valid record"
            ),
            Problem::BadSegmentHeader => f.write_str("corrupt segment header"),
            Problem::Truncated { len, expected } => {
                write!(
                    f,
                    "segment truncated to {len} bytes (its header says {expected})"
                )
            }
            Problem::MissingSeal => {
                f.write_str("segment ends without its seal record (its tail was lost)")
            }
            Problem::IncompleteCommit => f.write_str("a commit's records are incomplete"),
            Problem::ReadMismatch => f.write_str("record read back does not verify"),
        }
    }
}
