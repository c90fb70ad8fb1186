//! The PostgreSQL store's errors.

use std::io;
use std::time::Duration;

use crate::QueueId;

/// What went wrong in the PostgreSQL store. Store methods return it as the
/// source of an [`io::Error`] (downcast with `get_ref`), so the server's
/// existing error paths (`451 4.3.0` on DATA) apply unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The database could not be reached (connection refused or lost,
    /// server shutting down or starting up) for `waited`, over `attempts`
    /// tries.
    #[error(
        "the queue database is unreachable ({attempts} attempts over {waited:?}): {}",
        source.as_ref().map_or_else(|| "timed out".to_owned(), |e| e.to_string())
    )]
    Unreachable {
        /// Tries made.
        attempts: u32,
        /// How long the tries took.
        waited: Duration,
        /// The last try's error; `None` if it timed out.
        #[source]
        source: Option<tokio_postgres::Error>,
    },
    /// The database answered with an error.
    #[error("queue database: {0}")]
    Database(#[source] tokio_postgres::Error),
    /// The database's schema is newer than this version knows.
    #[error("the queue database has schema version {found}; this version knows up to {known}")]
    SchemaTooNew {
        /// The version found.
        found: i32,
        /// The newest version this code migrates to.
        known: i32,
    },
    /// This node's lease on a message expired and another node took it
    /// over: the change was not written.
    #[error("lease on {0} lost to another node; not written")]
    LeaseLost(QueueId),
    /// A message of that id exists already, committed by someone else.
    #[error("queue id {0} exists already in the database")]
    IdTaken(QueueId),
    /// A stored envelope does not parse.
    #[error("envelope of {id} in the database does not parse: {reason}")]
    BadEnvelope {
        /// The message.
        id: QueueId,
        /// The parser's message (names the field).
        reason: String,
    },
    /// The message is not in the queue.
    #[error("queue id {0} is not in the queue")]
    NotFound(QueueId),
    /// The store's own runtime is gone (the store is shutting down).
    #[error("the queue store is shut down")]
    Closed,
}

impl From<PgError> for io::Error {
    fn from(e: PgError) -> io::Error {
        let kind = match &e {
            PgError::Unreachable { .. } => io::ErrorKind::NotConnected,
            PgError::NotFound(_) => io::ErrorKind::NotFound,
            PgError::IdTaken(_) => io::ErrorKind::AlreadyExists,
            PgError::BadEnvelope { .. } => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// Whether `e` means the connection is gone or the server cannot serve
/// now (a retry on a new connection may succeed), rather than a refusal
/// of the statement.
pub(crate) fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // Class 08 (connection exception), 57P01-57P03 (admin/crash
        // shutdown, cannot connect now), 53300 (too many connections).
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03" | "53300")
        }
        // No SQLSTATE: an IO error, a timeout, a protocol error.
        None => true,
    }
}
