//! A self-signed certificate for development and first starts (feature
//! `self-signed`): generated once into a directory, then reused, so a
//! server configured with "self-signed" speaks TLS out of the box and keeps
//! the same certificate across restarts. Clients cannot verify it; give
//! production listeners a real certificate ([`CertSpec::files`](crate::CertSpec::files)).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The files of a self-signed certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SelfSignedFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its key (PEM, PKCS#8), mode 0600.
    pub key: PathBuf,
}

/// The certificate in `dir` (`self-signed.pem`, `self-signed.key`), made
/// for `names` unless both files are already there. Each file is written
/// to a temporary name, synced and renamed, then the directory is synced,
/// so a crash never leaves a half-written key that a restart would reuse.
pub fn ensure_self_signed(dir: &Path, names: &[String]) -> io::Result<SelfSignedFiles> {
    let files = SelfSignedFiles {
        cert: dir.join("self-signed.pem"),
        key: dir.join("self-signed.key"),
    };
    if files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    fs::create_dir_all(dir)?;
    let (cert, key) = generate_self_signed(names)?;
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
/// being its common name.
pub fn generate_self_signed(names: &[String]) -> io::Result<(String, String)> {
    let key = rcgen::KeyPair::generate().map_err(io::Error::other)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(io::Error::other)?;
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

    #[test]
    fn made_once_then_reused() {
        let dir = std::env::temp_dir().join(format!("postern-self-signed-{}", std::process::id()));
        let names = vec!["mx.example.org".to_owned()];
        let first = ensure_self_signed(&dir, &names).expect("generated");
        let pem = fs::read_to_string(&first.cert).expect("cert");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&first.key).expect("key").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = ensure_self_signed(&dir, &names).expect("reused");
        assert_eq!(fs::read_to_string(&again.cert).expect("cert"), pem);
        let _ = fs::remove_dir_all(dir);
    }
}
