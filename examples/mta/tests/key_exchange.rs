//! The key-exchange group in the Received header and the transaction log:
//! swaks over Debian's OpenSSL 3.0 (no ML-KEM) gets X25519; pyOpenSSL over
//! the OpenSSL 3.5+ bundled in the `cryptography` wheel (an ML-KEM client
//! Postern did not write) gets the hybrid X25519MLKEM768. A missing peer
//! prints SKIPPED, or fails with POSTERN_REQUIRE_PEERS=1.

mod common;

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use common::{Server, TempDir, queue_id, run};
use postern_testkit::{PqMode, peer, pq_client, pq_python};

const T: Duration = Duration::from_secs(30);

#[test]
fn received_names_x25519_for_openssl_3_0() {
    let Some(swaks) = peer("swaks") else {
        return;
    };
    let dir = TempDir::new("kx-swaks");
    let server = Server::start(dir.path(), "");
    let (code, out) = run(
        Command::new(swaks)
            .args([
                "--server",
                "127.0.0.1",
                "--port",
                &server.ports.mta.to_string(),
            ])
            .args(["--helo", "client.test", "--timeout", "10", "-tls"])
            .args([
                "--from",
                "sender@remote.test",
                "--to",
                "postmaster@localhost",
            ]),
        T,
    );
    assert_eq!(code, Some(0), "{out}");
    let id = queue_id(&out).unwrap_or_else(|| panic!("no queue id in\n{out}"));
    let text = fs::read_to_string(server.wait_maildir("postmaster", "localhost", &id)).unwrap();
    assert!(text.contains(" key-exchange X25519)"), "{text}");
}

#[test]
fn received_and_log_name_the_hybrid_for_an_mlkem_client() {
    let Some(python) = pq_python() else {
        return;
    };
    let dir = TempDir::new("kx-pq");
    let server = Server::start(dir.path(), "");
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), server.ports.mta);
    let out = pq_client(
        &python,
        addr,
        PqMode::StartTls,
        "localhost",
        Some("postmaster@localhost"),
    )
    .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.contains("group=X25519MLKEM768"), "{out}");
    let id = queue_id(&out).unwrap_or_else(|| panic!("no queue id in\n{out}"));
    let text = fs::read_to_string(server.wait_maildir("postmaster", "localhost", &id)).unwrap();
    assert!(
        text.contains("(using TLSv1.3 with cipher TLS13_")
            && text.contains(" key-exchange X25519MLKEM768)"),
        "{text}"
    );
    let log = server.log_text();
    assert!(
        log.lines().any(|l| l.contains("transaction")
            && l.contains(&id)
            && l.contains("group=\"X25519MLKEM768\"")),
        "{log}"
    );
}
