//! Interop with real peers on loopback: aiosmtpd (STARTTLS pinned to TLS 1.2
//! or 1.3, implicit TLS, AUTH), `openssl s_server` pinned to TLS 1.3, and
//! Postfix's smtp-sink (no TLS). Each test starts with `peer(...)` /
//! `python_with(...)`: skipped loudly when the peer is missing, failed when
//! POSTERN_REQUIRE_PEERS=1.

// These tests need the driver; the sans-IO core is tested without it
// (`cargo test -p postern-relay --no-default-features`).
#![cfg(feature = "tokio")]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use postern_proto::{ForwardPath, Host, Mailbox, ReversePath, TlsVersion};
use postern_relay::{
    Anchors, Connection, Connector, Message, MessageResult, Phase, Relay, RelayCredentials,
    RelayError, Route, SessionConfig, StaticResolver, Target, Timeouts, TlsMode, TlsPolicy,
};
use postern_testkit::{
    ChildGuard, DevPki, dev_pki, free_port, peer, python_with, wait_for_port, write_pki,
};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(postern_relay::default_provider())
}

fn session() -> SessionConfig {
    let mut c = SessionConfig::new(Host::parse("relay.test").unwrap().into_owned());
    c.timeouts = Timeouts::uniform(Duration::from_secs(10));
    c
}

fn message(body: &str) -> Message {
    Message::new(
        ReversePath::Mailbox(Mailbox::parse("alice@example.org").unwrap().into_owned()),
        [ForwardPath::Mailbox(
            Mailbox::parse("bob@example.net").unwrap().into_owned(),
        )],
        body.as_bytes().to_vec(),
    )
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "postern-relay-{tag}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running aiosmtpd from `tests/peers/smtpd.py`.
struct Aiosmtpd {
    _child: ChildGuard,
    port: u16,
    log: PathBuf,
    pki: DevPki,
}

impl Aiosmtpd {
    /// `mode`: plain, starttls or implicit; `tls`: any, 1.2 or 1.3;
    /// the certificate is issued for `names`.
    fn start(mode: &str, tls: &str, names: &[&str], extra: &[&str]) -> Option<Self> {
        let python = python_with("aiosmtpd")?;
        let dir = tempdir("aiosmtpd");
        let pki = dev_pki(names);
        write_pki(&pki, &dir).unwrap();
        let port = free_port();
        let log = dir.join("log.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/smtpd.py");
        let child = ChildGuard::spawn(
            Command::new(python)
                .arg(script)
                .args(["--port", &port.to_string(), "--mode", mode, "--tls", tls])
                .arg("--cert")
                .arg(dir.join("cert.pem"))
                .arg("--key")
                .arg(dir.join("key.pem"))
                .arg("--log")
                .arg(&log)
                .args(extra)
                .stdin(Stdio::null()),
        );
        assert!(
            wait_for_port(SocketAddr::new(LOCALHOST, port), Duration::from_secs(15)),
            "aiosmtpd did not start"
        );
        Some(Self {
            _child: child,
            port,
            log,
            pki,
        })
    }

    /// The log lines (JSON) of one event kind.
    fn events(&self, kind: &str) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains(&format!("\"event\": \"{kind}\"")))
            .map(str::to_owned)
            .collect()
    }

    fn anchors(&self) -> Anchors {
        Anchors::from_pem(self.pki.ca_pem.as_bytes()).unwrap()
    }

    fn smart_host(&self, tls: TlsPolicy) -> Route {
        Route::new(
            Target::SmartHost {
                host: "localhost".into(),
                port: self.port,
                auth: None,
                allow_plaintext_auth: false,
            },
            tls,
        )
    }
}

fn relay() -> Relay {
    let resolver = StaticResolver::new().with_host("localhost", [LOCALHOST]);
    Relay::new(session(), ring(), Arc::new(resolver))
}

async fn deliver_one(route: &Route, body: &str) -> MessageResult {
    relay()
        .deliver(route, vec![message(body)])
        .await
        .pop()
        .unwrap()
}

fn only_error(r: &MessageResult) -> RelayError {
    match &r.recipients[0].outcome {
        Err(e) => e.clone(),
        Ok(reply) => panic!("delivered ({reply}) but should have failed"),
    }
}

