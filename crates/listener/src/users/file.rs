//! The users file: reading (cached, re-read on change), checking passwords,
//! and adding users atomically.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use postern_session::{PasswordLine, ScramKeys, ScramStore};

use super::name::validate_name;
use super::verify::VerifyPool;

#[derive(Default)]
struct Loaded {
    mtime: Option<SystemTime>,
    entries: HashMap<String, PasswordLine>,
}

/// A users file, cached and re-read when its modification time changes.
///
/// Look-ups are case-insensitive. `alice@D` for one of the
/// [local domains](UsersFile::with_local_domains) also finds the user
/// `alice`, for password checks and for SCRAM keys alike.
pub struct UsersFile {
    path: PathBuf,
    local_domains: Vec<String>,
    loaded: RwLock<Loaded>,
    /// Checked for unknown users, so they cost what known ones do.
    dummy: String,
    pool: VerifyPool,
}

impl std::fmt::Debug for UsersFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsersFile")
            .field("path", &self.path)
            .field("local_domains", &self.local_domains)
            .finish_non_exhaustive()
    }
}

impl UsersFile {
    /// The users file at `path`, read now (a missing file means no users;
    /// malformed lines are skipped with a warning). Password checks share
    /// one argon2 memory area per CPU ([`VerifyPool::per_cpu`]).
    pub fn open(path: &Path) -> UsersFile {
        let users = UsersFile {
            path: path.to_owned(),
            local_domains: Vec::new(),
            loaded: RwLock::new(Loaded::default()),
            dummy: hash_password(b"postern-timing-equaliser").unwrap_or_default(),
            pool: VerifyPool::per_cpu(),
        };
        users.refresh();
        users
    }

    /// The domains at which a plain user `alice` is also `alice@domain`
    /// (case-insensitive, a trailing dot ignored).
    pub fn with_local_domains<S: AsRef<str>>(
        mut self,
        domains: impl IntoIterator<Item = S>,
    ) -> UsersFile {
        self.local_domains = domains
            .into_iter()
            .map(|d| d.as_ref().trim_end_matches('.').to_ascii_lowercase())
            .collect();
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file if its modification time changed. A malformed line
    /// is skipped with a warning; an unreadable file keeps the old set.
    pub fn refresh(&self) {
        let mtime = fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        {
            let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            if loaded.mtime == mtime && mtime.is_some() {
                return;
            }
        }
        let entries = match fs::read_to_string(&self.path) {
            Ok(text) => parse(&text, &self.path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "cannot read the users file; keeping the previous users");
                return;
            }
        };
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        *loaded = Loaded { mtime, entries };
    }

    /// Whether `name` (exactly, case-insensitive) is a user.
    pub fn contains(&self, name: &str) -> bool {
        self.refresh();
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        loaded.entries.contains_key(&name.to_ascii_lowercase())
    }

    /// The line of `name`; `alice@D` for a local domain D also finds the
    /// user `alice`.
    pub fn entry(&self, name: &str) -> Option<PasswordLine> {
        self.refresh();
        let name = name.to_ascii_lowercase();
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        loaded.entries.get(&name).cloned().or_else(|| {
            let (local, domain) = name.split_once('@')?;
            let domain = domain.trim_end_matches('.');
            if self.local_domains.iter().any(|d| d == domain) {
                loaded.entries.get(local).cloned()
            } else {
                None
            }
        })
    }

    /// Checks a password. Slow on purpose (argon2): call it off the async
    /// executor. Unknown users cost the same time as known ones.
    pub fn verify(&self, name: &str, password: &[u8]) -> bool {
        let hash = self.entry(name).map(|e| e.hash);
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.clone());
        let ok = PasswordHash::new(&hash)
            .map(|h| self.pool.verify(password, &h))
            .unwrap_or(false);
        known && ok
    }
}

/// The users' SCRAM keys (`alice@D` for a local domain D finds `alice`, as
/// for [`UsersFile::verify`]).
impl ScramStore for UsersFile {
    fn scram_keys(&self, authcid: &str) -> Option<ScramKeys> {
        self.entry(authcid)?.scram
    }
}

