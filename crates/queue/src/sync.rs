//! Group commit of the queue's file system.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

/// Group commit: makes files durable with as few journal commits as the
/// file system allows, shared by every caller waiting at the same time.
///
/// On Linux one round is `syncfs(2)` on the file system holding the
/// directory given to [`Syncer::for_dir`]: it writes back every dirty file
/// and commits the journal once, so the data of every file written before
/// the round started, their inodes and their directory entries are durable
/// when it returns (and, since Linux 5.8, a writeback error is reported).
/// Callers that arrive while a round runs wait for the next one, which
/// then covers all of them: with N sessions committing at once, N messages
/// share one journal commit. The cost: a round also flushes whatever else
/// is dirty on that file system, so keep the queue on a file system of its
/// own where other heavy writers would make that slow.
///
/// Elsewhere each caller fsyncs its own files and the directory.
#[derive(Debug)]
pub struct Syncer {
    dir: File,
    state: Mutex<SyncState>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Tickets handed out (a caller's ticket is covered by the first round
    /// that starts after it was taken).
    requested: u64,
    /// Every ticket up to this one is covered by a finished round.
    completed: u64,
    running: bool,
    /// Ticket ranges whose round failed, with the error (bounded).
    failed: Vec<(u64, u64, io::ErrorKind, String)>,
}

impl Syncer {
    /// The syncer of the file system holding `dir`; one per file system in
    /// a process, so the queue and the Maildirs share rounds when they are
    /// on the same one.
    pub fn for_dir(dir: &Path) -> io::Result<Arc<Syncer>> {
        use std::collections::HashMap;
        use std::os::unix::fs::MetadataExt;
        use std::sync::{OnceLock, Weak};
        static ALL: OnceLock<Mutex<HashMap<u64, Weak<Syncer>>>> = OnceLock::new();
        let dev = fs::metadata(dir)?.dev();
        let mut all = ALL
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(s) = all.get(&dev).and_then(Weak::upgrade) {
            return Ok(s);
        }
        let s = Arc::new(Syncer {
            dir: File::open(dir)?,
            state: Mutex::new(SyncState::default()),
            done: Condvar::new(),
        });
        all.retain(|_, w| w.strong_count() > 0);
        all.insert(dev, Arc::downgrade(&s));
        Ok(s)
    }

    /// Returns once everything written to `files` (and every directory
    /// change on this file system) before the call is durable.
    pub fn sync(&self, files: &[&File]) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            let _ = files;
            self.round()
        }
        #[cfg(not(target_os = "linux"))]
        {
            for f in files {
                f.sync_all()?;
            }
            self.dir.sync_all()
        }
    }

    /// Waits for a round that starts after this call; runs it if nobody is.
    fn round(&self) -> io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.requested += 1;
        let ticket = st.requested;
        loop {
            if st.completed >= ticket {
                return match st.failed.iter().find(|f| f.0 <= ticket && ticket <= f.1) {
                    Some((_, _, kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
                    None => Ok(()),
                };
            }
            if st.running {
                st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.running = true;
            let from = st.completed + 1;
            let upto = st.requested;
            drop(st);
            let result = sync_filesystem(&self.dir);
            st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.running = false;
            st.completed = upto;
            if let Err(e) = result {
                if st.failed.len() >= 64 {
                    st.failed.remove(0);
                }
                st.failed
                    .push((from, upto, e.kind(), format!("syncfs: {e}")));
            }
            self.done.notify_all();
        }
    }
}

#[cfg(target_os = "linux")]
fn sync_filesystem(dir: &File) -> io::Result<()> {
    rustix::fs::syncfs(dir).map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn sync_filesystem(dir: &File) -> io::Result<()> {
    dir.sync_all()
}

/// fsyncs a directory so renames and removals in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