#[tokio::test]
async fn starttls_tls12_required_delivers() {
    let Some(peer) = Aiosmtpd::start("starttls", "1.2", &["localhost"], &[]) else {
        return;
    };
    let route = peer.smart_host(TlsPolicy::new(TlsMode::Required));
    let r = deliver_one(&route, "Subject: over 1.2\r\n\r\nhello\r\n").await;
    assert!(r.all_delivered(), "{r:?}");
    let tls = r.tls.expect("TLS facts");
    assert_eq!(tls.version, TlsVersion::Tls12);
    assert!(!tls.verified);
    let data = peer.events("DATA");
    assert_eq!(data.len(), 1);
    assert!(
        data[0].contains("\"tls\": \"TLSv1.2\"") && data[0].contains("over 1.2"),
        "{data:?}"
    );
    // Every MAIL the peer saw came over TLS.
    assert!(peer.events("MAIL").iter().all(|m| m.contains("TLSv1.2")));
}

#[tokio::test]
async fn starttls_tls13_verified_delivers() {
    let Some(peer) = Aiosmtpd::start("starttls", "1.3", &["localhost"], &[]) else {
        return;
    };
    let route = peer.smart_host(TlsPolicy::new(TlsMode::Verified {
        anchors: peer.anchors(),
    }));
    let r = deliver_one(&route, "Subject: over 1.3\r\n\r\nhello\r\n").await;
    assert!(r.all_delivered(), "{r:?}");
    let tls = r.tls.expect("TLS facts");
    assert_eq!(tls.version, TlsVersion::Tls13);
    assert!(tls.verified);
    // Python's ssl links Debian's OpenSSL 3.0: no ML-KEM, so X25519.
    assert_eq!(tls.group.as_deref(), Some("X25519"), "{tls}");
    assert!(
        tls.to_string()
            .starts_with("using TLSv1.3 with cipher TLS13_"),
        "{tls}"
    );
    assert!(peer.events("DATA")[0].contains("\"tls\": \"TLSv1.3\""));
    // EHLO again after TLS: one before, one after.
    let ehlo = peer.events("EHLO");
    assert_eq!(ehlo.len(), 2, "{ehlo:?}");
    assert!(ehlo[0].contains("null") && ehlo[1].contains("TLSv1.3"));
}

#[tokio::test]
async fn tls13_only_peer_refused_when_policy_allows_only_tls12() {
    let Some(peer) = Aiosmtpd::start("starttls", "1.3", &["localhost"], &[]) else {
        return;
    };
    let route =
        peer.smart_host(TlsPolicy::new(TlsMode::Required).with_versions([TlsVersion::Tls12]));
    let r = deliver_one(&route, "Subject: must not arrive\r\n\r\n").await;
    let e = only_error(&r);
    assert!(matches!(e, RelayError::TlsHandshake(_)), "{e:?}");
    assert!(e.is_transient());
    assert!(peer.events("MAIL").is_empty(), "nothing may be sent");
    assert!(peer.events("DATA").is_empty());
}

