//! End-to-end: the postern-mta binary on three loopback listeners, driven
//! by real clients (swaks; Python's smtplib from $POSTERN_PYTHON), checking
//! the replies, the queue ids, and the Maildir files with their Received
//! header. A missing peer prints SKIPPED, or fails with
//! POSTERN_REQUIRE_PEERS=1.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::{Server, TempDir, queue_id, run};
use postern_testkit::{peer, python_with};

const T: Duration = Duration::from_secs(30);

fn swaks(server: &Server, port: u16, args: &[&str]) -> Option<(Option<i32>, String)> {
    let swaks = peer("swaks")?;
    Some(run(
        Command::new(swaks)
            .args(["--server", "127.0.0.1", "--port", &port.to_string()])
            .args(["--helo", "client.test", "--timeout", "10"])
            .args(args),
        T,
    ))
    .inspect(|(_, out)| {
        if std::env::var_os("POSTERN_TEST_VERBOSE").is_some() {
            eprintln!(
                "swaks on {port}:\n{out}\nserver log:\n{}",
                server.log_text()
            );
        }
    })
}

#[test]
fn swaks_plaintext_on_the_mta_listener_is_queued_and_delivered() {
    let dir = TempDir::new("swaks-plain");
    let server = Server::start(dir.path(), "");
    let Some((code, out)) = swaks(
        &server,
        server.ports.mta,
        &[
            "--from",
            "sender@remote.test",
            "--to",
            "postmaster@localhost",
            "--body",
            "plain body",
        ],
    ) else {
        return;
    };
    assert_eq!(code, Some(0), "{out}");
    let id = queue_id(&out).unwrap_or_else(|| panic!("no queue id in\n{out}"));
    let file = server.wait_maildir("postmaster", "localhost", &id);
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("Return-Path: <sender@remote.test>\nDelivered-To: postmaster@localhost\nReceived: from client.test ([127.0.0.1])"), "{text}");
    assert!(text.contains(&format!("with ESMTP id {id}")), "{text}");
    assert!(!text.contains("using TLS"), "{text}");
    assert!(text.contains("plain body"), "{text}");
    assert!(!text.contains('\r'), "Maildir files use LF");
    // One log line for the transaction, with the queue id.
    let log = server.log_text();
    assert!(
        log.lines().any(|l| l.contains("transaction")
            && l.contains(&id)
            && l.contains("queued")
            && l.contains("listener=\"mta\"")),
        "{log}"
    );
}

#[test]
fn swaks_starttls_auth_on_submission_records_tls_and_user() {
    let dir = TempDir::new("swaks-starttls");
    let server = Server::start(dir.path(), "");
    let Some((code, out)) = swaks(
        &server,
        server.ports.submission,
        &[
            "-tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "alice-pw",
            "--from",
            "alice@localhost",
            "--to",
            "alice@localhost",
        ],
    ) else {
        return;
    };
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("235 2.7.0"), "{out}");
    let id = queue_id(&out).unwrap_or_else(|| panic!("no queue id in\n{out}"));
    let text = fs::read_to_string(server.wait_maildir("alice", "localhost", &id)).unwrap();
    assert!(text.contains("(using TLSv1.3 with cipher TLS13_"), "{text}");
    assert!(text.contains("(Authenticated sender: alice)"), "{text}");
    assert!(text.contains(&format!("with ESMTPSA id {id}")), "{text}");
}

#[test]
fn swaks_implicit_tls_with_auth_login_and_tls12() {
    let dir = TempDir::new("swaks-implicit");
    let server = Server::start(dir.path(), "");
    let Some((code, out)) = swaks(
        &server,
        server.ports.submissions,
        &[
            "--tlsc",
            "--tls-protocol",
            "tlsv1_2",
            "--auth",
            "LOGIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "alice-pw",
            "--from",
            "alice@localhost",
            "--to",
            "postmaster@mydomain.test",
        ],
    ) else {
        return;
    };
    assert_eq!(code, Some(0), "{out}");
    let id = queue_id(&out).unwrap_or_else(|| panic!("no queue id in\n{out}"));
    let text = fs::read_to_string(server.wait_maildir("postmaster", "mydomain.test", &id)).unwrap();
    assert!(
        text.contains("(using TLSv1.2 with cipher TLS_ECDHE_"),
        "{text}"
    );
    assert!(text.contains("(Authenticated sender: alice)"), "{text}");
}

#[test]
fn swaks_wrong_password_gets_535() {
    let dir = TempDir::new("swaks-535");
    let server = Server::start(dir.path(), "");
    let Some((code, out)) = swaks(
        &server,
        server.ports.submission,
        &[
            "-tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "wrong",
            "--to",
            "alice@localhost",
        ],
    ) else {
        return;
    };
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("535 5.7.8"), "{out}");
    assert!(queue_id(&out).is_none(), "{out}");
}

