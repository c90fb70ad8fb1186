//! The MTA's `certificate = "acme"` against Debian's pebble (an RFC 8555
//! test CA, [`postern_testkit::Pebble`]), all on loopback high ports. Pebble
//! issues 30-second certificates (`certificateValidityPeriod`), so renewal
//! (a third of the lifetime left) comes 20 s after issuance.
//!
//! Issuance and renewal with a connection in flight; a failed challenge
//! (clear error, placeholder kept); pebble down during a renewal (old
//! certificate kept, retried with backoff, then renewed). A missing pebble
//! prints SKIPPED, or fails with POSTERN_REQUIRE_PEERS=1.

mod common;

use std::fs;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, TempDir};
use postern_listener::Validity;
use postern_testkit::{Pebble, free_port};

const DOMAIN: &str = "mx.acme.test";

/// The `[tls.default]` body for `pebble`, with the responder on
/// `challenge_port`.
fn tls(pebble: &Pebble, challenge_port: u16) -> String {
    format!(
        r#"certificate = "acme"
domains = ["{DOMAIN}"]
contact = ["mailto:postmaster@{DOMAIN}"]
directory = "{}"
ca_file = "{}"
challenge_address = "127.0.0.1:{challenge_port}"
retry = "1s""#,
        pebble.directory(),
        pebble.ca_file().display()
    )
}

/// Waits until `pred` holds for the server log.
fn wait_log(server: &Server, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let log = server.log_text();
        if pred(&log) {
            return log;
        }
        assert!(Instant::now() < deadline, "{what}; log:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn issued(log: &str) -> usize {
    log.matches("ACME certificate issued").count()
}

/// The certificate the implicit-TLS listener serves now.
fn served(port: u16) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", DOMAIN, "-showcerts"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = child.wait();
    let start = out.find("-----BEGIN CERTIFICATE-----").expect(&out);
    let end = out[start..].find("-----END CERTIFICATE-----").unwrap() + start + 25;
    out[start..end].to_owned()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn issuance_then_renewal_swapped_in_without_dropping_a_connection() {
    let dir = TempDir::new("acme-issue");
    let http = free_port();
    let Some(_pebble) = Pebble::start(dir.path(), http, 30) else {
        return;
    };
    let server = Server::start_with_tls(dir.path(), "", &tls(&_pebble, http));
    let log = wait_log(&server, "no issuance", Duration::from_secs(60), |l| {
        issued(l) >= 1
    });
    assert!(log.contains("ACME account created"), "{log}");
    let first = served(server.ports.submissions);
    let v = Validity::from_pem(first.as_bytes()).unwrap();
    assert!(v.lifetime() <= Duration::from_secs(31), "{v}");

    // Owner-only storage.
    let acme = server.data.join("acme");
    assert_eq!(mode(&acme), 0o700);
    assert_eq!(mode(&acme.join("default")), 0o700);
    for f in ["account.json", "key.pem", "cert.pem"] {
        assert_eq!(mode(&acme.join("default").join(f)), 0o600, "{f}");
    }
    assert!(!acme.join("default/placeholder").exists());

    // `check` shows the state and the expiry.
    let (_, out) = common::run(
        Command::new(common::bin())
            .arg("check")
            .arg("--config")
            .arg(&server.config),
        Duration::from_secs(30),
    );
    assert!(
        out.contains(&format!("ACME (http-01 on 127.0.0.1:{http}) for {DOMAIN}")),
        "{out}"
    );
    assert!(out.contains("state: issued; renewed from "), "{out}");
    assert!(out.contains("days left)"), "{out}");

    // A session open across the renewal is not dropped.
    let mut tls = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{}", server.ports.submissions))
        .args(["-servername", DOMAIN, "-crlf", "-quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // Renewed 20 s in (a third of 30 s left), then swapped in.
    wait_log(&server, "no renewal", Duration::from_secs(45), |l| {
        issued(l) >= 2 && l.contains("certificates reloaded")
    });
    let second = served(server.ports.submissions);
    assert_ne!(first, second, "a new certificate is served");

    let mut stdin = tls.stdin.take().unwrap();
    stdin.write_all(b"NOOP\nQUIT\n").unwrap();
    drop(stdin);
    let mut out = String::new();
    tls.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let _ = tls.wait();
    assert!(
        out.contains("220 ") && out.contains("250 2.0.0") && out.contains("221 "),
        "the session opened before the renewal answered after it:\n{out}"
    );
}

#[test]
fn a_failed_challenge_is_a_clear_error_and_the_old_certificate_stays() {
    let dir = TempDir::new("acme-fail");
    // Pebble validates on one port, the responder listens on another.
    let Some(pebble) = Pebble::start(dir.path(), free_port(), 30) else {
        return;
    };
    let server = Server::start_with_tls(dir.path(), "", &tls(&pebble, free_port()));
    let log = wait_log(&server, "no failure", Duration::from_secs(60), |l| {
        l.matches("ACME order failed").count() >= 2
    });
    let line = log
        .lines()
        .find(|l| l.contains("ACME order failed"))
        .unwrap();
    assert!(
        line.contains(&format!("the CA could not validate {DOMAIN} over http-01"))
            && line.to_ascii_lowercase().contains("connection refused"),
        "{line}"
    );
    assert!(line.contains("retry_in_secs=1"), "{line}");
    // Backoff: the second attempt waited twice as long.
    assert!(log.contains("retry_in_secs=2"), "{log}");
    assert_eq!(issued(&log), 0);
    // The placeholder keeps serving, and `check` says so.
    let placeholder = server.data.join("acme/default/placeholder");
    assert!(placeholder.exists());
    let cert = served(server.ports.submissions);
    assert_eq!(
        cert.trim(),
        fs::read_to_string(server.data.join("acme/default/cert.pem"))
            .unwrap()
            .trim()
    );
    let (_, out) = common::run(
        Command::new(common::bin())
            .arg("check")
            .arg("--config")
            .arg(&server.config),
        Duration::from_secs(30),
    );
    assert!(out.contains("is the self-signed placeholder"), "{out}");
}

#[test]
fn pebble_down_during_a_renewal_keeps_the_old_certificate_and_retries() {
    let dir = TempDir::new("acme-down");
    let http = free_port();
    let Some(mut pebble) = Pebble::start(dir.path(), http, 30) else {
        return;
    };
    let server = Server::start_with_tls(dir.path(), "", &tls(&pebble, http));
    wait_log(&server, "no issuance", Duration::from_secs(60), |l| {
        issued(l) >= 1
    });
    let first = served(server.ports.submissions);
    pebble.down();
    // The renewal is due 20 s after issuance; with the CA down it fails,
    // is logged, and retried with backoff.
    let log = wait_log(&server, "no failed renewal", Duration::from_secs(45), |l| {
        l.matches("ACME order failed").count() >= 2
    });
    let line = log
        .lines()
        .find(|l| l.contains("ACME order failed"))
        .unwrap();
    assert!(
        line.contains("the current certificate keeps serving"),
        "{line}"
    );
    assert_eq!(
        served(server.ports.submissions),
        first,
        "old certificate kept"
    );

    // The CA is back (a new instance: it forgot the account, which is
    // created again): the next retry renews.
    pebble.up();
    let log = wait_log(
        &server,
        "no renewal after pebble came back",
        Duration::from_secs(60),
        |l| issued(l) >= 2,
    );
    assert!(log.contains("ACME account unknown to the CA"), "{log}");
    assert_ne!(served(server.ports.submissions), first);
}
