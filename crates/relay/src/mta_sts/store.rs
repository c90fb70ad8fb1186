//! The policy cache on disk: one file per domain, in
//! [`CachedPolicy::to_stored`]'s form, so the protection of an enforced
//! policy survives a restart (a memory-only cache forgets it, and the first
//! connection after every restart is open to a downgrade).
//!
//! Writes are atomic (a temporary file, synced, renamed over the old one,
//! then the directory synced): a crash leaves the old entry or the new
//! one, never half of one. The directory and files are readable by the
//! server's user only. A file that cannot be read back is no entry: the
//! next mail for the domain fetches again.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::cache::CachedPolicy;

/// The on-disk cache.
#[derive(Debug, Clone)]
pub struct PolicyCache {
    dir: PathBuf,
    read_only: bool,
}

impl PolicyCache {
    /// A cache in `dir`, created (owner-only) when missing.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self {
            dir,
            read_only: false,
        })
    }

    /// The cache in `dir`, read and never written nor created: for tools
    /// run beside a server that owns it (`postern-mta explain --live`), so
    /// nothing they fetch lands in the server's cache under another user.
    pub fn read_only(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            read_only: true,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `domain`, or `None` for a name that is no plain DNS
    /// name (letters, digits, `-` and `.`, not starting with `.`): such a
    /// name is never turned into a path.
    pub fn path(&self, domain: &str) -> Option<PathBuf> {
        let name = domain.trim_end_matches('.').to_ascii_lowercase();
        let plain = !name.is_empty()
            && name.len() <= 253
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        plain.then(|| self.dir.join(format!("{name}.sts")))
    }

    /// The cached entry of `domain`, if there is a readable one.
    pub fn load(&self, domain: &str) -> Option<CachedPolicy> {
        let text = fs::read_to_string(self.path(domain)?).ok()?;
        CachedPolicy::from_stored(&text)
    }

    /// Stores `entry` for `domain`, replacing the old one atomically.
    pub fn store(&self, domain: &str, entry: &CachedPolicy) -> io::Result<()> {
        if self.read_only {
            return Ok(());
        }
        let path = self.path(domain).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{domain:?} is not a plain domain name"),
            )
        })?;
        let tmp = path.with_extension(format!("sts.tmp{}", std::process::id()));
        let written = (|| {
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp)?;
            file.write_all(entry.to_stored().as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            // The rename is durable once the directory is.
            fs::File::open(&self.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mta_sts::StsPolicy;

    #[test]
    fn entries_survive_reopening_and_names_never_escape_the_directory() {
        let dir = std::env::temp_dir().join(format!("postern-sts-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let cache = PolicyCache::open(&dir).unwrap();
        let policy = StsPolicy::parse(
            b"version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 86400\n",
        )
        .unwrap();
        let entry = CachedPolicy::new("20260101", policy, 1_800_000_000);
        cache.store("Example.ORG.", &entry).unwrap();
        let again = PolicyCache::open(&dir).unwrap();
        assert_eq!(again.load("example.org"), Some(entry));
        assert_eq!(again.load("example.net"), None);
        for bad in ["../etc/passwd", "a/b", ".hidden", "", "ex ample.org"] {
            assert_eq!(cache.path(bad), None, "{bad}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&cache.path("example.org").unwrap()), 0o600);
        }
        // A damaged file is no entry.
        fs::write(cache.path("example.org").unwrap(), "garbage").unwrap();
        assert_eq!(cache.load("example.org"), None);
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_read_only_cache_reads_and_never_writes() {
        let dir = std::env::temp_dir().join(format!("postern-sts-ro-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let policy = StsPolicy::parse(
            b"version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 86400\n",
        )
        .unwrap();
        let entry = CachedPolicy::new("1", policy, 1_800_000_000);
        // Not even the directory is created.
        let ro = PolicyCache::read_only(&dir);
        ro.store("example.org", &entry).unwrap();
        assert!(!dir.exists());
        // What the owner wrote is read.
        PolicyCache::open(&dir)
            .unwrap()
            .store("example.org", &entry)
            .unwrap();
        assert_eq!(ro.load("example.org"), Some(entry.clone()));
        let newer = CachedPolicy::new("2", entry.policy.clone(), 1_800_000_100);
        ro.store("example.org", &newer).unwrap();
        assert_eq!(ro.load("example.org"), Some(entry));
        let _ = fs::remove_dir_all(dir);
    }
}
