//! A self-signed certificate for development and first starts (feature
//! `self-signed`): generated into a directory, then reused, so a server
//! configured with "self-signed" speaks TLS out of the box and keeps the
//! same certificate across restarts. Clients cannot verify it; give
//! production listeners a real certificate ([`CertSpec::files`](crate::CertSpec::files)).
//!
//! It is valid [`SELF_SIGNED_VALIDITY`] (90 days, the lifetime ACME CAs
//! issue), never decades: testssl flags ten years and more, and a key
//! should not live longer than its certificate is meant to. It is made
//! again when fewer than [`SELF_SIGNED_RENEW_BEFORE`] are left, or when an
//! older version made it valid from 1975 to 4096 (rcgen's default).

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::Validity;

const DAY: Duration = Duration::from_secs(86_400);

/// How long a generated self-signed certificate is valid: 90 days.
pub const SELF_SIGNED_VALIDITY: Duration = Duration::from_secs(90 * 86_400);

/// A self-signed certificate with less than this left is made again.
pub const SELF_SIGNED_RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

/// The files of a self-signed certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SelfSignedFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its key (PEM, PKCS#8), mode 0600.
    pub key: PathBuf,
}

impl SelfSignedFiles {
    /// The files in `dir`: `self-signed.pem` and `self-signed.key`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            cert: dir.join("self-signed.pem"),
            key: dir.join("self-signed.key"),
        }
    }

    /// Why the certificate in these files is made again at `now`; `None`
    /// while it is kept.
    pub fn regeneration(&self, now: SystemTime) -> Option<Regenerate> {
        if !(self.cert.exists() && self.key.exists()) {
            return Some(Regenerate::Missing);
        }
        let validity = match fs::read(&self.cert).map(|pem| Validity::from_pem(&pem)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Some(Regenerate::Unreadable(e.to_string())),
            Err(e) => return Some(Regenerate::Unreadable(e.to_string())),
        };
        let left = validity.remaining(now);
        if left < SELF_SIGNED_RENEW_BEFORE {
            return Some(Regenerate::ExpiresSoon { left });
        }
        if validity.lifetime() > SELF_SIGNED_VALIDITY + DAY {
            return Some(Regenerate::TooLong {
                lifetime: validity.lifetime(),
            });
        }
        None
    }
}

/// Why a self-signed certificate on disk is made again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Regenerate {
    /// There is none yet (or only half of the pair).
    Missing,
    /// Its dates cannot be read; why.
    Unreadable(String),
    /// Fewer than [`SELF_SIGNED_RENEW_BEFORE`] are left (zero: expired).
    ExpiresSoon {
        /// The time left.
        left: Duration,
    },
    /// Made by an older version, valid far longer than
    /// [`SELF_SIGNED_VALIDITY`].
    TooLong {
        /// Its lifetime.
        lifetime: Duration,
    },
}

impl fmt::Display for Regenerate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = |d: &Duration| d.as_secs() / 86_400;
        match self {
            Self::Missing => f.write_str("none yet"),
            Self::Unreadable(e) => write!(f, "unreadable: {e}"),
            Self::ExpiresSoon { left } => write!(f, "{} days left", days(left)),
            Self::TooLong { lifetime } => write!(
                f,
                "valid {} days, longer than {}",
                days(lifetime),
                days(&SELF_SIGNED_VALIDITY)
            ),
        }
    }
}

/// The certificate in `dir` ([`SelfSignedFiles::in_dir`]), made for
/// `names` unless a usable one is there (see [`SelfSignedFiles::regeneration`]).
/// Each file is written to a temporary name, synced and renamed, then the
/// directory is synced, so a crash never leaves a half-written key that a
/// restart would reuse.
pub fn ensure_self_signed(dir: &Path, names: &[String]) -> io::Result<SelfSignedFiles> {
    ensure_self_signed_at(dir, names, SystemTime::now())
}

