//! The queue tools on a running server (`postern-mta queue ...` through its
//! control socket): a message deferred by a smart host that is down is
//! listed the way mailq lists it and shown with its last reason; a held
//! message stays put through `retry --all` and a restart while the others
//! are delivered once aiosmtpd (the real peer, the relay crate's
//! `tests/peers/smtpd.py`) is up; release delivers it at once; remove
//! takes a message away; an unknown id and a stopped server exit 2.
//!
//! Skipped loudly without swaks or aiosmtpd, failed when
//! POSTERN_REQUIRE_PEERS=1.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Aiosmtpd, Server, TempDir, bin, queue_id, run};
use postern_testkit::{free_port, peer, python_with};

const T: Duration = Duration::from_secs(30);

/// `postern-mta --config FILE queue ARGS`: (exit code, output).
fn queue(server: &Server, args: &[&str]) -> (Option<i32>, String) {
    run(
        Command::new(bin())
            .arg("--config")
            .arg(&server.config)
            .arg("queue")
            .args(args),
        T,
    )
}

/// Submits one message from alice to `to` with swaks (AUTH over STARTTLS);
/// its queue id.
fn submit(server: &Server, to: &str) -> Option<String> {
    let swaks = peer("swaks")?;
    let (_, out) = run(
        Command::new(swaks)
            .args(["--server", "127.0.0.1", "--port"])
            .arg(server.ports.submission.to_string())
            .args(["--helo", "client.test", "--timeout", "10", "-tls"])
            .args(["--auth", "PLAIN", "--auth-user", "alice"])
            .args(["--auth-password", "alice-pw", "--from", "alice@localhost"])
            .args(["--to", to]),
        T,
    );
    Some(queue_id(&out).unwrap_or_else(|| panic!("not queued: {out}")))
}

