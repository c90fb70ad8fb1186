//! The relay offers the post-quantum hybrid X25519MLKEM768 first, so a
//! server that has it (pyOpenSSL over the OpenSSL 3.5+ bundled in the
//! `cryptography` wheel, a TLS stack Postern did not write) negotiates it,
//! and one without it still gets X25519 (Debian's OpenSSL 3.0 peer is in
//! `peers.rs`, `starttls_tls13_verified_delivers`). `OutboundTls` names
//! the group. A missing peer is a loud SKIPPED, or a failure with
//! POSTERN_REQUIRE_PEERS=1.

#![cfg(all(feature = "tokio", any(feature = "aws-lc-rs", feature = "ring")))]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use postern_proto::{ForwardPath, Host, Mailbox, ReversePath, TlsVersion};
use postern_relay::{
    Message, Relay, Route, SessionConfig, StaticResolver, Target, Timeouts, TlsMode, TlsPolicy,
};
use postern_testkit::{
    ChildGuard, PQ_SMTP_SERVER, dev_pki, free_port, pq_python, wait_for_port, write_pki,
};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn relay(provider: rustls::crypto::CryptoProvider) -> Relay {
    let mut session = SessionConfig::new(Host::parse("relay.test").unwrap().into_owned());
    session.timeouts = Timeouts::uniform(Duration::from_secs(10));
    let resolver = StaticResolver::new().with_host("localhost", [LOCALHOST]);
    Relay::new(session, Arc::new(provider), Arc::new(resolver))
}

fn message() -> Message {
    Message::new(
        ReversePath::Mailbox(Mailbox::parse("alice@example.org").unwrap().into_owned()),
        [ForwardPath::Mailbox(
            Mailbox::parse("bob@example.net").unwrap().into_owned(),
        )],
        b"Subject: hybrid\r\n\r\nhello\r\n".to_vec(),
    )
}

#[tokio::test]
async fn the_relay_negotiates_the_hybrid_with_an_mlkem_server_we_did_not_write() {
    let Some(python) = pq_python() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!(
        "postern-relay-kx-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = dev_pki(&["localhost"]);
    write_pki(&pki, &dir).unwrap();
    let port = free_port();
    let log = dir.join("log");
    let _server = ChildGuard::spawn(
        Command::new(python)
            .args(["-c", PQ_SMTP_SERVER, &port.to_string()])
            .arg(dir.join("cert.pem"))
            .arg(dir.join("key.pem"))
            .arg(&log)
            .stdin(Stdio::null()),
    );
    assert!(
        wait_for_port(SocketAddr::new(LOCALHOST, port), Duration::from_secs(15)),
        "the pyOpenSSL sink did not start"
    );
    let route = Route::new(
        Target::SmartHost {
            host: "localhost".into(),
            port,
            auth: None,
            allow_plaintext_auth: false,
        },
        TlsPolicy::new(TlsMode::Implicit { anchors: None }),
    );

    let r = relay(postern_relay::default_provider())
        .deliver(&route, vec![message()])
        .await
        .pop()
        .unwrap();
    assert!(r.all_delivered(), "{r:?}");
    let tls = r.tls.expect("TLS facts");
    assert_eq!(tls.version, TlsVersion::Tls13);
    assert_eq!(tls.group.as_deref(), Some("X25519MLKEM768"), "{tls}");
    assert!(
        tls.to_string().contains("key-exchange X25519MLKEM768"),
        "{tls}"
    );

    // A provider without the hybrid (as ring is) still gets X25519.
    let mut classical = postern_relay::default_provider();
    classical
        .kx_groups
        .retain(|g| g.name() != rustls::NamedGroup::X25519MLKEM768);
    let r = relay(classical)
        .deliver(&route, vec![message()])
        .await
        .pop()
        .unwrap();
    assert!(r.all_delivered(), "{r:?}");
    assert_eq!(r.tls.unwrap().group.as_deref(), Some("X25519"));

    let text = std::fs::read_to_string(&log).unwrap();
    let groups: Vec<&str> = text.lines().filter(|l| l.starts_with("group=")).collect();
    assert_eq!(groups.len(), 2, "{text}");
    assert!(groups[0].starts_with("group=X25519MLKEM768 "), "{text}");
    assert!(
        groups[1].to_ascii_lowercase().starts_with("group=x25519 "),
        "{text}"
    );
}