/// `openssl s_server` pinned to TLS 1.3; implicit TLS (s_server speaks no SMTP).
#[tokio::test]
async fn openssl_s_server_tls13_only_versus_tls12_policy() {
    let Some(openssl) = peer("openssl") else {
        return;
    };
    let dir = tempdir("s_server");
    write_pki(&dev_pki(&["localhost"]), &dir).unwrap();
    let port = free_port();
    let _server = ChildGuard::spawn(
        Command::new(openssl)
            .args(["s_server", "-quiet", "-tls1_3", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(dir.join("cert.pem"))
            .arg("-key")
            .arg(dir.join("key.pem"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let addr = SocketAddr::new(LOCALHOST, port);
    assert!(wait_for_port(addr, Duration::from_secs(10)));
    let mut s = session();
    s.timeouts = Timeouts::uniform(Duration::from_secs(2));
    let s = Arc::new(s);

    // TLS 1.2 only: the handshake must fail.
    let only12 =
        TlsPolicy::new(TlsMode::Implicit { anchors: None }).with_versions([TlsVersion::Tls12]);
    let connector = Connector::new(&only12, ring()).unwrap();
    let e = Connection::open(addr, "localhost", s.clone(), &connector)
        .await
        .unwrap_err();
    assert!(matches!(e, RelayError::TlsHandshake(_)), "{e:?}");

    // TLS 1.3 allowed: the handshake completes, then s_server (no SMTP)
    // never greets.
    let only13 =
        TlsPolicy::new(TlsMode::Implicit { anchors: None }).with_versions([TlsVersion::Tls13]);
    let connector = Connector::new(&only13, ring()).unwrap();
    let e = Connection::open(addr, "localhost", s, &connector)
        .await
        .unwrap_err();
    assert_eq!(e, RelayError::Timeout(Phase::Greeting));
}

#[tokio::test]
async fn required_tls_against_a_peer_without_starttls_sends_nothing() {
    let Some(peer) = Aiosmtpd::start("plain", "any", &["localhost"], &[]) else {
        return;
    };
    let route = peer.smart_host(TlsPolicy::new(TlsMode::Required));
    let r = deliver_one(&route, "Subject: must not arrive\r\n\r\n").await;
    let e = only_error(&r);
    assert_eq!(e, RelayError::TlsUnavailable);
    assert!(e.is_transient());
    assert_eq!(peer.events("EHLO").len(), 1);
    assert!(peer.events("MAIL").is_empty(), "the peer never sees MAIL");
}

#[cfg(feature = "webpki-roots")]
#[tokio::test]
async fn verified_mode_refuses_a_certificate_for_another_name() {
    let Some(peer) = Aiosmtpd::start("starttls", "any", &["wrong.example"], &[]) else {
        return;
    };
    let route = peer.smart_host(TlsPolicy::new(TlsMode::Verified {
        anchors: peer.anchors(),
    }));
    let r = deliver_one(&route, "Subject: must not arrive\r\n\r\n").await;
    let e = only_error(&r);
    let RelayError::TlsHandshake(reason) = &e else {
        panic!("{e:?}")
    };
    assert!(reason.contains("certificate"), "{reason}");
    assert!(e.is_transient());
    assert!(peer.events("MAIL").is_empty());

    // An untrusted CA fails the same way (webpki roots do not know it).
    let route = peer.smart_host(TlsPolicy::new(TlsMode::Verified {
        anchors: Anchors::WebPki,
    }));
    let e = only_error(&deliver_one(&route, "x\r\n").await);
    assert!(matches!(e, RelayError::TlsHandshake(_)), "{e:?}");
    assert!(peer.events("MAIL").is_empty());
}

#[tokio::test]
async fn opportunistic_uses_tls_without_verification() {
    let Some(peer) = Aiosmtpd::start("starttls", "any", &["wrong.example"], &[]) else {
        return;
    };
    let r = deliver_one(
        &peer.smart_host(TlsPolicy::new(TlsMode::Opportunistic)),
        "x\r\n",
    )
    .await;
    assert!(r.all_delivered(), "{r:?}");
    let tls = r.tls.unwrap();
    assert!(!tls.verified);
    assert_eq!(tls.version, TlsVersion::Tls13);
}

#[tokio::test]
async fn opportunistic_reconnects_in_plaintext_when_the_handshake_fails() {
    let Some(peer) = Aiosmtpd::start("starttls", "1.3", &["localhost"], &[]) else {
        return;
    };
    let policy = TlsPolicy::new(TlsMode::Opportunistic).with_versions([TlsVersion::Tls12]);
    let r = deliver_one(&peer.smart_host(policy), "Subject: plain\r\n\r\n").await;
    assert!(r.all_delivered(), "{r:?}");
    assert!(r.tls.is_none());
    // Two connections: the failed TLS attempt and the plaintext one.
    assert_eq!(peer.events("EHLO").len(), 2);
    assert!(peer.events("DATA")[0].contains("\"tls\": null"));
}

#[tokio::test]
async fn implicit_tls_verified() {
    let Some(peer) = Aiosmtpd::start("implicit", "1.3", &["localhost"], &[]) else {
        return;
    };
    let route = peer.smart_host(TlsPolicy::new(TlsMode::Implicit {
        anchors: Some(peer.anchors()),
    }));
    let r = deliver_one(&route, "Subject: implicit\r\n\r\n").await;
    assert!(r.all_delivered(), "{r:?}");
    let tls = r.tls.unwrap();
    assert!(tls.verified);
    assert_eq!(tls.version, TlsVersion::Tls13);
    assert!(peer.events("DATA")[0].contains("implicit"));
}

#[tokio::test]
async fn auth_plain_to_smart_host_over_starttls() {
    let Some(peer) = Aiosmtpd::start(
        "starttls",
        "any",
        &["localhost"],
        &["--auth", "relay:s3cret"],
    ) else {
        return;
    };
    let mut route = peer.smart_host(TlsPolicy::new(TlsMode::Verified {
        anchors: peer.anchors(),
    }));
    let Target::SmartHost { auth, .. } = &mut route.target else {
        unreachable!()
    };
    *auth = Some(RelayCredentials::new("relay", "s3cret"));
    let r = deliver_one(&route, "Subject: authenticated\r\n\r\n").await;
    assert!(r.all_delivered(), "{r:?}");
    let auth = peer.events("AUTH");
    assert_eq!(auth.len(), 1);
    assert!(auth[0].contains("\"mechanism\": \"PLAIN\"") && auth[0].contains("\"ok\": true"));
}

#[tokio::test]
async fn auth_login_and_refusals_from_a_real_peer() {
    // LOGIN when it is the only mechanism offered.
    let Some(peer) = Aiosmtpd::start(
        "starttls",
        "any",
        &["localhost"],
        &["--auth", "relay:s3cret", "--auth-only", "LOGIN"],
    ) else {
        return;
    };
    let route = |peer: &Aiosmtpd, password: &str| {
        let route = peer.smart_host(TlsPolicy::new(TlsMode::Required));
        Route::new(
            route
                .target
                .with_auth(RelayCredentials::new("relay", password)),
            route.tls,
        )
    };
    let r = deliver_one(&route(&peer, "s3cret"), "Subject: login\r\n\r\n").await;
    assert!(r.all_delivered(), "{r:?}");
    assert!(peer.events("AUTH")[0].contains("\"mechanism\": \"LOGIN\""));
    // Wrong password: the peer's 535 5.7.8, permanent, nothing sent.
    let r = deliver_one(&route(&peer, "wrong"), "Subject: no\r\n\r\n").await;
    let e = only_error(&r);
    assert_eq!(e.status().to_string(), "5.7.8", "{e}");
    assert!(e.is_permanent());
    assert_eq!(peer.events("DATA").len(), 1);
    // A temporary refusal: 454 4.7.0, transient.
    let Some(peer) = Aiosmtpd::start(
        "starttls",
        "any",
        &["localhost"],
        &[
            "--auth",
            "relay:s3cret",
            "--auth-refusal",
            "454 4.7.0 Try again later",
        ],
    ) else {
        return;
    };
    let r = deliver_one(&route(&peer, "s3cret"), "Subject: later\r\n\r\n").await;
    let e = only_error(&r);
    assert_eq!(e.status().to_string(), "4.7.0", "{e}");
    assert!(e.is_transient());
    assert!(peer.events("DATA").is_empty());
}

#[tokio::test]
async fn several_messages_over_one_connection_with_8bit_and_smtputf8() {
    let Some(peer) = Aiosmtpd::start("starttls", "any", &["localhost"], &[]) else {
        return;
    };
    let route = peer.smart_host(TlsPolicy::new(TlsMode::Required));
    let mut utf8 = message("Subject: utf8\r\n\r\nGrüße\r\n");
    utf8.recipients[0].to =
        ForwardPath::Mailbox(Mailbox::parse("jörg@example.net").unwrap().into_owned());
    let messages = vec![
        message("Subject: one\r\n\r\n.leading dot\r\n"),
        message("Subject: two\r\n\r\nGrüße\r\n"),
        utf8,
    ];
    let results = relay().deliver(&route, messages).await;
    assert!(
        results.iter().all(MessageResult::all_delivered),
        "{results:?}"
    );
    assert_eq!(
        peer.events("EHLO").len(),
        2,
        "one connection: EHLO before and after TLS"
    );
    let data = peer.events("DATA");
    assert_eq!(data.len(), 3);
    assert!(data[0].contains(".leading dot") && !data[0].contains("..leading"));
    let mail = peer.events("MAIL");
    assert!(mail[1].contains("BODY=8BITMIME"), "{mail:?}");
    assert!(mail[2].contains("SMTPUTF8"), "{mail:?}");
    assert!(data[2].contains("j\\u00f6rg@example.net"), "{data:?}");
}

/// Postfix's smtp-sink: a real, fast, TLS-less Postfix server.
struct Sink {
    _child: ChildGuard,
    addr: SocketAddr,
}

fn smtp_sink() -> Option<Sink> {
    let bin = peer("smtp-sink")?;
    let port = free_port();
    let addr = SocketAddr::new(LOCALHOST, port);
    let child = ChildGuard::spawn(
        Command::new(bin)
            .args(["-c", "-u", "nobody"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("64")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(
        wait_for_port(addr, Duration::from_secs(10)),
        "smtp-sink did not start"
    );
    Some(Sink {
        _child: child,
        addr,
    })
}

#[tokio::test]
async fn smtp_sink_plaintext_pipelined_reuse() {
    let Some(sink) = smtp_sink() else { return };
    let connector = Connector::new(&TlsPolicy::new(TlsMode::None), ring()).unwrap();
    let mut conn = Connection::open(sink.addr, "localhost", Arc::new(session()), &connector)
        .await
        .unwrap();
    for i in 0..5 {
        let r = conn
            .send(message(&format!("Subject: {i}\r\n\r\nbody\r\n")))
            .await;
        assert!(r.all_delivered(), "{r:?}");
        assert!(r.tls.is_none());
    }
    conn.quit().await;
}

#[tokio::test]
async fn smtp_sink_without_starttls_and_required_tls() {
    let Some(sink) = smtp_sink() else { return };
    let connector = Connector::new(&TlsPolicy::new(TlsMode::Required), ring()).unwrap();
    let e = Connection::open(sink.addr, "localhost", Arc::new(session()), &connector)
        .await
        .unwrap_err();
    assert_eq!(e, RelayError::TlsUnavailable);
}