fn parse(text: &str, path: &Path) -> HashMap<String, PasswordLine> {
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match PasswordLine::parse(line) {
            Ok(u) if validate_name(&u.name).is_ok() && PasswordHash::new(&u.hash).is_ok() => {
                out.insert(u.name.to_ascii_lowercase(), u);
            }
            _ => tracing::warn!(file = %path.display(), line = n + 1,
                "skipping a malformed users line (expected name:argon2-hash [scram-keys])"),
        }
    }
    out
}

/// An argon2id PHC string for `password`, with a random salt.
pub fn hash_password(password: &[u8]) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
}

/// Adds or replaces `name` (stored lowercase) in the users file at `path`,
/// with an argon2 hash and SCRAM keys of `password`. The file is replaced
/// atomically and readable by its owner only (mode 0600). Returns whether
/// the user existed.
pub fn add_user(path: &Path, name: &str, password: &[u8]) -> io::Result<bool> {
    validate_name(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    if password.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty password (give it on standard input)",
        ));
    }
    let hash = hash_password(password).map_err(|e| io::Error::other(e.to_string()))?;
    let scram = ScramKeys::generate(password, postern_session::DEFAULT_ITERATIONS)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let name = name.to_ascii_lowercase();
    let old = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut existed = false;
    let mut out = String::new();
    for line in old.lines() {
        if line
            .split_once(':')
            .is_some_and(|(n, _)| n.eq_ignore_ascii_case(&name))
        {
            existed = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!("{}\n", PasswordLine::new(name, hash, Some(scram))));
    replace_owner_only(path, out.as_bytes())?;
    Ok(existed)
}

/// Replaces `path` with `contents`: a temporary file of mode 0600 beside
/// it, synced, renamed over it, the directory synced; a crash leaves the
/// old file or the new one, never a torn one, and never a moment where
/// others may read the hashes.
fn replace_owner_only(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("users");
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp)?;
    io::Write::write_all(&mut f, contents)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    // Directories cannot be opened for syncing everywhere (Windows).
    match fs::File::open(dir) {
        Ok(d) => d.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_verify_replace() {
        let dir = std::env::temp_dir().join(format!("postern-users-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("users");
        assert!(!add_user(&path, "Alice", b"s3cret").unwrap());
        let users = UsersFile::open(&path).with_local_domains(["localhost"]);
        assert!(users.verify("alice", b"s3cret"));
        assert!(users.verify("alice@localhost", b"s3cret"));
        assert!(users.verify("ALICE@LOCALHOST.", b"s3cret"));
        assert!(!users.verify("alice@example.com", b"s3cret"));
        let keys = users.scram_keys("alice@localhost").unwrap();
        assert_eq!(keys.iterations, postern_session::DEFAULT_ITERATIONS);
        assert_eq!(
            ScramKeys::derive(b"s3cret", &keys.salt, keys.iterations).unwrap(),
            keys
        );
        assert!(
            fs::read_to_string(&path)
                .unwrap()
                .contains(" SCRAM-SHA-256$10000:")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!users.verify("alice", b"wrong"));
        assert!(!users.verify("bob", b"s3cret"));
        assert!(users.contains("ALICE"));
        // Replace the password; mtime granularity may hide the change, so
        // force a re-read by reopening.
        assert!(add_user(&path, "alice", b"other").unwrap());
        let users = UsersFile::open(&path);
        assert!(users.verify("alice", b"other"));
        assert!(!users.verify("alice", b"s3cret"));
        assert!(
            !users.verify("alice@localhost", b"other"),
            "no local domains"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let dir = std::env::temp_dir().join(format!("postern-users-bad-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("users");
        add_user(&path, "bob", b"pw").unwrap();
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str("# a comment\n\nno-colon-here\nbad name:$argon2id$x\n");
        fs::write(&path, text).unwrap();
        let users = UsersFile::open(&path);
        assert!(users.verify("bob", b"pw"));
        assert!(!users.contains("no-colon-here"));
        let _ = fs::remove_dir_all(&dir);
    }
}
