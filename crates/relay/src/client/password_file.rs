//! Reading a smart host's password from a file that only its owner can
//! open, so configuration files (often world-readable, often in version
//! control) never hold the secret.

use std::io;
use std::path::{Path, PathBuf};

use super::config::RelayCredentials;

/// Why a password file was refused. Names the file; never holds or prints
/// its content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordFileError {
    /// The file could not be read (missing, not ours, not a file).
    #[error("cannot read password file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Users other than its owner may access it (mode `& 0o077 != 0`).
    #[error(
        "password file {} is accessible by group or others (mode {:03o}); it must be readable by the server user only: chmod 600 {}",
        path.display(),
        mode,
        path.display()
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Its first line is empty, or it is not UTF-8 text.
    #[error("password file {} holds no password (its first line is empty or not UTF-8)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

impl PasswordFileError {
    /// The file concerned.
    pub fn path(&self) -> &Path {
        match self {
            PasswordFileError::Read { path, .. }
            | PasswordFileError::Permissions { path, .. }
            | PasswordFileError::Empty { path } => path,
        }
    }
}

/// Checks that only the file's owner may access it. Unix only: elsewhere
/// there are no mode bits to check and the platform's ACLs decide.
fn check_mode(path: &Path, metadata: &std::fs::Metadata) -> Result<(), PasswordFileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(PasswordFileError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (path, metadata);
    Ok(())
}

impl RelayCredentials {
    /// Credentials for `username` with the password on the first line of
    /// `path` (its line ending and anything after it are ignored).
    ///
    /// The file must be a regular file that group and others cannot access
    /// (on Unix, mode `0600` or `0400`): a readable secret is refused, with
    /// an error naming the file, rather than used. The permissions are
    /// checked on the opened file, so a file swapped in between cannot slip
    /// through.
    pub fn from_password_file(
        username: impl Into<String>,
        path: impl AsRef<Path>,
    ) -> Result<RelayCredentials, PasswordFileError> {
        use std::io::Read;
        let path = path.as_ref();
        let read = |source| PasswordFileError::Read {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(read)?;
        let metadata = file.metadata().map_err(read)?;
        if !metadata.is_file() {
            return Err(read(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        check_mode(path, &metadata)?;
        // A password is short; a bound keeps a wrong path (a log, a
        // device) from being read whole.
        let mut bytes = Vec::new();
        file.by_ref()
            .take(64 * 1024)
            .read_to_end(&mut bytes)
            .map_err(read)?;
        let empty = || PasswordFileError::Empty {
            path: path.to_owned(),
        };
        let text = String::from_utf8(bytes).map_err(|_| empty())?;
        let password = text.lines().next().unwrap_or("");
        if password.is_empty() {
            return Err(empty());
        }
        Ok(RelayCredentials::new(username, password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, content: &str, mode: u32) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("postern-pwfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = mode;
        path
    }

    #[test]
    fn reads_the_first_line_of_an_owner_only_file() {
        let path = temp("ok", "s3cret\r\nignored\n", 0o600);
        let c = RelayCredentials::from_password_file("relay", &path).unwrap();
        assert_eq!(c, RelayCredentials::new("relay", "s3cret"));
        // Debug never shows the secret.
        assert!(!format!("{c:?}").contains("s3cret"), "{c:?}");
        assert!(format!("{c:?}").contains("<redacted>"));
    }

    #[cfg(unix)]
    #[test]
    fn group_or_world_readable_files_are_refused_by_name() {
        for mode in [0o640, 0o604, 0o660, 0o644, 0o610] {
            let path = temp(&format!("m{mode:o}"), "s3cret\n", mode);
            let e = RelayCredentials::from_password_file("relay", &path).unwrap_err();
            assert!(
                matches!(e, PasswordFileError::Permissions { mode: m, .. } if m == mode),
                "{e}"
            );
            let text = e.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains("readable by the server user only"), "{text}");
            assert!(!text.contains("s3cret"));
            assert_eq!(e.path(), path);
        }
        assert!(RelayCredentials::from_password_file("u", temp("ro", "x\n", 0o400)).is_ok());
    }

    #[test]
    fn missing_and_empty_files_are_errors_naming_the_file() {
        let e = RelayCredentials::from_password_file("u", "/nonexistent/postern/pw").unwrap_err();
        assert!(matches!(e, PasswordFileError::Read { .. }));
        assert!(e.to_string().contains("/nonexistent/postern/pw"), "{e}");
        for (name, content) in [("empty", ""), ("blank", "\nsecond\n")] {
            let path = temp(name, content, 0o600);
            let e = RelayCredentials::from_password_file("u", &path).unwrap_err();
            assert!(matches!(e, PasswordFileError::Empty { .. }), "{e}");
        }
        let dir = std::env::temp_dir();
        let e = RelayCredentials::from_password_file("u", &dir).unwrap_err();
        assert!(matches!(e, PasswordFileError::Read { .. }), "{e}");
    }
}
