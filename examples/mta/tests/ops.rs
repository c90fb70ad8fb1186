//! Operations: the `/metrics` endpoint of a running binary after real
//! traffic, checked by a parser we did not write (`promtool check metrics`,
//! Debian's prometheus package) and by the values of a few series; and
//! `--log-format json`, whose lines parse as JSON with the expected fields.
//! A missing peer (promtool, swaks) prints SKIPPED, or fails with
//! POSTERN_REQUIRE_PEERS=1.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Ports, Server, Smtp, TempDir, bin, config_text, run};
use postern_testkit::{ChildGuard, free_port, peer, wait_for_port};

const T: Duration = Duration::from_secs(30);

/// `GET path` on 127.0.0.1:`port`; the status line and the body.
fn http_get(port: u16, path: &str) -> (String, String) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("metrics port");
    tcp.set_read_timeout(Some(T)).expect("timeout");
    write!(tcp, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
    let mut response = String::new();
    tcp.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// The value of the sample `series` (name and labels exactly as written).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn swaks(port: u16, password: &str, to: &str) -> Option<String> {
    let swaks = peer("swaks")?;
    let (_, out) = run(
        Command::new(swaks)
            .args(["--server", "127.0.0.1", "--port", &port.to_string()])
            .args(["--helo", "client.test", "--timeout", "10", "-tls"])
            .args(["--auth", "PLAIN", "--auth-user", "alice"])
            .args(["--auth-password", password, "--from", "alice@localhost"])
            .args(["--to", to]),
        T,
    );
    Some(out)
}