/// [`ensure_self_signed`] as if it were `now`.
pub fn ensure_self_signed_at(
    dir: &Path,
    names: &[String],
    now: SystemTime,
) -> io::Result<SelfSignedFiles> {
    let files = SelfSignedFiles::in_dir(dir);
    let Some(reason) = files.regeneration(now) else {
        return Ok(files);
    };
    tracing::info!(cert = %files.cert.display(), %reason, "generating a self-signed certificate valid 90 days");
    fs::create_dir_all(dir)?;
    let (cert, key) = generate_self_signed_at(names, now)?;
    let write = |path: &Path, text: &str, private: bool| -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        let mut f = fs::File::create(&tmp)?;
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        #[cfg(not(unix))]
        let _ = private;
        io::Write::write_all(&mut f, text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write(&files.key, &key, true)?;
    write(&files.cert, &cert, false)?;
    fs::File::open(dir)?.sync_all()?;
    Ok(files)
}

/// A fresh self-signed certificate and key (PEM) for `names`, the first
/// being its common name, valid [`SELF_SIGNED_VALIDITY`] from now.
pub fn generate_self_signed(names: &[String]) -> io::Result<(String, String)> {
    generate_self_signed_at(names, SystemTime::now())
}

/// [`generate_self_signed`] as if it were `now`.
pub fn generate_self_signed_at(names: &[String], now: SystemTime) -> io::Result<(String, String)> {
    // An hour back, for clients whose clock is a little behind.
    let start = now.checked_sub(Duration::from_secs(3600)).unwrap_or(now);
    generate_self_signed_valid(names, start, now + SELF_SIGNED_VALIDITY)
}

/// A self-signed certificate and key (PEM) for `names`, valid from
/// `not_before` to `not_after`.
pub fn generate_self_signed_valid(
    names: &[String],
    not_before: SystemTime,
    not_after: SystemTime,
) -> io::Result<(String, String)> {
    let key = rcgen::KeyPair::generate().map_err(io::Error::other)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(io::Error::other)?;
    params.not_before = time::OffsetDateTime::from(not_before);
    params.not_after = time::OffsetDateTime::from(not_after);
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        names.first().map_or("localhost", String::as_str),
    );
    let cert = params.self_signed(&key).map_err(io::Error::other)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("postern-self-signed-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn names() -> Vec<String> {
        vec!["mx.example.org".to_owned(), "localhost".to_owned()]
    }

    fn validity(path: &Path) -> Validity {
        Validity::from_pem(&fs::read(path).expect("cert")).expect("validity")
    }

    #[test]
    fn valid_90_days_with_an_owner_only_key_then_reused() {
        let dir = temp("90");
        let now = SystemTime::now();
        let first = ensure_self_signed_at(&dir, &names(), now).expect("generated");
        let pem = fs::read_to_string(&first.cert).expect("cert");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let v = validity(&first.cert);
        // Backdated one hour for clients whose clock is behind.
        assert!(
            v.lifetime() >= 90 * DAY && v.lifetime() <= 90 * DAY + Duration::from_secs(3601),
            "{v}"
        );
        assert!(v.not_before <= now && !v.is_expired(now), "{v}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&first.key).expect("key").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = ensure_self_signed(&dir, &names()).expect("reused");
        assert_eq!(fs::read_to_string(&again.cert).expect("cert"), pem);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn kept_while_more_than_30_days_are_left_and_made_again_after() {
        let dir = temp("renew");
        let now = SystemTime::now();
        let files = ensure_self_signed_at(&dir, &names(), now).expect("generated");
        let first = fs::read(&files.cert).expect("cert");
        let first_key = fs::read(&files.key).expect("key");

        // 59 days on: 31 left, kept.
        ensure_self_signed_at(&dir, &names(), now + 59 * DAY).expect("kept");
        assert_eq!(fs::read(&files.cert).expect("cert"), first);

        // 61 days on: 29 left (< 30), a new certificate and a new key.
        let later = now + 61 * DAY;
        assert!(matches!(
            files.regeneration(later),
            Some(Regenerate::ExpiresSoon { .. })
        ));
        assert!(
            files
                .regeneration(later)
                .unwrap()
                .to_string()
                .ends_with(" days left")
        );
        ensure_self_signed_at(&dir, &names(), later).expect("made again");
        assert_ne!(fs::read(&files.cert).expect("cert"), first);
        assert_ne!(fs::read(&files.key).expect("key"), first_key);
        assert!(validity(&files.cert).remaining(later) > 89 * DAY);

        // An expired one is made again too.
        let much_later = later + 200 * DAY;
        ensure_self_signed_at(&dir, &names(), much_later).expect("made again");
        assert!(!validity(&files.cert).is_expired(much_later));
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_decades_long_certificate_from_an_older_version_is_replaced() {
        let dir = temp("old");
        fs::create_dir_all(&dir).expect("dir");
        let now = SystemTime::now();
        // What earlier versions generated: rcgen's default, 1975 to 4096.
        let (cert, key) = generate_self_signed_valid(
            &names(),
            SystemTime::UNIX_EPOCH + 5 * 365 * DAY,
            now + 2000 * 365 * DAY,
        )
        .expect("generated");
        let files = SelfSignedFiles::in_dir(&dir);
        fs::write(&files.cert, cert).expect("cert");
        fs::write(&files.key, key).expect("key");
        assert!(matches!(
            files.regeneration(now),
            Some(Regenerate::TooLong { .. })
        ));
        ensure_self_signed_at(&dir, &names(), now).expect("replaced");
        assert!(validity(&files.cert).lifetime() <= 91 * DAY);
        assert_eq!(files.regeneration(now), None);
        let _ = fs::remove_dir_all(dir);
    }
}
