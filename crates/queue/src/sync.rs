//! Making files and directory entries durable.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// fsyncs a directory so creations, renames and removals in it are
/// durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces the file at `path` with `contents` atomically and durably: a
/// temporary file beside it (created with permissions `mode` on Unix, e.g.
/// 0o600 for secrets, so they are never readable by others even briefly),
/// synced, renamed over `path`, then the directory synced. A crash leaves
/// the old file or the new one, never a mix. The directory is created if
/// needed.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = options.open(&tmp)?;
    std::io::Write::write_all(&mut f, contents)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// fsyncs every path of `paths` (files or directories; each distinct path
/// once). Several at once are synced from a few threads: the file
/// system's journal then commits many of them together, where one thread
/// would wait for one journal commit per file.
pub fn sync_paths<'a>(paths: impl Iterator<Item = &'a Path>) -> io::Result<()> {
    let mut seen = HashSet::new();
    let paths: Vec<PathBuf> = paths
        .filter(|p| seen.insert(p.to_path_buf()))
        .map(Path::to_path_buf)
        .collect();
    const THREADS: usize = 8;
    if paths.len() <= 1 {
        return paths.iter().try_for_each(|p| File::open(p)?.sync_all());
    }
    let per = paths.len().div_ceil(THREADS);
    std::thread::scope(|s| {
        let workers: Vec<_> = paths
            .chunks(per)
            .map(|part| s.spawn(move || part.iter().try_for_each(|p| File::open(p)?.sync_all())))
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|_| Err(io::Error::other("fsync thread panicked")))
        })
    })
}
