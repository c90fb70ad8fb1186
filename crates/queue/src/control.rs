//! The control socket: how queue tools reach the [`QueueAdmin`] inside a
//! running server.
//!
//! A Unix stream socket, owner-only (mode 0600, in the data directory),
//! one request per connection: the client writes one JSON line, the
//! server answers one JSON line and closes. A socket rather than the tools
//! opening the store themselves because the store is locked by the server
//! and its holds (which keep an operator from rewriting an envelope the
//! runner is writing) live in the server's memory.
//!
//! ```no_run
//! use postern_queue::control::{Request, request};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listing = request("/var/lib/postern/control.sock".as_ref(), &Request::List)?;
//! println!("{listing:?}");
//! # Ok(())
//! # }
//! ```

use std::io::{self, BufRead as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::admin::{AdminError, QueueAdmin, QueueEntry};
use crate::id::QueueId;

/// The longest request line the server reads (a request is a few dozen
/// octets; anything longer is not a tool of ours).
const MAX_REQUEST: u64 = 4096;

/// How long either side waits for the other.
const TIMEOUT: Duration = Duration::from_secs(60);

/// One operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// Every message.
    List,
    /// One message.
    Show {
        /// Which.
        id: QueueId,
    },
    /// Make a message due now; `None`: every message not on hold.
    Retry {
        /// Which (`None`: all).
        id: Option<QueueId>,
    },
    /// Put a message on hold.
    Hold {
        /// Which.
        id: QueueId,
    },
    /// Release a held message.
    Release {
        /// Which.
        id: QueueId,
    },
    /// Remove a message.
    Remove {
        /// Which.
        id: QueueId,
    },
}

/// The server's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Response {
    /// For [`Request::List`].
    Entries(Vec<QueueEntry>),
    /// For [`Request::Show`].
    Entry(Box<QueueEntry>),
    /// For the changes: how many messages changed (0: nothing to do, e.g.
    /// holding a held message).
    Changed(usize),
    /// The operation failed.
    Error {
        /// What kind of failure.
        kind: FailureKind,
        /// The server's explanation.
        message: String,
    },
}

/// Why the server refused or failed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// No such message.
    UnknownId,
    /// The message is being delivered; try again.
    Busy,
    /// The store failed.
    Store,
    /// The request was not understood.
    BadRequest,
}

/// Why a tool's request did not get an answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Nothing listens on the socket: the server is not running (or runs
    /// with another data directory).
    #[error("the server is not running (no control socket answers at {path}): {source}")]
    NotRunning {
        /// The socket's path.
        path: PathBuf,
        /// What connecting said.
        #[source]
        source: io::Error,
    },
    /// The exchange failed midway, or the answer did not parse.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket's path.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
}

/// The control socket's path in a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// Sends `req` to the server at `path` and returns its answer (which may be
/// [`Response::Error`]). Blocking: tools are not async.
pub fn request(path: &Path, req: &Request) -> Result<Response, ControlError> {
    let io_err = |source| ControlError::Io {
        path: path.to_owned(),
        source,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(|source| {
        ControlError::NotRunning {
            path: path.to_owned(),
            source,
        }
    })?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io_err)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io_err)?;
    let mut line = serde_json::to_vec(req).map_err(|e| io_err(e.into()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io_err)?;
    let mut answer = String::new();
    io::BufReader::new(stream.take(1 << 30))
        .read_line(&mut answer)
        .map_err(io_err)?;
    serde_json::from_str(&answer).map_err(|e| io_err(e.into()))
}

/// Binds the control socket at `path`, owner-only. A stale socket file is
/// replaced: call this only once the store is open (its lock proves no
/// other server uses the directory).
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Answers requests on `listener` with `admin` until `shutdown` turns true
/// (or its sender is dropped). Each connection is served in a task of its
/// own; the admin's blocking work runs on the blocking pool.
pub async fn serve(
    listener: UnixListener,
    admin: Arc<QueueAdmin>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_one(stream, admin.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
}

async fn serve_one(stream: UnixStream, admin: Arc<QueueAdmin>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST));
    let read = reader.read_line(&mut line);
    let response = match tokio::time::timeout(TIMEOUT, read).await {
        Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
            Ok(req) => tokio::task::spawn_blocking(move || answer(&admin, req))
                .await
                .unwrap_or_else(|e| failure(FailureKind::Store, e.to_string())),
            Err(e) => failure(FailureKind::BadRequest, e.to_string()),
        },
        Ok(Err(e)) => failure(FailureKind::BadRequest, e.to_string()),
        Err(_) => return,
    };
    let Ok(mut out) = serde_json::to_vec(&response) else {
        return;
    };
    out.push(b'\n');
    let _ = tokio::time::timeout(TIMEOUT, write.write_all(&out)).await;
}

fn failure(kind: FailureKind, message: String) -> Response {
    Response::Error { kind, message }
}

/// Carries out one request.
fn answer(admin: &QueueAdmin, req: Request) -> Response {
    let result = match req {
        Request::List => admin.list().map(Response::Entries),
        Request::Show { id } => admin.show(&id).map(|e| Response::Entry(Box::new(e))),
        Request::Retry { id: Some(id) } => admin.retry(&id).map(|c| Response::Changed(c.into())),
        Request::Retry { id: None } => admin.retry_all().map(Response::Changed),
        Request::Hold { id } => admin.hold(&id).map(|c| Response::Changed(c.into())),
        Request::Release { id } => admin.release(&id).map(|c| Response::Changed(c.into())),
        Request::Remove { id } => admin.remove(&id).map(|()| Response::Changed(1)),
    };
    result.unwrap_or_else(|e| {
        let kind = match &e {
            AdminError::UnknownId(_) => FailureKind::UnknownId,
            AdminError::Busy { .. } => FailureKind::Busy,
            _ => FailureKind::Store,
        };
        failure(kind, e.to_string())
    })
}

/// Prints a tool's answer the way `mailq`-style tools do and returns the
/// exit code: listings and entries as text ([`format_listing`],
/// [`format_entry`]) or, with `json`, as pretty JSON on `out`; failures as
/// one line on `err`. Exit 2 for an unknown id or no server, 1 for other
/// failures, 0 otherwise.
///
/// [`format_listing`]: crate::admin::format_listing
/// [`format_entry`]: crate::admin::format_entry
pub fn print_answer(
    answer: Result<Response, ControlError>,
    json: bool,
    out: &mut dyn io::Write,
    err: &mut dyn io::Write,
) -> io::Result<i32> {
    match answer {
        Err(e) => writeln!(err, "{e}").map(|()| 2),
        Ok(Response::Error { kind, message }) => {
            writeln!(err, "{message}")?;
            Ok(if kind == FailureKind::UnknownId { 2 } else { 1 })
        }
        Ok(Response::Entries(e)) if json => writeln!(out, "{}", to_json(&e)?).map(|()| 0),
        Ok(Response::Entries(e)) => write!(out, "{}", crate::admin::format_listing(&e)).map(|()| 0),
        Ok(Response::Entry(e)) if json => writeln!(out, "{}", to_json(&e)?).map(|()| 0),
        Ok(Response::Entry(e)) => write!(out, "{}", crate::admin::format_entry(&e)).map(|()| 0),
        Ok(Response::Changed(n)) => writeln!(out, "{n} message(s) changed").map(|()| 0),
    }
}

fn to_json(value: &impl Serialize) -> io::Result<String> {
    serde_json::to_string_pretty(value).map_err(io::Error::other)
}