/// The entry of `id` from `queue show ID --json`, once `ready` holds.
fn wait_entry(
    server: &Server,
    id: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + T;
    loop {
        let (code, out) = queue(server, &["show", id, "--json"]);
        if code == Some(0) {
            let v: serde_json::Value = serde_json::from_str(&out).expect("show --json parses");
            if ready(&v) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{id} never got there: {out}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn first_state(v: &serde_json::Value) -> String {
    v["envelope"]["recipients"][0]["status"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until `queue show ID` says there is no such message (delivered
/// and removed).
fn wait_gone(server: &Server, id: &str) {
    let deadline = Instant::now() + T;
    loop {
        let (code, out) = queue(server, &["show", id]);
        if code == Some(2) {
            assert!(out.contains("no message"), "{out}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} stayed: {out}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn list_show_hold_retry_release_remove_on_a_running_server() {
    if python_with("aiosmtpd").is_none() || peer("swaks").is_none() {
        return;
    }
    let dir = TempDir::new("qtools");
    // remote.test goes to a smart host that is down until the sink starts;
    // dead.test to one that stays down.
    let (smart, dead) = (free_port(), free_port());
    let rules = format!(
        "[[rule]]\nname = \"remote_via_smart\"\nconditions = [{{ relaying = true }}, {{ recipient_domain = {{ is = \"remote.test\" }} }}]\nactions = [{{ relay_host = \"127.0.0.1:{smart}\" }}, {{ relay_tls = \"none\" }}]\n\n[[rule]]\nname = \"dead_via_nothing\"\nconditions = [{{ relaying = true }}, {{ recipient_domain = {{ is = \"dead.test\" }} }}]\nactions = [{{ relay_host = \"127.0.0.1:{dead}\" }}, {{ relay_tls = \"none\" }}]\n"
    );
    let mut server = Server::start(dir.path(), &rules);

    let (code, out) = queue(&server, &["list"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Mail queue is empty"), "{out}");

    let (a, b) = (
        submit(&server, "carol@remote.test").expect("swaks"),
        submit(&server, "dave@remote.test").expect("swaks"),
    );
    let c = submit(&server, "erin@dead.test").expect("swaks");
    for id in [&a, &b, &c] {
        wait_entry(&server, id, |v| first_state(v) == "deferred");
    }

    // mailq's shape: the id, the size, the sender, the reason, the recipient.
    let (code, out) = queue(&server, &["list"]);
    assert_eq!(code, Some(0), "{out}");
    for (id, rcpt) in [
        (&a, "carol@remote.test"),
        (&b, "dave@remote.test"),
        (&c, "erin@dead.test"),
    ] {
        assert!(out.contains(id.as_str()), "{out}");
        assert!(out.contains(rcpt), "{out}");
    }
    assert!(out.contains("<alice@localhost>"), "{out}");
    assert!(out.contains("in 3 Requests."), "{out}");
    assert!(out.contains("(4."), "the deferral reason: {out}");
    let (code, out) = queue(&server, &["list", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let list: serde_json::Value = serde_json::from_str(&out).expect("list --json parses");
    assert_eq!(list.as_array().map(Vec::len), Some(3), "{out}");
    assert!(list[0]["size"].as_u64().is_some_and(|s| s > 100), "{out}");

    let (code, out) = queue(&server, &["show", &a]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("recipient: carol@remote.test: deferred"),
        "{out}"
    );
    assert!(out.contains("attempts: 1"), "{out}");
    assert!(out.contains("next attempt: "), "{out}");
    assert!(out.contains("last: 4."), "{out}");

    // Hold A; it is marked, and stays held through a restart.
    let (code, out) = queue(&server, &["hold", &a]);
    assert_eq!((code, out.trim()), (Some(0), "1 message(s) changed"));
    let (_, out) = queue(&server, &["hold", &a]);
    assert_eq!(
        out.trim(),
        "0 message(s) changed",
        "holding twice changes nothing"
    );
    server.restart();
    let (_, out) = queue(&server, &["list"]);
    assert!(
        out.contains(&format!("{a}!")),
        "held after a restart: {out}"
    );

    // The smart host comes up; retry --all sends B at once (the next
    // attempt was minutes away) but not the held A.
    let sink = Aiosmtpd::start_on(smart, "plain", &[]).expect("aiosmtpd");
    let (code, out) = queue(&server, &["retry", "--all"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out.trim(),
        "2 message(s) changed",
        "B and C, not the held A"
    );
    wait_gone(&server, &b);
    std::thread::sleep(Duration::from_secs(3));
    let held = wait_entry(&server, &a, |_| true);
    assert_eq!(held["state"], "hold");
    assert_eq!(first_state(&held), "deferred");
    assert_eq!(sink.events("DATA").len(), 1, "{:?}", sink.events("DATA"));

    // Released: delivered at once.
    let (code, out) = queue(&server, &["release", &a]);
    assert_eq!((code, out.trim()), (Some(0), "1 message(s) changed"));
    wait_gone(&server, &a);
    let got = sink.events("DATA");
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got.iter().any(|m| m.contains("carol@remote.test")),
        "{got:?}"
    );

    // C (dead.test) is removed for good; the queue is then empty.
    let (code, out) = queue(&server, &["remove", &c]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = queue(&server, &["show", &c]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains(&format!("no message {c}")), "{out}");
    let (_, out) = queue(&server, &["list"]);
    assert!(out.contains("Mail queue is empty"), "{out}");

    // Unknown and malformed ids: exit 2 with a clear message.
    for op in ["show", "retry", "hold", "release", "remove"] {
        let (code, out) = queue(&server, &[op, "0005e3b1a2c3d4000100000001"]);
        assert_eq!(code, Some(2), "{op}: {out}");
        assert!(
            out.contains("no message 0005e3b1a2c3d4000100000001"),
            "{op}: {out}"
        );
    }
    let (code, out) = queue(&server, &["hold", "not-an-id"]);
    assert_eq!(code, Some(2), "{out}");

    // No server: exit 2, saying so.
    server.signal("TERM");
    assert_eq!(server.wait_exit(T), Some(0));
    let (code, out) = queue(&server, &["list"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("the server is not running"), "{out}");
}
