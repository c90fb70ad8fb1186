//! Test support for Postern's interop tests with real peers (swaks, openssl,
//! Postfix, Python's smtplib/aiosmtpd, testssl.sh...).
//!
//! The rule for a missing peer: a plain `cargo test` prints a loud `SKIPPED`
//! line and the test returns early; with `POSTERN_REQUIRE_PEERS=1` (set by
//! `.ci/run`, which installs every peer) a missing peer fails the test.
//!
//! ```
//! use postern_testkit::{free_port, peer};
//!
//! if let Some(openssl) = peer("openssl") {
//!     assert!(openssl.is_file());
//! }
//! let port = free_port();
//! assert!(port > 0);
//! ```

mod postgres;

pub use postgres::{PG_USER, Postgres, postgres_bin};

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

mod pebble;
pub use pebble::Pebble;

/// The environment variable that turns a missing peer into a failure.
pub const REQUIRE_PEERS: &str = "POSTERN_REQUIRE_PEERS";

/// True when missing peers must fail tests (CI).
pub fn peers_required() -> bool {
    std::env::var_os(REQUIRE_PEERS).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Reports a missing peer: panics when peers are required, otherwise prints
/// a loud SKIPPED line to stderr (shown by `cargo test`) and stdout.
pub fn missing(what: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_owned();
    if peers_required() {
        panic!("{test}: required peer {what} is not installed ({REQUIRE_PEERS} is set)");
    }
    eprintln!(
        "SKIPPED: {test}: peer {what} is not installed; set {REQUIRE_PEERS}=1 to make this an error"
    );
    println!("SKIPPED: {test}: peer {what} is not installed");
}

/// Finds an executable on PATH or in the sbin directories (Postfix's
/// binaries live there). Returns `None` after [`missing`] when absent.
pub fn peer(name: &str) -> Option<PathBuf> {
    match find_executable(name) {
        Some(p) => Some(p),
        None => {
            missing(name);
            None
        }
    }
}

/// Finds an executable without reporting anything.
pub fn find_executable(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/sbin",
                "/sbin",
                "/usr/local/sbin",
                "/usr/lib/postfix/sbin",
            ]
            .iter()
            .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The Python interpreter that has `module` importable: `$POSTERN_PYTHON`
/// when set (CI points it at a venv), else `python3`. `None` after
/// [`missing`] when the module cannot be imported.
pub fn python_with(module: &str) -> Option<PathBuf> {
    let python = std::env::var_os("POSTERN_PYTHON")
        .map(PathBuf::from)
        .or_else(|| find_executable("python3"));
    let ok = python.as_ref().is_some_and(|py| {
        Command::new(py)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if ok {
        python
    } else {
        missing(&format!("python module {module}"));
        None
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released), never one this
/// process was given before: the kernel may hand the same released port
/// out again, and a server given it for two listeners cannot start (a CI
/// run saw exactly that).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("binding 127.0.0.1:0 works");
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if given.insert(port) {
            return port;
        }
    }
    panic!("no port on 127.0.0.1 this process was not given already");
}

/// Waits until something accepts connections on `addr`, up to `timeout`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A child process killed (and reaped) when dropped, so a failing test never
/// leaves a server running.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Spawns `command`, panicking with the command line if it cannot start.
    pub fn spawn(command: &mut Command) -> Self {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Self(child)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A development PKI: a CA and a leaf certificate signed by it, as PEM.
#[derive(Debug, Clone)]
pub struct DevPki {
    /// The CA certificate (the trust anchor).
    pub ca_pem: String,
    /// The leaf certificate.
    pub cert_pem: String,
    /// The leaf's private key (PKCS#8).
    pub key_pem: String,
}

/// Makes a CA and a leaf certificate for `names` (DNS names or IP addresses).
pub fn dev_pki(names: &[&str]) -> DevPki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("key generation works");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("empty SAN list");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Postern test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA self-signs");
    let leaf_key = KeyPair::generate().expect("key generation works");
    let mut leaf_params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("valid subject alternative names");
    leaf_params.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("localhost"),
    );
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("CA signs the leaf");
    DevPki {
        ca_pem: ca.pem(),
        cert_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
    }
}

/// Writes `pki` into `dir` as `ca.pem`, `cert.pem` and `key.pem`.
pub fn write_pki(pki: &DevPki, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem)?;
    std::fs::write(dir.join("cert.pem"), &pki.cert_pem)?;
    std::fs::write(dir.join("key.pem"), &pki.key_pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The throwaway server starts, answers, survives a crash and a
    /// restart with its data, and goes away when dropped.
    #[test]
    fn postgres_starts_and_restarts() {
        let Some(mut pg) = Postgres::start() else {
            return;
        };
        pg.create_db("kit");
        pg.psql("kit", "CREATE TABLE t (v int); INSERT INTO t VALUES (7)");
        pg.crash();
        pg.start_server();
        assert_eq!(pg.psql("kit", "SELECT v FROM t"), "7");
        let dir = pg.socket_dir().to_owned();
        assert!(dir.join(format!(".s.PGSQL.{}", pg.port())).exists());
        drop(pg);
        assert!(!dir.exists());
    }

    #[test]
    fn dev_pki_is_pem() {
        let pki = dev_pki(&["localhost", "127.0.0.1"]);
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.key_pem.contains("PRIVATE KEY"));
        assert_ne!(pki.ca_pem, pki.cert_pem);
    }

    #[test]
    fn free_ports_are_bindable() {
        let port = free_port();
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    }

    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }
}

