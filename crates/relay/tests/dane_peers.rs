//! DANE against real parts (issue 13): the signed test zones served by NSD
//! behind Unbound, validating, started by `scripts/dns-test-servers.sh`,
//! and receiving SMTP peers (aiosmtpd) presenting the certificates the
//! zones' TLSA records name.
//!
//! - The resolver's answers: AD for the signed zone, SERVFAIL for the
//!   bogus one and for the failing TLSA RRset, no AD for the unsigned one.
//! - The TLSA records from DNS, checked against the peers by a verifier we
//!   did not write (`openssl s_client -dane_tlsa_rrdata`) and by ours
//!   (`postern_relay::dane::DaneVerifier`), which must agree.
//!
//! Without the DNS environment (the script's `export` lines) every test is
//! SKIPPED loudly; with POSTERN_REQUIRE_PEERS=1 it fails instead.

// The handshakes need a crypto provider (the default features have one).
#![cfg(any(feature = "aws-lc-rs", feature = "ring"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use postern_relay::dane::{DaneError, DaneVerifier, TlsaRecord, TlsaUsage, UsableTlsa};
use postern_testkit::{ChildGuard, missing, peer, python_with, wait_for_port};
use rustls::pki_types::DnsName;

/// What `scripts/dns-test-servers.sh` exports.
struct DnsEnv {
    resolver: SocketAddr,
    zone: String,
    port: u16,
    cert: PathBuf,
    key: PathBuf,
    bad_cert: PathBuf,
    bad_key: PathBuf,
    tlsa_good: TlsaRecord,
    tlsa_bad: TlsaRecord,
    tlsa_ca: TlsaRecord,
}

fn dns_env() -> Option<DnsEnv> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(resolver) = var("POSTERN_DNS_RESOLVER") else {
        missing(
            "the DNS test servers (POSTERN_DNS_RESOLVER unset: eval \"$(scripts/dns-test-servers.sh)\")",
        );
        return None;
    };
    let get = |name: &str| {
        var(name).unwrap_or_else(|| panic!("{name} unset, but POSTERN_DNS_RESOLVER is set"))
    };
    let record = |name: &str| {
        get(name)
            .parse::<TlsaRecord>()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    Some(DnsEnv {
        resolver: resolver.parse().expect("POSTERN_DNS_RESOLVER is ADDR:PORT"),
        zone: get("POSTERN_DANE_ZONE"),
        port: get("POSTERN_DANE_PORT")
            .parse()
            .expect("POSTERN_DANE_PORT is a port"),
        cert: get("POSTERN_DANE_CERT").into(),
        key: get("POSTERN_DANE_KEY").into(),
        bad_cert: get("POSTERN_DANE_BAD_CERT").into(),
        bad_key: get("POSTERN_DANE_BAD_KEY").into(),
        tlsa_good: record("POSTERN_DANE_TLSA_GOOD"),
        tlsa_bad: record("POSTERN_DANE_TLSA_BAD"),
        tlsa_ca: record("POSTERN_DANE_TLSA_CA"),
    })
}

/// One answer from the validating resolver.
#[derive(Debug)]
struct Answer {
    status: String,
    authenticated: bool,
    records: Vec<String>,
}

impl DnsEnv {
    fn name(&self, label: &str) -> String {
        format!("{label}.{}", self.zone)
    }

    fn tlsa_name(&self, host: &str) -> String {
        format!("_{}._tcp.{}", self.port, self.name(host))
    }

