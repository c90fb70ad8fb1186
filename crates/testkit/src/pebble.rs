//! Debian's pebble, an RFC 8555 test CA, with its mock DNS
//! (pebble-challtestsrv), all on loopback high ports: the directory over
//! HTTPS with a dev certificate ([`Pebble::ca_file`]), its validation
//! authority resolving every name to 127.0.0.1 (`-dnsserver`; no network)
//! and connecting for http-01 to the port the ACME client's responder
//! listens on (pebble's `httpPort`).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{ChildGuard, dev_pki, free_port, peer, wait_for_port, write_pki};

/// A running pebble and its mock DNS; both stop when dropped.
pub struct Pebble {
    bin: PathBuf,
    _dns: ChildGuard,
    pebble: Option<ChildGuard>,
    dir: PathBuf,
    port: u16,
    dns_port: u16,
}

impl Pebble {
    /// Starts pebble under `dir/pebble`: validation connects to
    /// `127.0.0.1:http_port`, certificates live `validity` seconds. `None`
    /// (after a loud SKIPPED, or a panic with POSTERN_REQUIRE_PEERS=1)
    /// when pebble is not installed.
    pub fn start(dir: &Path, http_port: u16, validity: u64) -> Option<Self> {
        let pebble = peer("pebble")?;
        let chall = peer("pebble-challtestsrv")?;
        let dir = dir.join("pebble");
        fs::create_dir_all(&dir).expect("pebble dir");
        let pki = dev_pki(&["localhost"]);
        write_pki(&pki, &dir).expect("pebble pki");
        let (port, mgmt, dns_port, dns_mgmt) = (free_port(), free_port(), free_port(), free_port());
        let config = format!(
            r#"{{"pebble": {{
                "listenAddress": "127.0.0.1:{port}",
                "managementListenAddress": "127.0.0.1:{mgmt}",
                "certificate": "{cert}",
                "privateKey": "{key}",
                "httpPort": {http_port},
                "tlsPort": {tls_port},
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": {validity}
            }}}}"#,
            cert = dir.join("cert.pem").display(),
            key = dir.join("key.pem").display(),
            tls_port = free_port(),
        );
        fs::write(dir.join("pebble.json"), config).expect("pebble.json");
        // Every A query answers 127.0.0.1; no AAAA, no challenge servers
        // of its own (the client's responder answers http-01).
        let dns = ChildGuard::spawn(
            Command::new(chall)
                .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(["-management", &format!("127.0.0.1:{dns_mgmt}")])
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let mut p = Self {
            bin: pebble,
            _dns: dns,
            pebble: None,
            dir,
            port,
            dns_port,
        };
        p.up();
        Some(p)
    }

    /// Starts pebble (again, after [`Pebble::down`]: a new instance that
    /// knows no accounts).
    pub fn up(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("pebble.log"))
            .expect("pebble.log");
        self.pebble = Some(ChildGuard::spawn(
            Command::new(&self.bin)
                .arg("-config")
                .arg(self.dir.join("pebble.json"))
                .args(["-dnsserver", &format!("127.0.0.1:{}", self.dns_port)])
                // Fast and deterministic: no random validation sleeps, no
                // rejected nonces.
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                // Validate every order, renewals included.
                .env("PEBBLE_AUTHZREUSE", "0")
                .stdout(log.try_clone().expect("pebble.log"))
                .stderr(log),
        ));
        assert!(
            wait_for_port(
                SocketAddr::from(([127, 0, 0, 1], self.port)),
                Duration::from_secs(20)
            ),
            "pebble did not start"
        );
    }

    /// Stops pebble (the mock DNS keeps running).
    pub fn down(&mut self) {
        self.pebble = None;
    }

    /// The ACME directory URL.
    pub fn directory(&self) -> String {
        format!("https://localhost:{}/dir", self.port)
    }

    /// The PEM root of the directory's HTTPS certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}