#[test]
fn swaks_sees_no_auth_on_plaintext_and_unknown_users_get_550_511() {
    let dir = TempDir::new("swaks-noauth");
    let server = Server::start(dir.path(), "");
    for port in [server.ports.mta, server.ports.submission] {
        let Some((code, out)) = swaks(
            &server,
            port,
            &[
                "--auth",
                "PLAIN",
                "--auth-user",
                "alice",
                "--auth-password",
                "alice-pw",
                "--to",
                "alice@localhost",
            ],
        ) else {
            return;
        };
        assert_ne!(code, Some(0), "{out}");
        assert!(
            out.contains("Host did not advertise authentication"),
            "{out}"
        );
        assert!(
            out.contains("250 STARTTLS") || out.contains("250-STARTTLS"),
            "{out}"
        );
        assert!(!out.contains("AUTH PLAIN"), "{out}");
    }
    let Some((_, out)) = swaks(&server, server.ports.mta, &["--to", "nobody@localhost"]) else {
        return;
    };
    assert!(out.contains("550 5.1.1 <nobody@localhost>"), "{out}");
    let Some((_, out)) = swaks(
        &server,
        server.ports.mta,
        &["--to", "someone@elsewhere.test"],
    ) else {
        return;
    };
    assert!(
        out.contains("554 5.7.1 <someone@elsewhere.test>: Relay access denied"),
        "{out}"
    );
}

#[test]
fn require_starttls_rule_refuses_plaintext_and_accepts_tls() {
    let dir = TempDir::new("swaks-requiretls");
    let server = Server::start(dir.path(), "");
    let Some((code, out)) = swaks(
        &server,
        server.ports.mta,
        &["--from", "peer@remote.test", "--to", "bob@mydomain.test"],
    ) else {
        return;
    };
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("550 5.7.1 Accepting only secure delivery (STARTTLS) for mydomain.test"),
        "{out}"
    );
    assert!(server.maildir("bob", "mydomain.test").is_empty());
    let Some((code, out)) = swaks(
        &server,
        server.ports.mta,
        &[
            "-tls",
            "--from",
            "peer@remote.test",
            "--to",
            "bob@mydomain.test",
        ],
    ) else {
        return;
    };
    assert_eq!(code, Some(0), "{out}");
    let id = queue_id(&out).unwrap_or_else(|| panic!("no queue id in\n{out}"));
    server.wait_maildir("bob", "mydomain.test", &id);
    let log = server.log_text();
    assert!(
        log.lines().any(|l| l.contains("transaction")
            && l.contains("allow_only_tls_for_mydomain_test")
            && l.contains("550 5.7.1")),
        "the refusal is logged with the deciding rule:\n{log}"
    );
}

/// Python smtplib on each listener: plaintext, STARTTLS + AUTH, implicit
/// TLS + AUTH; AUTH on plaintext is not advertised and refused with 538;
/// a wrong password gets 535.
const SMTPLIB: &str = r#"
import base64, json, smtplib, ssl, sys
mta, sub, subs = (int(p) for p in sys.argv[1:4])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
out = {}
msg = "From: alice@localhost\r\nTo: alice@localhost\r\nSubject: smtplib %s\r\n\r\nhello from smtplib %s\r\n"

s = smtplib.SMTP("127.0.0.1", mta, timeout=10)
s.ehlo("py.test")
out["mta_plain_auth_advertised"] = s.has_extn("auth")
out["mta_plain_starttls_advertised"] = s.has_extn("starttls")
code, text = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice\0alice-pw").decode())
out["mta_plain_auth"] = [code, text.decode()]
refused = s.sendmail("peer@remote.test", ["postmaster@localhost"], msg % ("plain", "plain"))
out["mta_plain_refused"] = len(refused)
s.quit()

s = smtplib.SMTP("127.0.0.1", sub, timeout=10)
s.ehlo("py.test")
code, text = s.docmd("AUTH", "LOGIN")
out["sub_plain_auth"] = [code, text.decode()]
s.starttls(context=ctx)
s.ehlo("py.test")
out["sub_tls_auth_advertised"] = s.has_extn("auth")
out["sub_tls_version"] = s.sock.version()
s.login("alice", "alice-pw")
s.mail("alice@localhost")
s.rcpt("alice@localhost")
code, text = s.data(msg % ("starttls", "starttls"))
out["sub_data"] = [code, text.decode()]
s.quit()

s = smtplib.SMTP_SSL("127.0.0.1", subs, timeout=10, context=ctx)
s.ehlo("py.test")
try:
    s.login("alice", "not-the-password")
    out["subs_bad_login"] = "accepted"
