//! The queue directory's lock: one process owns a queue.
//!
//! [`LogStore::open`](crate::LogStore::open) takes an exclusive `flock(2)` on
//! `DIR/lock` before it touches anything (recovery cuts a torn tail and
//! removes spare segments, and the import of an old spool removes
//! unfinished commits: both would destroy another instance's work in
//! progress) and writes its pid there. The lock lasts as long as any
//! [`LogStore`](crate::LogStore) of that directory in this process: opening the
//! same directory again in the same process shares it. A second process
//! gets a [`QueueLocked`] error naming the directory and the holder's pid.
//! The kernel drops the lock when the process dies, so a crash never leaves
//! the queue locked.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Another process holds the queue directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the queue directory {} is in use by another process{}", dir.display(), pid.map_or_else(String::new, |p| format!(" (pid {p})")))]
#[non_exhaustive]
pub struct QueueLocked {
    /// The queue directory.
    pub dir: PathBuf,
    /// The holder's pid, as it wrote it in the lock file (`None` if
    /// unreadable).
    pub pid: Option<u32>,
}

/// A held lock; released when the last [`LogStore`](crate::LogStore) of the
/// directory in this process is dropped (the file is closed).
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

/// Locks `dir` for this process, or shares the lock this process holds.
pub(crate) fn lock_dir(dir: &Path) -> io::Result<Arc<DirLock>> {
    static HELD: OnceLock<Mutex<HashMap<PathBuf, Weak<DirLock>>>> = OnceLock::new();
    let key = fs::canonicalize(dir)?;
    let mut held = HELD
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(lock) = held.get(&key).and_then(Weak::upgrade) {
        return Ok(lock);
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("lock"))?;
    if let Err(e) = try_lock(&file) {
        if e.kind() != io::ErrorKind::WouldBlock {
            return Err(e);
        }
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let pid = text.trim().parse().ok();
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            QueueLocked {
                dir: dir.to_owned(),
                pid,
            },
        ));
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    let lock = Arc::new(DirLock { _file: file });
    held.retain(|_, w| w.strong_count() > 0);
    held.insert(key, Arc::downgrade(&lock));
    Ok(lock)
}

#[cfg(unix)]
fn try_lock(file: &File) -> io::Result<()> {
    use rustix::fs::{FlockOperation, flock};
    flock(file, FlockOperation::NonBlockingLockExclusive).map_err(|e| {
        if e == rustix::io::Errno::WOULDBLOCK {
            io::Error::from(io::ErrorKind::WouldBlock)
        } else {
            io::Error::from(e)
        }
    })
}

// Without flock the queue is not protected against a second instance;
// std's `File::try_lock` needs Rust 1.89, above our rust-version.
#[cfg(not(unix))]
fn try_lock(_: &File) -> io::Result<()> {
    Ok(())
}
