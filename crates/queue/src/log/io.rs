//! The file operations the log performs, behind a small trait.
//!
//! Every write, sync, create and remove of the log goes through [`LogIo`]
//! and [`SegmentIo`], so a test can record the exact sequence of a workload
//! (see [`super::recorder`]) and replay any prefix of it as a crash image.
//! [`FsIo`] is the real implementation on a directory.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a new segment's space is reserved before records are written to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Preallocation {
    /// `fallocate(2)` the whole segment, then overwrite it with zeros, then
    /// `fsync`. Appends are then overwrites of initialised blocks, so each
    /// commit's `fdatasync` writes only data, never metadata: the fast path
    /// the store is built for. Costs one sequential write of the segment,
    /// done in the background before the segment is needed.
    ZeroFill,
    /// `fallocate(2)` only. The blocks are reserved but "unwritten": the
    /// first write to each one converts the extent, which the file system
    /// journals, so `fdatasync` also commits metadata (ext4, XFS).
    Fallocate,
    /// `ftruncate` only: a sparse file, allocated as it is written (what
    /// `std::fs::File::set_len` does). Used where `fallocate` is missing.
    Sparse,
}

/// A directory of segment files.
///
/// Names are plain file names (no separators). Implementations must be
/// usable from several threads.
pub trait LogIo: Send + Sync + 'static {
    /// The names of the files in the directory.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Creates a new file `name` (failing if it exists) and reserves `len`
    /// bytes as `how` says.
    fn create(&self, name: &str, len: u64, how: Preallocation) -> io::Result<Arc<dyn SegmentIo>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, name: &str) -> io::Result<Arc<dyn SegmentIo>>;
    /// Removes file `name`.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes creations and removals in the directory durable (`fsync` of
    /// the directory).
    fn sync_dir(&self) -> io::Result<()>;
    /// The path of `name`, for messages.
    fn path(&self, name: &str) -> PathBuf;
}

/// One open segment file.
pub trait SegmentIo: Send + Sync {
    /// The file's length.
    fn file_len(&self) -> io::Result<u64>;
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// `fdatasync`: the data written so far (and the metadata needed to
    /// read it back) is durable when this returns.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: data and all metadata durable.
    fn sync_all(&self) -> io::Result<()>;
}

/// [`LogIo`] on a real directory.
#[derive(Debug)]
pub struct FsIo {
    dir: PathBuf,
}

impl FsIo {
    /// The directory `dir`, created (and its parent's entry synced) if it
    /// does not exist.
    pub fn new(dir: impl AsRef<Path>) -> io::Result<FsIo> {
        let dir = dir.as_ref().to_owned();
        if !dir.is_dir() {
            fs::create_dir_all(&dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(parent)?.sync_all()?;
            }
        }
        Ok(FsIo { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl LogIo for FsIo {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn create(&self, name: &str, len: u64, how: Preallocation) -> io::Result<Arc<dyn SegmentIo>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.dir.join(name))?;
        preallocate(&file, len, how)?;
        Ok(Arc::new(FsSegment { file }))
    }

    fn open(&self, name: &str) -> io::Result<Arc<dyn SegmentIo>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(name))?;
        Ok(Arc::new(FsSegment { file }))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.dir.join(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Reserves `len` bytes of `file` as `how` says.
pub(crate) fn preallocate(file: &File, len: u64, how: Preallocation) -> io::Result<()> {
    match how {
        Preallocation::Sparse => file.set_len(len),
        Preallocation::Fallocate => fallocate(file, len),
        Preallocation::ZeroFill => {
            fallocate(file, len)?;
            let zeros = vec![0u8; 1 << 20];
            let mut at = 0u64;
            while at < len {
                let n = zeros.len().min((len - at) as usize);
                file.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
            Ok(())
        }
    }
}

/// `fallocate(2)` with mode 0 (allocate and extend the size); on other
/// systems, or file systems that refuse it, a sparse `set_len`.
#[cfg(target_os = "linux")]
fn fallocate(file: &File, len: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => file.set_len(len),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn fallocate(file: &File, len: u64) -> io::Result<()> {
    // No portable fallocate: a sparse file. ZeroFill still initialises the
    // blocks by writing them.
    file.set_len(len)
}

#[derive(Debug)]
struct FsSegment {
    file: File,
}

impl SegmentIo for FsSegment {
    fn file_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }
}