except smtplib.SMTPAuthenticationError as e:
    out["subs_bad_login"] = [e.smtp_code, e.smtp_error.decode()]
s.login("alice", "alice-pw")
s.mail("alice@localhost")
s.rcpt("alice@localhost")
code, text = s.data(msg % ("implicit", "implicit"))
out["subs_data"] = [code, text.decode()]
s.quit()
print(json.dumps(out))
"#;

#[test]
fn python_smtplib_on_every_listener() {
    let Some(python) = python_with("smtplib") else {
        return;
    };
    let dir = TempDir::new("smtplib");
    let server = Server::start(dir.path(), "");
    let (code, out) = run(
        Command::new(python).arg("-c").arg(SMTPLIB).args([
            server.ports.mta.to_string(),
            server.ports.submission.to_string(),
            server.ports.submissions.to_string(),
        ]),
        T,
    );
    assert_eq!(code, Some(0), "{out}\nserver log:\n{}", server.log_text());
    let json = out.lines().last().unwrap_or_default();
    let has = |needle: &str| assert!(json.contains(needle), "{needle} not in {json}");
    has(r#""mta_plain_auth_advertised": false"#);
    has(r#""mta_plain_starttls_advertised": true"#);
    has(r#""mta_plain_auth": [538, "5.7.11 "#);
    has(r#""mta_plain_refused": 0"#);
    has(r#""sub_plain_auth": [538, "5.7.11 "#);
    has(r#""sub_tls_auth_advertised": true"#);
    has(r#""sub_tls_version": "TLSv1.3""#);
    has(r#""subs_bad_login": [535, "5.7.8 "#);
    for key in ["sub_data", "subs_data"] {
        let at = json.find(key).unwrap();
        let id = queue_id(&json[at..]).unwrap_or_else(|| panic!("no queue id for {key} in {json}"));
        let text = fs::read_to_string(server.wait_maildir("alice", "localhost", &id)).unwrap();
        assert!(text.contains("(Authenticated sender: alice)"), "{text}");
        assert!(text.contains("using TLSv1.3"), "{text}");
    }
    assert_eq!(server.maildir("postmaster", "localhost").len(), 1);
}

/// BDAT (CHUNKING) end to end, and a message with a local and a remote
/// recipient: the local copy goes to the Maildir at once, the remote one
/// stays in the queue for the outbound runner, with the local recipient
/// marked delivered in the envelope.
#[test]
fn bdat_and_mixed_local_and_remote_recipients() {
    let dir = TempDir::new("bdat-mixed");
    // The remote domain goes to a smart host that refuses connections, so
    // the remote recipient stays queued (deferred) without any DNS.
    let closed = postern_testkit::free_port();
    let rule = format!(
        "[[rule]]\nname = \"remote_test_via_closed_port\"\nconditions = [{{ relaying = true }}, {{ recipient_domain = {{ is = \"remote.test\" }} }}]\nactions = [{{ relay_host = \"127.0.0.1:{closed}\" }}, {{ relay_tls = \"none\" }}]\n"
    );
    // Rules given in `extra` come before the built-in ones of the template.
    let server = Server::start(dir.path(), &rule);
    // BDAT on plaintext to a local mailbox (no AUTH needed); the
    // authenticated relay part uses smtplib over implicit TLS below.
    let mut smtp = common::Smtp::connect(server.ports.mta).unwrap();
    smtp.cmd("EHLO bdat.test").unwrap();
    assert!(
        smtp.cmd("MAIL FROM:<peer@elsewhere.test>")
            .unwrap()
            .starts_with("250")
    );
    assert!(
        smtp.cmd("RCPT TO:<postmaster@localhost>")
            .unwrap()
            .starts_with("250")
    );
    let part1 = b"Subject: chunked\r\n\r\nfirst chunk\r\n";
    let part2 = b"second chunk\r\n";
    std::io::Write::write_all(
        &mut smtp.stream().try_clone().unwrap(),
        &[format!("BDAT {}\r\n", part1.len()).as_bytes(), part1].concat(),
    )
    .unwrap();
    assert!(smtp.reply().unwrap().starts_with("250"));
    std::io::Write::write_all(
        &mut smtp.stream().try_clone().unwrap(),
        &[format!("BDAT {} LAST\r\n", part2.len()).as_bytes(), part2].concat(),
    )
    .unwrap();
    let reply = smtp.reply().unwrap();
    let id = queue_id(&reply).unwrap_or_else(|| panic!("{reply}"));
    let text = fs::read_to_string(server.wait_maildir("postmaster", "localhost", &id)).unwrap();
    assert!(
        text.ends_with("Subject: chunked\n\nfirst chunk\nsecond chunk\n"),
        "{text}"
    );

    let Some(python) = python_with("smtplib") else {
        return;
    };
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL("127.0.0.1", int(sys.argv[1]), timeout=10, context=ctx)
s.login("alice", "alice-pw")
s.mail("alice@localhost")
s.rcpt("alice@localhost")
s.rcpt("friend@remote.test")
print(s.data("Subject: mixed\r\n\r\nto both\r\n"))
s.quit()
"#;
    let (code, out) = run(
        Command::new(python)
            .arg("-c")
            .arg(script)
            .arg(server.ports.submissions.to_string()),
        T,
    );
    assert_eq!(code, Some(0), "{out}");
    let id = queue_id(&out).unwrap_or_else(|| panic!("{out}"));
    server.wait_maildir("alice", "localhost", &id);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let env = server.queued_toml(&id).unwrap_or_default();
        if env.contains("state = \"delivered\"") {
            assert!(env.contains("address = \"friend@remote.test\""), "{env}");
            assert!(
                env.contains("state = \"pending\"") || env.contains("state = \"deferred\""),
                "the remote recipient waits for the outbound runner:\n{env}"
            );
            assert!(env.contains("tls_version = \"TLSv1.3\""), "{env}");
            assert!(env.contains("auth_user = \"alice\""), "{env}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "envelope not updated:\n{env}\nlog:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Refused bodies leave nothing behind: too large (552 5.3.4), bare LF
/// (550 5.6.11, SMTP smuggling material), and a client that disconnects
/// mid-body. The temporary spool files are gone and nothing is delivered.
#[test]
fn refused_and_abandoned_bodies_leave_nothing_behind() {
    let dir = TempDir::new("refused-bodies");
    let server = Server::start(dir.path(), "[limits]\nmax_message_size = 2000\n");

    let mut smtp = common::Smtp::connect(server.ports.mta).unwrap();
    let ehlo = smtp.cmd("EHLO big.test").unwrap();
    assert!(ehlo.contains("SIZE 2000"), "{ehlo}");
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(5000));
    let reply = smtp
        .send("a@remote.test", "postmaster@localhost", big.as_bytes())
        .unwrap();
    assert!(reply.starts_with("552 5.3.4"), "{reply}");
    let reply = smtp
        .send(
            "a@remote.test",
            "postmaster@localhost",
            b"Subject: smuggle\r\n\r\nline\n.\nMAIL FROM:<x@y>\r\n",
        )
        .unwrap();
    assert!(reply.starts_with("550 5.6.11"), "{reply}");
    assert!(smtp.cmd("RSET").unwrap().starts_with("250"));
    assert_eq!(
        server.uncommitted(),
        0,
        "uncommitted bodies left after refusals"
    );

    // Half a body, then the connection drops.
    let mut smtp = common::Smtp::connect(server.ports.mta).unwrap();
    smtp.cmd("EHLO gone.test").unwrap();
    smtp.cmd("MAIL FROM:<a@remote.test>").unwrap();
    smtp.cmd("RCPT TO:<postmaster@localhost>").unwrap();
    assert!(smtp.cmd("DATA").unwrap().starts_with("354"));
    std::io::Write::write_all(
        &mut smtp.stream().try_clone().unwrap(),
        b"Subject: half\r\n\r\nhalf a bo",
    )
    .unwrap();
    // A small body is kept in memory until the commit: give the server
    // time to take it, then drop the connection.
    std::thread::sleep(Duration::from_millis(200));
    drop(smtp);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.uncommitted() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the abandoned body stays"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.maildir("postmaster", "localhost").is_empty());
    let queued = server.queued();
    assert!(queued.is_empty(), "{queued:?}");
}

/// Postfix's smtp-source as the client: 200 messages over 4 parallel
/// sessions, several per connection; every one lands in the Maildir.
#[test]
fn smtp_source_load_is_delivered_completely() {
    let Some(source) = peer("smtp-source") else {
        return;
    };
    let dir = TempDir::new("smtp-source");
    let server = Server::start(dir.path(), "");
    let (code, out) = run(
        Command::new(source)
            .args(["-m", "200", "-s", "4", "-d", "-l", "4096", "-S", "load"])
            .args([
                "-M",
                "source.test",
                "-f",
                "load@source.test",
                "-t",
                "postmaster@localhost",
            ])
            .arg(format!("127.0.0.1:{}", server.ports.mta)),
        Duration::from_secs(120),
    );
    assert_eq!(code, Some(0), "{out}\n{}", server.log_text());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server.maildir("postmaster", "localhost").len() < 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of 200 delivered",
            server.maildir("postmaster", "localhost").len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.maildir("postmaster", "localhost").len(), 200);
    let queued = server.log_text().matches("result=\"queued\"").count();
    assert_eq!(queued, 200, "one log line per transaction");
}