#[test]
fn metrics_after_traffic_pass_promtool_and_count_what_happened() {
    let Some(promtool) = peer("promtool") else {
        return;
    };
    let dir = TempDir::new("metrics");
    let port = free_port();
    // Relayed mail goes to a smart host that refuses connections: one
    // deferred delivery attempt, without DNS.
    let closed = free_port();
    // A fourth listener that takes one connection per address.
    let tiny = free_port();
    let extra = format!(
        "[metrics]\naddress = \"127.0.0.1:{port}\"\n\n[[listener]]\nname = \"tiny\"\naddress = \"127.0.0.1:{tiny}\"\nmode = \"plain\"\nmax_connections_per_ip = 1\n\n[[rule]]\nname = \"remote_via_closed_port\"\nconditions = [{{ relaying = true }}, {{ recipient_domain = {{ is = \"remote.test\" }} }}]\nactions = [{{ relay_host = \"127.0.0.1:{closed}\" }}, {{ relay_tls = \"none\" }}]\n"
    );
    let server = Server::start(dir.path(), &extra);
    assert!(wait_for_port(([127, 0, 0, 1], port).into(), T));
    // The port is bound before the banner is printed: wait for the line.
    let line = format!("metrics on http://127.0.0.1:{port}/metrics");
    let deadline = std::time::Instant::now() + T;
    while !server.log_text().contains(&line) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let banner = server.log_text();
    assert!(banner.contains(&line), "{banner}");

    // Traffic: AUTH over STARTTLS, accepted and relayed; a wrong password.
    let Some(out) = swaks(server.ports.submission, "alice-pw", "carol@remote.test") else {
        return;
    };
    assert!(out.contains("queued as"), "{out}");
    let Some(out) = swaks(server.ports.submission, "wrong", "alice@localhost") else {
        return;
    };
    assert!(out.contains("535 5.7.8"), "{out}");
    // Plaintext: an unknown user refused, a message accepted.
    let mut smtp = Smtp::connect(server.ports.mta).expect("connect");
    smtp.cmd("EHLO client.test").expect("EHLO");
    smtp.cmd("MAIL FROM:<peer@elsewhere.test>").expect("MAIL");
    let r = smtp.cmd("RCPT TO:<nobody@localhost>").expect("RCPT");
    assert!(r.starts_with("550 5.1.1"), "{r}");
    smtp.cmd("RSET").expect("RSET");
    let r = smtp.send(
        "peer@elsewhere.test",
        "postmaster@localhost",
        b"Subject: m\r\n\r\nhi\r\n",
    );
    assert!(r.expect("send").starts_with("250"));
    smtp.cmd("QUIT").expect("QUIT");
    // Plaintext spoken to the implicit-TLS port: a failed handshake.
    let mut tcp = TcpStream::connect(("127.0.0.1", server.ports.submissions)).expect("465");
    tcp.set_read_timeout(Some(T)).expect("timeout");
    tcp.write_all(b"EHLO client.test\r\n").expect("write");
    let _ = tcp.read_to_end(&mut Vec::new());

    // A second connection from our address to the tiny listener.
    let first = Smtp::connect(tiny).expect("tiny");
    let mut second = TcpStream::connect(("127.0.0.1", tiny)).expect("tiny again");
    let mut refused = String::new();
    let _ = second.read_to_string(&mut refused);
    assert!(refused.starts_with("421 4.7.0"), "{refused}");
    drop(first);

    // The runner's attempt and the closes are recorded asynchronously.
    let deferred = "postern_deliveries_total{outcome=\"deferred\",tls_mode=\"none\",policy_source=\"rule\",tls=\"none\"}";
    let not_tls =
        "postern_tls_handshake_failures_total{listener=\"submissions\",reason=\"not_tls\"}";
    let deadline = Instant::now() + T;
    let text = loop {
        let (status, text) = http_get(port, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        if value(&text, deferred).is_some() && value(&text, not_tls).is_some() {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "{text}\nlog:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    let file = dir.path().join("metrics.txt");
    fs::write(&file, &text).expect("write metrics");
    let (code, out) = run(
        Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(fs::File::open(&file).expect("metrics file")),
        T,
    );
    assert_eq!(code, Some(0), "promtool check metrics:\n{out}\n{text}");

    let expect = [
        (
            "postern_smtp_auth_total{listener=\"submission\",mechanism=\"PLAIN\",result=\"success\"}",
            1.0,
        ),
        (
            "postern_smtp_auth_total{listener=\"submission\",mechanism=\"PLAIN\",result=\"failure\"}",
            1.0,
        ),
        (
            "postern_smtp_refused_total{listener=\"mta\",stage=\"rcpt\",code=\"550\",enhanced=\"5.1.1\"}",
            1.0,
        ),
        (
            "postern_smtp_messages_accepted_total{listener=\"mta\"}",
            1.0,
        ),
        (
            "postern_smtp_messages_accepted_total{listener=\"submission\"}",
            1.0,
        ),
        (not_tls, 1.0),
        (
            "postern_smtp_connections_total{listener=\"submission\",tls=\"TLSv1.3\"}",
            2.0,
        ),
        ("postern_smtp_commit_seconds_count", 2.0),
    ];
    for (series, want) in expect {
        assert_eq!(value(&text, series), Some(want), "{series} in\n{text}");
    }
    assert!(value(&text, deferred).is_some_and(|v| v >= 1.0), "{text}");
    // The harness's port probes are connections too: at least ours.
    let plain = "postern_smtp_connections_total{listener=\"mta\",tls=\"none\"}";
    assert!(value(&text, plain).is_some_and(|v| v >= 1.0), "{text}");
    assert!(value(&text, "postern_delivery_attempt_seconds_count").is_some_and(|v| v >= 1.0));
    // The relayed message waits for its retry.
    assert!(
        value(&text, "postern_queue_messages").is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert!(value(&text, "postern_queue_oldest_message_age_seconds").is_some_and(|v| v >= 0.0));
    let throttled = "postern_smtp_throttled_total{listener=\"tiny\",limit=\"connections_per_ip\"}";
    assert_eq!(value(&text, throttled), Some(1.0), "{text}");

    let (status, _) = http_get(port, "/other");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

#[test]
fn json_log_lines_parse_with_their_fields() {
    let dir = TempDir::new("json-logs");
    let ports = Ports::free();
    let config = dir.path().join("postern.toml");
    let text = config_text(ports, &dir.path().join("data"), "");
    fs::write(&config, text).expect("config");
    let stderr = dir.path().join("stderr.log");
    let mut child = ChildGuard::spawn(
        Command::new(bin())
            .args(["--log-format", "json", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).expect("stderr file")),
    );
    assert!(wait_for_port(([127, 0, 0, 1], ports.mta).into(), T));
    let mut smtp = Smtp::connect(ports.mta).expect("connect");
    smtp.cmd("EHLO client.test").expect("EHLO");
    let r = smtp.send(
        "peer@elsewhere.test",
        "postmaster@localhost",
        b"Subject: j\r\n\r\nhi\r\n",
    );
    assert!(r.expect("send").starts_with("250"));
    smtp.cmd("QUIT").expect("QUIT");

    // Wait for the transaction line, then check every line.
    let deadline = Instant::now() + T;
    let lines: Vec<serde_json::Value> = loop {
        let log = fs::read_to_string(&stderr).unwrap_or_default();
        let complete = log.rsplit_once('\n').map_or("", |(done, _)| done);
        let lines: Vec<serde_json::Value> = complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        if lines.iter().any(|l| l["target"] == "transaction") {
            break lines;
        }
        assert!(Instant::now() < deadline, "no transaction line in\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.0.kill();
    for l in &lines {
        for field in ["timestamp", "level", "target"] {
            assert!(l[field].is_string(), "{field} missing: {l}");
        }
    }
    let txn = lines
        .iter()
        .find(|l| l["target"] == "transaction")
        .expect("found");
    assert_eq!(txn["level"], "INFO", "{txn}");
    assert_eq!(txn["listener"], "mta", "{txn}");
    assert_eq!(txn["result"], "queued", "{txn}");
    assert_eq!(txn["from"], "<peer@elsewhere.test>", "{txn}");
    assert_eq!(txn["span"]["name"], "conn", "{txn}");
    assert!(txn["id"].as_str().is_some_and(|id| id.len() == 26), "{txn}");
    assert!(
        lines.iter().any(|l| l["message"] == "listening"),
        "{lines:?}"
    );
}
