//! Crash-consistency testing support: record the file operations of a
//! workload, then rebuild the directory as a crash at any point could have
//! left it.
//!
//! [`RecordingIo`] wraps [`FsIo`] and appends every create, write, sync and
//! remove to a shared [`Op`] list. [`crash_image`] replays a prefix of that
//! list into a fresh directory under a [`Crash`] model:
//!
//! - [`Crash::Everything`]: every operation of the prefix reached the disk.
//! - [`Crash::DropUnsynced`]: only what was synced survives: writes after a
//!   file's last `fdatasync`/`fsync` are lost, and creations and removals
//!   after the last directory `fsync` are undone (a removed file comes
//!   back with its synced contents).
//! - [`Crash::TornLast`]: unsynced writes survive, except the last one of
//!   each file, which keeps only its first half (a write cut short).
//! - [`Crash::TornFirst`]: unsynced writes survive, except the first one of
//!   each file, which loses its first half (pages written back out of
//!   order leave a hole before data that did reach the disk).
//!
//! This is what the kernel may legitimately do with unsynced data; a store
//! is crash-consistent if recovery from every such image keeps every
//! acknowledged record exactly once and brings back nothing removed.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::io::{FsIo, LogIo, Preallocation, SegmentIo};

/// One recorded file operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// A file was created with `len` bytes reserved (reads as zeros).
    Create {
        /// The file.
        name: String,
        /// Its length.
        len: u64,
    },
    /// Bytes written at an offset.
    Write {
        /// The file.
        name: String,
        /// Where.
        offset: u64,
        /// What.
        data: Vec<u8>,
    },
    /// `fdatasync` or `fsync` of a file.
    Sync {
        /// The file.
        name: String,
    },
    /// `fsync` of the directory.
    SyncDir,
    /// A file was removed.
    Remove {
        /// The file.
        name: String,
    },
}

/// How unsynced operations fare in a crash image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Crash {
    /// Everything in the prefix reached the disk.
    Everything,
    /// Only synced data and directory changes survive.
    DropUnsynced,
    /// The last unsynced write of each file is cut to its first half.
    TornLast,
    /// The first unsynced write of each file loses its first half.
    TornFirst,
}

/// A [`LogIo`] that records every operation it performs on a real
/// directory.
#[derive(Debug, Clone)]
pub struct RecordingIo {
    inner: Arc<FsIo>,
    ops: Arc<Mutex<Vec<Op>>>,
}

impl RecordingIo {
    /// Records operations on directory `dir` (created if missing).
    pub fn new(dir: impl AsRef<Path>) -> io::Result<RecordingIo> {
        Ok(RecordingIo {
            inner: Arc::new(FsIo::new(dir)?),
            ops: Arc::default(),
        })
    }

    /// The operations so far.
    pub fn ops(&self) -> Vec<Op> {
        self.lock().clone()
    }

    /// How many operations were recorded so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Op>> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, op: Op) {
        self.lock().push(op);
    }
}

impl LogIo for RecordingIo {
    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }

    fn create(&self, name: &str, len: u64, how: Preallocation) -> io::Result<Arc<dyn SegmentIo>> {
        let file = self.inner.create(name, len, how)?;
        self.push(Op::Create {
            name: name.to_owned(),
            len,
        });
        Ok(Arc::new(RecordingFile {
            name: name.to_owned(),
            file,
            io: self.clone(),
        }))
    }

    fn open(&self, name: &str) -> io::Result<Arc<dyn SegmentIo>> {
        Ok(Arc::new(RecordingFile {
            name: name.to_owned(),
            file: self.inner.open(name)?,
            io: self.clone(),
        }))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)?;
        self.push(Op::Remove {
            name: name.to_owned(),
        });
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.inner.sync_dir()?;
        self.push(Op::SyncDir);
        Ok(())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.inner.path(name)
    }
}

struct RecordingFile {
    name: String,
    file: Arc<dyn SegmentIo>,
    io: RecordingIo,
}

impl SegmentIo for RecordingFile {
    fn file_len(&self) -> io::Result<u64> {
        self.file.file_len()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        // Recorded under the same lock order as the write itself, so the
        // list is the order the operations happened in.
        let mut ops = self.io.lock();
        self.file.write_at(buf, offset)?;
        ops.push(Op::Write {
            name: self.name.clone(),
            offset,
            data: buf.to_vec(),
        });
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()?;
        self.io.push(Op::Sync {
            name: self.name.clone(),
        });
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()?;
        self.io.push(Op::Sync {
            name: self.name.clone(),
        });
        Ok(())
    }
}

#[derive(Debug, Default, Clone)]
struct SimFile {
    /// Contents with every write applied.
    now: Vec<u8>,
    /// Contents as of the last sync.
    synced: Vec<u8>,
    /// Writes since the last sync, in order.
    unsynced: Vec<(u64, Vec<u8>)>,
    /// The directory entry exists now / as of the last directory sync.
    exists: bool,
    exists_synced: bool,
}

fn write_into(buf: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[offset as usize..end].copy_from_slice(data);
}

/// Writes into the empty directory `dir` the files a crash after
/// `ops[..prefix]` could leave under `crash`. Files that exist at the start
/// of the recording must already be in `dir` (start recordings on an empty
/// directory).
pub fn crash_image(ops: &[Op], prefix: usize, crash: Crash, dir: &Path) -> io::Result<()> {
    let mut files: BTreeMap<&str, SimFile> = BTreeMap::new();
    for op in &ops[..prefix.min(ops.len())] {
        match op {
            Op::Create { name, len } => {
                let f = files.entry(name).or_default();
                *f = SimFile {
                    now: vec![0; *len as usize],
                    synced: Vec::new(),
                    unsynced: Vec::new(),
                    exists: true,
                    exists_synced: f.exists_synced,
                };
            }
            Op::Write { name, offset, data } => {
                let f = files.entry(name).or_default();
                write_into(&mut f.now, *offset, data);
                f.unsynced.push((*offset, data.clone()));
            }
            Op::Sync { name } => {
                let f = files.entry(name).or_default();
                f.synced = f.now.clone();
                f.unsynced.clear();
            }
            Op::SyncDir => {
                for f in files.values_mut() {
                    f.exists_synced = f.exists;
                }
            }
            Op::Remove { name } => {
                files.entry(name).or_default().exists = false;
            }
        }
    }
    fs::create_dir_all(dir)?;
    for (name, f) in files {
        let (exists, contents) = match crash {
            Crash::Everything => (f.exists, f.now),
            Crash::DropUnsynced => (f.exists_synced, f.synced),
            Crash::TornLast | Crash::TornFirst => {
                let mut c = f.synced.clone();
                // Reserved length survives (the Create is metadata the
                // later sync made durable, or the file is new and empty).
                if c.len() < f.now.len() {
                    c.resize(f.now.len(), 0);
                }
                let n = f.unsynced.len();
                for (i, (offset, data)) in f.unsynced.iter().enumerate() {
                    let half = data.len() / 2;
                    if crash == Crash::TornLast && i + 1 == n {
                        write_into(&mut c, *offset, &data[..half]);
                    } else if crash == Crash::TornFirst && i == 0 {
                        write_into(&mut c, offset + half as u64, &data[half..]);
                    } else {
                        write_into(&mut c, *offset, data);
                    }
                }
                (f.exists, c)
            }
        };
        if exists {
            fs::write(dir.join(name), contents)?;
        }
    }
    Ok(())
}