/// An SMTP client over pyOpenSSL, whose bundled OpenSSL (3.5 or newer)
/// offers the post-quantum hybrid X25519MLKEM768: a TLS stack with ML-KEM
/// that Postern did not write. Run it with [`pq_client`].
pub const PQ_SMTP_CLIENT: &str = include_str!("data/pq_smtp_client.py");

/// An implicit-TLS SMTP sink over pyOpenSSL (see [`PQ_SMTP_CLIENT`]):
/// the ML-KEM-capable server of the relay's key-exchange tests. Run it
/// with `python -c PQ_SMTP_SERVER PORT CERT KEY LOG`; it appends
/// `group=... version=...` per handshake, then each command, to LOG.
pub const PQ_SMTP_SERVER: &str = include_str!("data/pq_smtp_server.py");

/// How [`pq_client`] starts TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PqMode {
    /// EHLO, STARTTLS, then the handshake.
    StartTls,
    /// The handshake first (port 465 style).
    Implicit,
}

/// The Python that can import pyOpenSSL with an ML-KEM-capable OpenSSL,
/// or `None` after [`missing`].
pub fn pq_python() -> Option<PathBuf> {
    let python = python_with("OpenSSL")?;
    // Debian's python3-openssl links the system OpenSSL 3.0, which has no
    // ML-KEM; the wheel's bundled one does (3.5+).
    let probe = "from OpenSSL import SSL; v = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).split()[1]; \
                 import sys; sys.exit(0 if tuple(int(x) for x in v.decode().split('.')[:2]) >= (3, 5) else 1)";
    let ok = Command::new(&python)
        .args(["-c", probe])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(python)
    } else {
        missing("pyOpenSSL with OpenSSL 3.5 or newer (ML-KEM)");
        None
    }
}

/// Runs [`PQ_SMTP_CLIENT`] against `addr`: the handshake, EHLO, and (with
/// `rcpt`) one message, then QUIT. Its output starts with `group=...`
/// after the handshake. Bounded to 30 seconds.
pub fn pq_client(
    python: &Path,
    addr: SocketAddr,
    mode: PqMode,
    server_name: &str,
    rcpt: Option<&str>,
) -> std::io::Result<std::process::Output> {
    let mode = match mode {
        PqMode::StartTls => "starttls",
        PqMode::Implicit => "implicit",
    };
    let mut cmd = Command::new(python);
    // With -c, sys.argv[0] is "-c" and the arguments follow.
    cmd.args(["-c", PQ_SMTP_CLIENT])
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .args([mode, server_name]);
    if let Some(r) = rcpt {
        cmd.arg(r);
    }
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn()?;
    // The output is a few lines, far below a pipe's buffer, so polling
    // cannot block the child.
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output()
}
