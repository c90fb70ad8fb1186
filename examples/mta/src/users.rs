//! The users file: one `name:argon2-hash SCRAM-keys` line per user
//! ([`PasswordLine`]), written by `postern-mta user add`, read by AUTH: the
//! argon2 hash checks PLAIN and LOGIN, the salted, iterated SCRAM keys serve
//! SCRAM-SHA-256(-PLUS) (a line from before them serves PLAIN and LOGIN
//! only). Also the mailbox directory: which local addresses exist.
//!
//! A user `alice` is a mailbox at every local domain and authenticates as
//! `alice` (or `alice@` any local domain); `alice@example.org` is a mailbox
//! only there. The file is re-read when its modification time changes, so
//! `user add` takes effect without a restart.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};

use postern_session::{PasswordLine, ScramKeys, ScramStore};

use crate::config::MtaConfig;

/// A user name that cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid user name {0:?}: use letters, digits, '.', '_', '+', '-' and at most one '@domain'"
)]
pub struct BadUserName(pub String);

/// Checks a user name: `local` or `local@domain`, ASCII letters, digits and
/// `._+-`, no leading dot, at most 64 octets before the `@`.
pub fn validate_name(name: &str) -> Result<(), BadUserName> {
    let bad = || BadUserName(name.to_owned());
    let (local, domain) = match name.split_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (name, None),
    };
    let ok_local = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'));
    let ok_domain = domain.is_none_or(|d| {
        !d.is_empty()
            && d.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
    });
    if ok_local && ok_domain {
        Ok(())
    } else {
        Err(bad())
    }
}

#[derive(Default)]
struct Loaded {
    mtime: Option<SystemTime>,
    hashes: HashMap<String, PasswordLine>,
}

/// The users file, cached and re-read when it changes.
pub struct Users {
    path: PathBuf,
    loaded: RwLock<Loaded>,
    dummy: String,
    /// argon2's memory, bounded (see [`crate::verify`]).
    pool: crate::verify::VerifyPool,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users").field("path", &self.path).finish()
    }
}

impl Users {
    /// The users file at `path` (a missing file means no users).
    pub fn open(path: &Path) -> Users {
        let dummy = hash_password(b"postern-timing-equaliser").unwrap_or_default();
        let users = Users {
            path: path.to_owned(),
            loaded: RwLock::new(Loaded::default()),
            dummy,
            pool: crate::verify::VerifyPool::per_cpu(),
        };
        users.refresh();
        users
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
        let hashes = match fs::read_to_string(&self.path) {
            Ok(text) => parse(&text, &self.path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "cannot read the users file; keeping the previous users");
                return;
            }
        };
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        *loaded = Loaded { mtime, hashes };
    }

    /// Whether `name` (exactly, lowercase) is a user.
    pub fn contains(&self, name: &str) -> bool {
        self.refresh();
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        loaded.hashes.contains_key(&name.to_ascii_lowercase())
    }

    /// The entry of `name`; `alice@D` for a local domain D also finds the
    /// user `alice`.
    fn entry(&self, config: &MtaConfig, name: &str) -> Option<PasswordLine> {
        self.refresh();
        let name = name.to_ascii_lowercase();
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        loaded.hashes.get(&name).cloned().or_else(|| {
            let (local, domain) = name.split_once('@')?;
            if config.is_local_domain(domain) {
                loaded.hashes.get(local).cloned()
            } else {
                None
            }
        })
    }

    /// Checks a password. Slow on purpose (argon2): call it off the async
    /// executor. Unknown users cost the same time as known ones. `alice@D`
    /// for a local domain D also matches the user `alice`.
    pub fn verify(&self, config: &MtaConfig, name: &str, password: &[u8]) -> bool {
        let hash = self.entry(config, name).map(|e| e.hash);
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.clone());
        let ok = PasswordHash::new(&hash)
            .map(|h| self.pool.verify(password, &h))
            .unwrap_or(false);
        known && ok
    }

    /// Whether `local@domain` is a mailbox: `postmaster` at every local
    /// domain (RFC 5321 §4.5.1), the domain's configured mailboxes, users
    /// named `local` and users named `local@domain`. `false` for
    /// non-local domains.
    pub fn has_mailbox(&self, config: &MtaConfig, local: &str, domain: &str) -> bool {
        let Some(d) = config.local_domain(domain) else {
            return false;
        };
        let local = local.to_ascii_lowercase();
        if local == "postmaster" || d.mailboxes.contains(&local) {
            return true;
        }
        validate_name(&local).is_ok()
            && (self.contains(&local) || self.contains(&format!("{local}@{}", d.name)))
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
pub fn hash_password(password: &[u8]) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Adds or replaces `name` in the users file at `path` (atomically, mode
/// 0600: [`postern_queue::write_atomically`]). Returns whether the user
/// existed.
pub fn add_user(path: &Path, name: &str, password: &[u8]) -> io::Result<bool> {
    validate_name(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    if password.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty password (give it on standard input)",
        ));
    }
    let hash = hash_password(password).map_err(io::Error::other)?;
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
    postern_queue::write_atomically(path, out.as_bytes(), 0o600)?;
    Ok(existed)
}

/// The mailbox directory local delivery asks: the configuration's local
/// domains and mailboxes, and the users file.
#[derive(Debug, Clone)]
pub struct Mailboxes {
    /// The configuration.
    pub config: Arc<MtaConfig>,
    /// The users.
    pub users: Arc<Users>,
}

/// The users file as SCRAM's key store (`alice@D` for a local domain D
/// finds `alice`, as for PLAIN).
impl ScramStore for Mailboxes {
    fn scram_keys(&self, authcid: &str) -> Option<ScramKeys> {
        self.users.entry(&self.config, authcid)?.scram
    }
}

impl postern_queue::maildir::MailboxDirectory for Mailboxes {
    fn has_mailbox(&self, local: &str, domain: &str) -> bool {
        self.users.has_mailbox(&self.config, local, domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("alice").is_ok());
        assert!(validate_name("alice@example.org").is_ok());
        for bad in ["", "a:b", "a b", ".x", "a/b", "a@b@c", "a@"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn add_verify_replace() {
        let dir = std::env::temp_dir().join(format!("postern-users-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("users");
        let config = MtaConfig::embedded().unwrap();
        assert!(!add_user(&path, "Alice", b"s3cret").unwrap());
        let users = Users::open(&path);
        assert!(users.verify(&config, "alice", b"s3cret"));
        assert!(users.verify(&config, "alice@localhost", b"s3cret"));
        let keys = users
            .entry(&config, "alice@localhost")
            .unwrap()
            .scram
            .unwrap();
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
        assert!(!users.verify(&config, "alice", b"wrong"));
        assert!(!users.verify(&config, "bob", b"s3cret"));
        assert!(users.has_mailbox(&config, "ALICE", "localhost"));
        assert!(users.has_mailbox(&config, "postmaster", "tls.localhost"));
        assert!(!users.has_mailbox(&config, "bob", "localhost"));
        assert!(!users.has_mailbox(&config, "alice", "example.com"));
        // Replace the password; mtime granularity may hide the change, so
        // force a re-read by reopening.
        assert!(add_user(&path, "alice", b"other").unwrap());
        let users = Users::open(&path);
        assert!(users.verify(&config, "alice", b"other"));
        assert!(!users.verify(&config, "alice", b"s3cret"));
        let _ = fs::remove_dir_all(&dir);
    }
}