    fn query(&self, dig: &Path, rtype: &str, name: &str) -> Answer {
        let out = Command::new(dig)
            .args([
                "+dnssec",
                "+time=3",
                "+tries=2",
                "+nocmd",
                "+noquestion",
                "+nostats",
            ])
            .arg(format!("@{}", self.resolver.ip()))
            .args(["-p", &self.resolver.port().to_string(), rtype, name])
            .output()
            .expect("dig runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let status = text
            .split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or_else(|| panic!("no status from dig {rtype} {name}: {text}"))
            .to_owned();
        let authenticated = text
            .lines()
            .find_map(|l| l.strip_prefix(";; flags:"))
            .is_some_and(|flags| {
                flags
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .any(|f| f == "ad")
            });
        // Answer lines: owner TTL class type rdata...
        let records = text
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .filter_map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                (fields.len() > 4 && fields[3] == rtype).then(|| fields[4..].join(" "))
            })
            .collect();
        Answer {
            status,
            authenticated,
            records,
        }
    }

    /// The validated TLSA records of `host`, parsed by our parser.
    fn tlsa(&self, dig: &Path, host: &str) -> Vec<TlsaRecord> {
        let a = self.query(dig, "TLSA", &self.tlsa_name(host));
        assert_eq!(a.status, "NOERROR", "TLSA {host}: {a:?}");
        assert!(a.authenticated, "TLSA {host} is validated: {a:?}");
        a.records
            .iter()
            .map(|r| r.parse().unwrap_or_else(|e| panic!("TLSA {r}: {e}")))
            .collect()
    }

    /// The address the zone gives `host`.
    fn address(&self, dig: &Path, host: &str) -> IpAddr {
        let a = self.query(dig, "A", &self.name(host));
        a.records
            .first()
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("A {host}: {a:?}"))
    }
}

#[test]
fn resolver_validates_the_test_zones() {
    let Some(env) = dns_env() else { return };
    let Some(dig) = peer("dig") else { return };

    let mx = env.query(&dig, "MX", &env.name("signed"));
    assert_eq!(
        (mx.status.as_str(), mx.authenticated),
        ("NOERROR", true),
        "signed MX: {mx:?}"
    );
    let a = env.query(&dig, "A", &env.name("mx.signed"));
    assert_eq!(
        (a.status.as_str(), a.authenticated),
        ("NOERROR", true),
        "signed A: {a:?}"
    );
    assert_eq!(
        env.tlsa(&dig, "mx.signed"),
        std::slice::from_ref(&env.tlsa_good)
    );
    assert_eq!(
        env.tlsa(&dig, "mx-ta.signed"),
        std::slice::from_ref(&env.tlsa_ca)
    );
    assert_eq!(
        env.tlsa(&dig, "mx-bad.signed"),
        std::slice::from_ref(&env.tlsa_bad)
    );
    // PKIX-EE only: validated, but no usable record (RFC 7672 §3.1.3).
    assert_eq!(UsableTlsa::select(env.tlsa(&dig, "mx-pkix.signed")), None);

    for (rtype, name) in [("MX", "bogus"), ("A", "mx.bogus")] {
        let bogus = env.query(&dig, rtype, &env.name(name));
        assert_eq!(bogus.status, "SERVFAIL", "bogus {rtype} {name}: {bogus:?}");
    }
    let bogus_tlsa = env.query(&dig, "TLSA", &env.tlsa_name("mx.bogus"));
    assert_eq!(bogus_tlsa.status, "SERVFAIL", "bogus TLSA: {bogus_tlsa:?}");

    for (rtype, name) in [
        ("MX", env.name("unsigned")),
        ("TLSA", env.tlsa_name("mx.unsigned")),
    ] {
        let insecure = env.query(&dig, rtype, &name);
        assert_eq!(insecure.status, "NOERROR", "unsigned {rtype}: {insecure:?}");
        assert!(
            !insecure.authenticated,
            "unsigned {rtype} has no AD: {insecure:?}"
        );
        assert_eq!(insecure.records.len(), 1, "{insecure:?}");
    }

    // The TLSA lookup fails while the MX host validates.
    let mx = env.query(&dig, "MX", &env.name("servfail"));
    assert!(mx.authenticated, "servfail MX validates: {mx:?}");
    let tlsa = env.query(&dig, "TLSA", &env.tlsa_name("mx.servfail"));
    assert_eq!(tlsa.status, "SERVFAIL", "{tlsa:?}");

    // A signed MX RRset whose host lives in the unsigned zone.
    let mx = env.query(&dig, "MX", &env.name("insecure-host.signed"));
    assert!(mx.authenticated, "{mx:?}");
    assert_eq!(mx.records, [format!("10 mx.unsigned.{}.", env.zone)]);
    let a = env.query(&dig, "A", &env.name("mx.unsigned"));
    assert!(!a.authenticated, "{a:?}");
}

