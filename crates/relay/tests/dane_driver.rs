//! The driver under DANE (issue 13), against aiosmtpd on loopback: a
//! [`Connector::with_dane`] connection delivers when the TLSA record
//! matches the peer's certificate and names the record in its TLS facts,
//! and sends nothing when it does not match or when the peer offers no
//! STARTTLS, whatever the route's own (weaker) mode says. The TLSA records
//! are given here; the DNS side is tested in `dane_peers.rs`.

// The driver exists with the `tokio` feature only.
#![cfg(feature = "tokio")]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use postern_proto::{ForwardPath, Host, Mailbox, ReversePath};
use postern_relay::dane::{
    DaneVerifier, TlsaMatching, TlsaRecord, TlsaSelector, TlsaUsage, UsableTlsa,
};
use postern_relay::{
    Connection, Connector, Message, RelayError, SessionConfig, Timeouts, TlsMode, TlsPolicy,
};
use postern_testkit::{
    ChildGuard, DevPki, dev_pki, free_port, python_with, wait_for_port, write_pki,
};
use rcgen::PublicKeyData;
use rustls::pki_types::DnsName;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(postern_relay::default_provider())
}

struct Peer {
    _child: ChildGuard,
    addr: SocketAddr,
    log: PathBuf,
    pki: DevPki,
}

impl Peer {
    fn start(mode: &str) -> Option<Self> {
        let python = python_with("aiosmtpd")?;
        let dir = std::env::temp_dir().join(format!(
            "postern-dane-driver-{}-{}",
            std::process::id(),
            free_port()
        ));
        let pki = dev_pki(&["mx.example.com"]);
        write_pki(&pki, &dir).unwrap();
        let port = free_port();
        let log = dir.join("log.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/smtpd.py");
        let child = ChildGuard::spawn(
            Command::new(python)
                .arg(script)
                .args(["--port", &port.to_string(), "--mode", mode])
                .arg("--cert")
                .arg(dir.join("cert.pem"))
                .arg("--key")
                .arg(dir.join("key.pem"))
                .arg("--log")
                .arg(&log)
                .stdin(Stdio::null())
                .stderr(std::fs::File::create(dir.join("stderr")).unwrap()),
        );
        let addr = SocketAddr::new(LOCALHOST, port);
        assert!(
            wait_for_port(addr, Duration::from_secs(15)),
            "aiosmtpd did not start"
        );
        Some(Self {
            _child: child,
            addr,
            log,
            pki,
        })
    }

    fn events(&self, kind: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("\"event\": \"{kind}\"")))
            .map(str::to_owned)
            .collect()
    }

    /// `3 1 1` for this peer's key.
    fn tlsa(&self) -> TlsaRecord {
        spki_tlsa(&self.pki.key_pem)
    }
}

fn spki_tlsa(key_pem: &str) -> TlsaRecord {
    let spki = rcgen::KeyPair::from_pem(key_pem)
        .unwrap()
        .subject_public_key_info();
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&spki);
    TlsaRecord::new(
        TlsaUsage::DaneEe,
        TlsaSelector::Spki,
        TlsaMatching::Sha256,
        digest.as_slice(),
    )
    .unwrap()
}

fn verifier(record: TlsaRecord) -> Arc<DaneVerifier> {
    let names = [DnsName::try_from("mx.example.com").unwrap()];
    Arc::new(DaneVerifier::new(
        UsableTlsa::select([record]).unwrap(),
        names,
        &ring(),
    ))
}

fn session() -> Arc<SessionConfig> {
    let mut c = SessionConfig::new(Host::parse("relay.test").unwrap().into_owned());
    c.timeouts = Timeouts::uniform(Duration::from_secs(10));
    Arc::new(c)
}

fn message() -> Message {
    Message::new(
        ReversePath::Mailbox(Mailbox::parse("alice@example.org").unwrap().into_owned()),
        [ForwardPath::Mailbox(
            Mailbox::parse("bob@example.com").unwrap().into_owned(),
        )],
        &b"Subject: DANE\r\n\r\nhello\r\n"[..],
    )
}

/// The route's own mode is opportunistic: DANE overrides it.
fn dane_connector(record: TlsaRecord) -> Connector {
    Connector::new(&TlsPolicy::new(TlsMode::Opportunistic), ring())
        .unwrap()
        .with_dane(verifier(record), ring())
        .unwrap()
}

#[tokio::test]
async fn matching_tlsa_delivers_and_names_the_record() {
    let Some(peer) = Peer::start("starttls") else {
        return;
    };
    let record = peer.tlsa();
    let connector = dane_connector(record.clone());
    let mut conn = Connection::open(peer.addr, "mx.example.com", session(), &connector)
        .await
        .expect("DANE-authenticated connection");
    let tls = conn.tls().cloned().expect("TLS facts");
    assert!(tls.verified);
    assert_eq!(tls.dane.as_ref().map(|m| m.record()), Some(&record));
    assert!(
        tls.to_string()
            .ends_with("(DANE: DANE-EE(3) SPKI(1) SHA2-256(1) matched depth 0)"),
        "{tls}"
    );
    let result = conn.send(message()).await;
    assert!(result.all_delivered(), "{result:?}");
    conn.quit().await;
    assert!(
        peer.events("MAIL")
            .iter()
            .all(|m| !m.contains("\"tls\": null"))
    );
}

#[tokio::test]
async fn mismatching_tlsa_sends_nothing() {
    let Some(peer) = Peer::start("starttls") else {
        return;
    };
    let other = spki_tlsa(&dev_pki(&["mx.example.com"]).key_pem);
    let err = Connection::open(
        peer.addr,
        "mx.example.com",
        session(),
        &dane_connector(other),
    )
    .await
    .unwrap_err();
    match &err {
        RelayError::TlsHandshake(reason) => {
            assert!(
                reason.contains("DANE authentication failed: no TLSA record matches"),
                "{reason}"
            )
        }
        e => panic!("{e:?}"),
    }
    assert!(err.is_transient(), "DANE failures defer");
    assert!(peer.events("MAIL").is_empty(), "nothing may be sent");
}

#[tokio::test]
async fn dane_against_a_peer_without_starttls_sends_nothing() {
    let Some(peer) = Peer::start("plain") else {
        return;
    };
    let err = Connection::open(
        peer.addr,
        "mx.example.com",
        session(),
        &dane_connector(peer.tlsa()),
    )
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(peer.events("MAIL").is_empty(), "nothing may be sent");
}
