//! Key exchange with real peers: Debian's OpenSSL 3.0 (no ML-KEM) still
//! negotiates X25519, or the group it asks for; an ML-KEM-capable client
//! Postern did not write (pyOpenSSL over the OpenSSL 3.5+ bundled in the
//! `cryptography` wheel) negotiates the hybrid X25519MLKEM768. The session's
//! `TlsInfo` and the "TLS established" log line name the group.
//! A missing peer is a loud SKIPPED, or a failure with POSTERN_REQUIRE_PEERS=1.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use postern_listener::{Mode, TlsSettings};
use postern_testkit::{PqMode, peer, pq_client, pq_python};

const LIMIT: Duration = Duration::from_secs(30);

/// Every log line of this test binary; tests tell theirs apart by the
/// listener name, unique per test.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        tracing_subscriber::fmt()
            .with_env_filter("postern_listener=info")
            .with_ansi(false)
            .with_writer(move || Capture(writer.clone()))
            .init();
        buf
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The "TLS established" lines of `listener`, waiting up to 5 s for `n`.
fn established(listener: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| {
                l.contains("TLS established") && l.contains(&format!("listener={listener}"))
            })
            .map(str::to_owned)
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}\n--stderr--\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const SMTP_LINES: &[u8] =
    b"EHLO peer.test\nMAIL FROM:<a@test>\nRCPT TO:<b@test>\nDATA\nSubject: kx\n\nhello\n.\nQUIT\n";

fn s_client(openssl: &std::path::Path, addr: &str, groups: Option<&str>) -> String {
    let mut cmd = Command::new(openssl);
    cmd.args([
        "s_client",
        "-connect",
        addr,
        "-servername",
        "mx.test",
        "-starttls",
        "smtp",
    ]);
    if let Some(g) = groups {
        cmd.args(["-groups", g]);
    }
    cmd.args(["-crlf", "-nocommands", "-brief"]);
    text(&run_bounded(&mut cmd, SMTP_LINES, LIMIT))
}

#[test]
fn openssl_3_0_without_mlkem_negotiates_x25519_with_the_default_listener() {
    logs();
    let Some(openssl) = peer("openssl") else {
        return;
    };
    let pki = Pki::new("kx-openssl", &["mx.test"]);
    let settings = TlsSettings::new(vec![pki.spec(&["mx.test"])]);
    let srv = Running::start(vec![listener(
        "kx-openssl",
        Mode::StartTls { required: false },
        Some(settings),
    )]);
    let addr = srv.addr("kx-openssl").to_string();
    // The default offer: OpenSSL 3.0 sends an X25519 key share, which the
    // listener (hybrid first, then X25519) takes without a retry.
    let t = s_client(&openssl, &addr, None);
    assert!(t.contains("Protocol version: TLSv1.3"), "{t}");
    assert!(t.contains("Server Temp Key: X25519, 253 bits"), "{t}");
    assert!(t.contains("250 2.0.0"), "message accepted: {t}");
    // A client that asks for P-256 only gets P-256.
    let t = s_client(&openssl, &addr, Some("P-256"));
    assert!(
        t.contains("Server Temp Key: ECDH, prime256v1, 256 bits"),
        "{t}"
    );
    assert!(t.contains("250 2.0.0"), "{t}");
    // A client with no group in common is refused, never downgraded.
    let t = s_client(&openssl, &addr, Some("X448"));
    assert!(!t.contains("250 2.0.0"), "{t}");

    let log = srv.log();
    assert_eq!(
        log.groups_seen,
        [Some("X25519".to_owned()), Some("P-256".to_owned())]
    );
    let lines = established("kx-openssl", 2);
    assert!(lines[0].contains("group=X25519 "), "{lines:?}");
    assert!(lines[1].contains("group=P-256 "), "{lines:?}");
}

#[test]
fn an_mlkem_client_we_did_not_write_negotiates_the_hybrid() {
    logs();
    let Some(python) = pq_python() else {
        return;
    };
    let pki = Pki::new("kx-pq", &["mx.test"]);
    let settings = TlsSettings::new(vec![pki.spec(&["mx.test"])]);
    let srv = Running::start(vec![
        listener(
            "kx-pq",
            Mode::StartTls { required: false },
            Some(settings.clone()),
        ),
        listener("kx-pq-implicit", Mode::Implicit, Some(settings)),
    ]);
    for (name, mode) in [
        ("kx-pq", PqMode::StartTls),
        ("kx-pq-implicit", PqMode::Implicit),
    ] {
        let out = pq_client(&python, srv.addr(name), mode, "mx.test", Some("b@test")).unwrap();
        let t = text(&out);
        assert!(out.status.success(), "{name}: {t}");
        assert!(t.contains("group=X25519MLKEM768"), "{name}: {t}");
        assert!(t.contains("version=TLSv1.3"), "{name}: {t}");
        let lines = established(name, 1);
        assert!(
            lines.len() == 1 && lines[0].contains("group=X25519MLKEM768 "),
            "{name}: {lines:?}"
        );
    }
    assert_eq!(
        srv.log().groups_seen,
        [
            Some("X25519MLKEM768".to_owned()),
            Some("X25519MLKEM768".to_owned())
        ]
    );
}

#[test]
fn a_listener_narrowed_to_classical_groups_serves_the_mlkem_client_with_x25519() {
    logs();
    let Some(python) = pq_python() else {
        return;
    };
    let pki = Pki::new("kx-classic", &["mx.test"]);
    let settings = TlsSettings::new(vec![pki.spec(&["mx.test"])]).with_groups(["X25519", "P-256"]);
    let srv = Running::start(vec![listener("kx-classic", Mode::Implicit, Some(settings))]);
    let out = pq_client(
        &python,
        srv.addr("kx-classic"),
        PqMode::Implicit,
        "mx.test",
        None,
    )
    .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    // OpenSSL spells it in lower case.
    assert!(t.to_ascii_lowercase().contains("group=x25519\n"), "{t}");
    let lines = established("kx-classic", 1);
    assert!(lines[0].contains("group=X25519 "), "{lines:?}");
}
