//! A read-only look at a log another process may be writing: for tools and
//! tests that inspect a running queue without owning it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::config::LogConfig;
use super::error::LogError;
use super::io::{LogIo, Preallocation, SegmentIo};
use super::record::{MessageKey, RecordKind, StoredRecord, encoded_len, verify_read};
use super::recover;

/// Reads every live, undamaged message of the log in `dir` without
/// writing anything: recovery runs over a view whose writes, removals and
/// syncs do nothing, so a torn tail (or the group the owner is writing
/// right now) is left out, not cut. Returns each message's records of the
/// kinds `want` accepts, in key order.
pub fn snapshot(
    dir: &Path,
    want: impl Fn(RecordKind) -> bool,
) -> Result<Vec<(MessageKey, Vec<StoredRecord>)>, LogError> {
    let io = ReadOnlyIo {
        dir: dir.to_owned(),
    };
    let recovered = recover::recover(&io, &LogConfig::default())?;
    let index = recovered.index;
    let mut keys: Vec<MessageKey> = index.messages.keys().copied().collect();
    keys.sort();
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let m = &index.messages[&key];
        if m.damage.is_some() {
            continue;
        }
        let mut records = Vec::new();
        for (&origin, loc) in m.records.iter().filter(|(_, l)| want(l.kind)) {
            let Some(seg) = index.segments.get(&loc.seg) else {
                continue;
            };
            let mut buf = vec![0u8; encoded_len(loc.len as usize)];
            seg.file
                .read_at(&mut buf, loc.offset)
                .map_err(|source| LogError::Io {
                    op: "read",
                    path: dir.to_owned(),
                    source,
                })?;
            if let Some(payload) = verify_read(&buf, loc.lsn) {
                records.push(StoredRecord {
                    kind: loc.kind,
                    payload: payload.to_vec(),
                    lsn: origin,
                });
            }
        }
        out.push((key, records));
    }
    Ok(out)
}

/// A directory seen read-only: changes are dropped.
struct ReadOnlyIo {
    dir: PathBuf,
}

struct ReadOnlySegment(File);

impl LogIo for ReadOnlyIo {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn create(&self, _: &str, _: u64, _: Preallocation) -> io::Result<Arc<dyn SegmentIo>> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "read-only snapshot",
        ))
    }

    fn open(&self, name: &str) -> io::Result<Arc<dyn SegmentIo>> {
        Ok(Arc::new(ReadOnlySegment(File::open(self.dir.join(name))?)))
    }

    fn remove(&self, _: &str) -> io::Result<()> {
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl SegmentIo for ReadOnlySegment {
    fn file_len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }

    fn write_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        Ok(())
    }
}