/// aiosmtpd offering STARTTLS on `addr` with a certificate chain file.
fn smtp_peer(python: &Path, addr: SocketAddr, cert: &Path, key: &Path) -> ChildGuard {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/smtpd.py");
    let log = std::env::temp_dir().join(format!(
        "postern-dane-{}-{}.jsonl",
        addr.ip(),
        std::process::id()
    ));
    // The refused handshakes make aiosmtpd print tracebacks; keep them out
    // of the test output but on disk.
    let stderr = std::fs::File::create(log.with_extension("stderr")).unwrap();
    let child = ChildGuard::spawn(
        Command::new(python)
            .arg(script)
            .args([
                "--addr",
                &addr.ip().to_string(),
                "--port",
                &addr.port().to_string(),
            ])
            .args(["--mode", "starttls"])
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--log")
            .arg(log)
            .stdin(Stdio::null())
            .stderr(stderr),
    );
    assert!(
        wait_for_port(addr, Duration::from_secs(15)),
        "aiosmtpd on {addr} did not start"
    );
    child
}

/// `openssl s_client -starttls smtp` with DANE: true when it verifies.
fn openssl_dane(
    openssl: &Path,
    addr: SocketAddr,
    base: &str,
    records: &[TlsaRecord],
) -> (bool, String) {
    let mut cmd = Command::new(openssl);
    cmd.args([
        "s_client",
        "-brief",
        "-verify_return_error",
        "-starttls",
        "smtp",
    ])
    .args([
        "-connect",
        &addr.to_string(),
        "-servername",
        base,
        "-dane_tlsa_domain",
        base,
    ]);
    for r in records {
        cmd.args(["-dane_tlsa_rrdata", &r.to_string()]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    // Stop after the handshake.
    child.stdin.take().unwrap().write_all(b"QUIT\r\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("Verification: OK"),
        text,
    )
}

/// Our verifier on the same peer: EHLO, STARTTLS, then a rustls handshake
/// with [`DaneVerifier`]; the record it matched, or the handshake error.
fn postern_dane(
    addr: SocketAddr,
    base: &str,
    records: &[TlsaRecord],
) -> Result<TlsaRecord, rustls::Error> {
    let usable = UsableTlsa::select(records.iter().cloned()).expect("usable TLSA records");
    let provider = Arc::new(postern_relay::default_provider());
    let name = DnsName::try_from(base.to_owned()).unwrap();
    let verifier = Arc::new(DaneVerifier::new(usable, [name], &provider));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();

    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(tcp.try_clone().unwrap());
    let reply = |reader: &mut BufReader<TcpStream>| {
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.clone();
            }
        }
    };
    assert!(reply(&mut reader).starts_with("220"));
    tcp.write_all(b"EHLO relay.test\r\n").unwrap();
    assert!(reply(&mut reader).starts_with("250"));
    tcp.write_all(b"STARTTLS\r\n").unwrap();
    assert!(reply(&mut reader).starts_with("220"));

    let server_name = rustls::pki_types::ServerName::try_from(base.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), server_name).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| {
            e.into_inner()
                .and_then(|inner| inner.downcast::<rustls::Error>().ok())
                .map_or(rustls::Error::General("handshake IO failed".into()), |b| *b)
        })?;
    }
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    tls.write_all(b"QUIT\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest);
    Ok(verifier
        .matched()
        .expect("a verified handshake names its record")
        .record()
        .clone())
}

