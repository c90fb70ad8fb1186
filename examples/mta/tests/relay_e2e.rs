//! The whole binary relaying: a message submitted with AUTH on the
//! implicit-TLS listener, for a domain that a rule sends to a smart host
//! with TLS required and versions pinned, reaches a real aiosmtpd peer on
//! loopback over STARTTLS; a peer without STARTTLS never gets the message
//! (it stays queued). This proves `main` wires the outbound runner to the
//! spool and the rules; the runner itself is tested in `outbound.rs`.

mod common;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, TempDir, queue_id, run};
use postern_testkit::{ChildGuard, dev_pki, free_port, python_with, wait_for_port, write_pki};

const PEER: &str = r#"
import asyncio, ssl, sys
from aiosmtpd.smtp import SMTP
port, log, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class Handler:
    async def handle_MAIL(self, server, session, envelope, address, options):
        obj = server.transport.get_extra_info("ssl_object")
        with open(log, "a") as f:
            f.write("MAIL %s %s\n" % (address, obj.version() if obj else "plaintext"))
        envelope.mail_from = address
        return "250 OK"
    async def handle_RCPT(self, server, session, envelope, address, options):
        if "reject" in address:
            return "550 5.1.1 <%s>: no such user at the peer" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        obj = server.transport.get_extra_info("ssl_object")
        with open(log, "a") as f:
            f.write("DATA %s %s %s\n" % (",".join(envelope.rcpt_tos), obj.version() if obj else "plaintext",
                    envelope.content.decode("utf-8", "replace").replace("\r\n", "|")))
        return "250 2.0.0 accepted by peer"
async def main():
    kw = {"hostname": "peer.test"}
    if cert != "-":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        kw["tls_context"] = ctx
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Handler(), **kw), "127.0.0.1", port)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"#;

const SUBMIT: &str = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL("127.0.0.1", int(sys.argv[1]), timeout=10, context=ctx)
s.login("alice", "alice-pw")
s.mail("alice@localhost")
s.rcpt(sys.argv[2])
print(s.data("Subject: relayed\r\n\r\nover the smart host\r\n"))
s.quit()
"#;

fn peer(
    python: &std::path::Path,
    dir: &std::path::Path,
    tls: bool,
) -> (ChildGuard, u16, std::path::PathBuf) {
    let port = free_port();
    let log = dir.join(format!("peer-{port}.log"));
    let (cert, key) = if tls {
        let pki = dir.join("pki");
        write_pki(&dev_pki(&["peer.test"]), &pki).unwrap();
        (pki.join("cert.pem"), pki.join("key.pem"))
    } else {
        ("-".into(), "-".into())
    };
    let child = ChildGuard::spawn(
        Command::new(python)
            .arg("-c")
            .arg(PEER)
            .arg(port.to_string())
            .arg(&log)
            .arg(&cert)
            .arg(&key),
    );
    assert!(
        wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(15)),
        "peer did not start"
    );
    (child, port, log)
}

fn rules(tls_port: u16, plain_port: u16) -> String {
    format!(
        r#"
[[rule]]
name = "tls_only_to_secure_test"
match = "all"
conditions = [{{ relaying = true }}, {{ recipient_domain = {{ is = "secure.test" }} }}]
actions = [{{ relay_host = "127.0.0.1:{tls_port}" }}, {{ relay_tls = "required" }}, {{ relay_tls_versions = ["TLSv1.1", "TLSv1.2"] }}]

[[rule]]
name = "bounce_test_in_plaintext"
match = "all"
conditions = [{{ relaying = true }}, {{ recipient_domain = {{ is = "bounce.test" }} }}]
actions = [{{ relay_host = "127.0.0.1:{plain_port}" }}, {{ relay_tls = "none" }}]

[[rule]]
name = "tls_only_to_plain_test"
match = "all"
conditions = [{{ relaying = true }}, {{ recipient_domain = {{ is = "plain.test" }} }}]
actions = [{{ relay_host = "127.0.0.1:{plain_port}" }}, {{ relay_tls = "required" }}]
"#
    )
}

#[test]
fn the_binary_relays_through_the_smart_host_rule_over_tls_only() {
    let Some(python) = python_with("aiosmtpd") else {
        return;
    };
    let dir = TempDir::new("relay-e2e");
    let (_tls_peer, tls_port, tls_log) = peer(&python, dir.path(), true);
    let (_plain_peer, plain_port, plain_log) = peer(&python, dir.path(), false);
    let server = Server::start(dir.path(), &rules(tls_port, plain_port));
    let submit = |rcpt: &str| {
        let (code, out) = run(
            Command::new(&python)
                .arg("-c")
                .arg(SUBMIT)
                .arg(server.ports.submissions.to_string())
                .arg(rcpt),
            Duration::from_secs(30),
        );
        assert_eq!(code, Some(0), "{out}\n{}", server.log_text());
        queue_id(&out).unwrap_or_else(|| panic!("{out}"))
    };
    let secure = submit("carol@secure.test");
    let plain = submit("dave@plain.test");

    // The TLS peer gets the message over TLS 1.2 (TLS 1.1 was asked for
    // too, and cannot be negotiated); the queue lets it go.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = fs::read_to_string(&tls_log).unwrap_or_default();
        if log.contains("DATA carol@secure.test TLSv1.2") {
            assert!(log.contains("over the smart host"), "{log}");
            assert!(
                log.contains(&format!("id {secure}")),
                "our Received header travels: {log}"
            );
            assert!(!log.contains("plaintext"), "{log}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not relayed; peer log:\n{log}\nserver log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.queued_toml(&secure).is_some() {
        assert!(Instant::now() < deadline, "delivered message still queued");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The peer without STARTTLS never sees MAIL; the message stays queued,
    // deferred.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let env = server.queued_toml(&plain).expect("still queued");
        if env.contains("state = \"deferred\"") {
            break;
        }
        assert!(Instant::now() < deadline, "never attempted:\n{env}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = fs::read_to_string(&plain_log).unwrap_or_default();
    assert!(
        !log.contains("MAIL") && !log.contains("DATA"),
        "sent without TLS: {log}"
    );
}

/// A permanent refusal at the next hop comes back to a local sender as an
/// RFC 3464 report in its Maildir: outbound runner → spool → local sweep.
#[test]
fn a_refused_relay_bounces_into_the_local_senders_maildir() {
    let Some(python) = python_with("aiosmtpd") else {
        return;
    };
    let dir = TempDir::new("relay-bounce");
    let (_plain_peer, plain_port, _plain_log) = peer(&python, dir.path(), false);
    let server = Server::start(dir.path(), &rules(free_port(), plain_port));
    let (code, out) = run(
        Command::new(&python)
            .arg("-c")
            .arg(SUBMIT)
            .arg(server.ports.submissions.to_string())
            .arg("reject-me@bounce.test"),
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(0), "{out}");
    let id = queue_id(&out).unwrap_or_else(|| panic!("{out}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let found = server
            .maildir("alice", "localhost")
            .into_iter()
            .find_map(|p| {
                let text = fs::read_to_string(&p).ok()?;
                text.contains("multipart/report").then_some(text)
            });
        if let Some(text) = found {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no DSN for {id} in alice's Maildir; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        report.contains("Return-Path: <>"),
        "a DSN has the null sender:\n{report}"
    );
    assert!(report.contains("reject-me@bounce.test"), "{report}");
    assert!(report.contains("5.1.1"), "{report}");
}