#[test]
fn dane_ee_peer_verifies_with_openssl_and_postern() {
    let Some(env) = dns_env() else { return };
    let (Some(dig), Some(openssl)) = (peer("dig"), peer("openssl")) else {
        return;
    };
    let Some(python) = python_with("aiosmtpd") else {
        return;
    };
    let base = env.name("mx.signed");
    let records = env.tlsa(&dig, "mx.signed");
    assert_eq!(records[0].usage(), TlsaUsage::DaneEe);
    let addr = SocketAddr::new(env.address(&dig, "mx.signed"), env.port);

    {
        let _peer = smtp_peer(&python, addr, &env.cert, &env.key);
        let (ok, text) = openssl_dane(&openssl, addr, &base, &records);
        assert!(ok, "openssl verifies the matching peer: {text}");
        assert!(text.contains("DANE TLSA 3 1 1"), "{text}");
        assert_eq!(postern_dane(addr, &base, &records), Ok(records[0].clone()));
    }
    // The same name and records, a peer with another key.
    let _peer = smtp_peer(&python, addr, &env.bad_cert, &env.bad_key);
    let (ok, text) = openssl_dane(&openssl, addr, &base, &records);
    assert!(!ok, "openssl refuses the mismatching peer: {text}");
    let err = postern_dane(addr, &base, &records).unwrap_err();
    assert!(
        matches!(DaneError::from_rustls(&err), Some(DaneError::NoMatch)),
        "{err}"
    );
}

#[test]
fn dane_ta_peer_verifies_with_openssl_and_postern() {
    let Some(env) = dns_env() else { return };
    let (Some(dig), Some(openssl)) = (peer("dig"), peer("openssl")) else {
        return;
    };
    let Some(python) = python_with("aiosmtpd") else {
        return;
    };
    let base = env.name("mx-ta.signed");
    let records = env.tlsa(&dig, "mx-ta.signed");
    assert_eq!(records[0].usage(), TlsaUsage::DaneTa);
    let addr = SocketAddr::new(env.address(&dig, "mx-ta.signed"), env.port);
    let _peer = smtp_peer(&python, addr, &env.cert, &env.key);

    let (ok, text) = openssl_dane(&openssl, addr, &base, &records);
    assert!(ok, "openssl verifies the chain from the TA: {text}");
    assert_eq!(postern_dane(addr, &base, &records), Ok(records[0].clone()));

    // Under DANE-TA the name counts: the certificate does not name
    // www.<zone>, so both verifiers refuse it.
    let wrong = env.name("www");
    let (ok, text) = openssl_dane(&openssl, addr, &wrong, &records);
    assert!(!ok, "openssl refuses the wrong name: {text}");
    let err = postern_dane(addr, &wrong, &records).unwrap_err();
    assert!(
        matches!(
            DaneError::from_rustls(&err),
            Some(DaneError::TrustAnchor { .. })
        ),
        "{err}"
    );
}

#[test]
fn mismatching_tlsa_is_refused_by_openssl_and_postern() {
    let Some(env) = dns_env() else { return };
    let (Some(dig), Some(openssl)) = (peer("dig"), peer("openssl")) else {
        return;
    };
    let Some(python) = python_with("aiosmtpd") else {
        return;
    };
    let base = env.name("mx-bad.signed");
    let records = env.tlsa(&dig, "mx-bad.signed");
    let addr = SocketAddr::new(env.address(&dig, "mx-bad.signed"), env.port);
    let _peer = smtp_peer(&python, addr, &env.cert, &env.key);

    let (ok, text) = openssl_dane(&openssl, addr, &base, &records);
    assert!(!ok, "openssl refuses: {text}");
    let err = postern_dane(addr, &base, &records).unwrap_err();
    assert!(
        matches!(DaneError::from_rustls(&err), Some(DaneError::NoMatch)),
        "{err}"
    );
}
