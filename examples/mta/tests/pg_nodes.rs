//! Two postern-mta nodes sharing one PostgreSQL queue (`[store] kind =
//! "postgres"`), against a real PostgreSQL server started by the test
//! (postern-testkit: initdb in a temporary directory, loopback port) and
//! a receiving aiosmtpd peer that counts what it is given.
//!
//! - Load on both nodes, one SIGKILLed in the middle of its deliveries:
//!   every acknowledged message reaches the peer; duplicates are only the
//!   messages the dead node had handed to the peer but not yet recorded
//!   (measured, bounded by what it held), and everything is done within
//!   the lease, one scan interval and the backlog's delivery time.
//! - The database stops: the listener answers `451 4.3.0`, never `250`;
//!   it restarts: `250` again, without restarting the node.

mod common;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, Smtp, TempDir, queue_id};
use postern_testkit::{ChildGuard, Postgres, free_port, python_with, wait_for_port};

/// Counts deliveries: one line per DATA with the message's `X-Token`,
/// written before the `250` (so a line is a message the peer accepted).
const PEER: &str = r#"
import asyncio, sys
from aiosmtpd.smtp import SMTP
port, log, delay = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
class Handler:
    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(delay)
        text = envelope.content.decode("utf-8", "replace")
        toks = [l[len("X-Token: "):] for l in text.splitlines() if l.startswith("X-Token: ")]
        with open(log, "a") as f:
            f.write("%s\n" % (toks[0] if toks else "?"))
        return "250 2.0.0 counted"
async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Handler(), hostname="peer.test"), "127.0.0.1", port)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"#;

const LEASE_SECS: u64 = 3;
const SCAN_SECS: u64 = 1;

fn node_config(pg: &Postgres, node: &str, peer_port: u16, retry: &str) -> String {
    format!(
        r#"
[store]
kind = "postgres"
dsn = "{dsn}"
node = "{node}"
lease = "{LEASE_SECS}s"

[[rule]]
name = "far_test_to_the_counting_peer"
match = "all"
conditions = [{{ recipient_domain = {{ is = "far.test" }} }}]
actions = [{{ relay_host = "127.0.0.1:{peer_port}" }}, {{ relay_tls = "none" }}, {{ accept = true }}]
{retry}
"#,
        dsn = pg.dsn("queue"),
    )
}

fn start_peer(python: &Path, dir: &Path, delay: f64) -> (ChildGuard, u16, std::path::PathBuf) {
    let port = free_port();
    let log = dir.join("peer.log");
    let child = ChildGuard::spawn(
        Command::new(python)
            .arg("-c")
            .arg(PEER)
            .arg(port.to_string())
            .arg(&log)
            .arg(delay.to_string()),
    );
    assert!(
        wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(20)),
        "peer did not start"
    );
    (child, port, log)
}

fn delivered(log: &Path) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Sends `tokens` to the node on `port`, one session; the tokens acknowledged with 250.
fn send_all(port: u16, tokens: &[String]) -> Vec<String> {
    let mut acked = Vec::new();
    let Ok(mut c) = Smtp::connect(port) else {
        return acked;
    };
    if c.cmd("EHLO client.test").is_err() {
        return acked;
    }
    for t in tokens {
        let body = format!("Subject: load {t}\r\nX-Token: {t}\r\n\r\nbody of {t}\r\n");
        match c.send(
            "sender@client.test",
            &format!("rcpt-{t}@far.test"),
            body.as_bytes(),
        ) {
            Ok(r) if r.starts_with("250") => {
                assert!(queue_id(&r).is_some(), "{r}");
                acked.push(t.clone());
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    acked
}

#[test]
fn two_nodes_share_the_queue_and_a_killed_node_strands_nothing() {
    let Some(python) = python_with("aiosmtpd") else {
        return;
    };
    let Some(pg) = Postgres::start() else { return };
    pg.create_db("queue");
    let dir = TempDir::new("pg-nodes");
    // Slow enough that the first node is mid-delivery when it dies.
    let (_peer, peer_port, peer_log) = start_peer(&python, dir.path(), 0.05);
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    fs::create_dir_all(&da).expect("dir a");
    fs::create_dir_all(&db).expect("dir b");
    let mut a = Server::start(&da, &node_config(&pg, "node-a", peer_port, ""));
    let b = Server::start(&db, &node_config(&pg, "node-b", peer_port, ""));

    // Load on both nodes at once, four sessions each.
    let tokens: Vec<String> = (0..240).map(|i| format!("t{i:04}")).collect();
    let senders: Vec<_> = tokens
        .chunks(30)
        .enumerate()
        .map(|(i, chunk)| {
            let port = if i % 2 == 0 { a.ports.mta } else { b.ports.mta };
            let chunk = chunk.to_vec();
            std::thread::spawn(move || send_all(port, &chunk))
        })
        .collect();
    let mut acked: Vec<String> = senders
        .into_iter()
        .flat_map(|t| t.join().expect("sender"))
        .collect();
    assert_eq!(
        acked.len(),
        tokens.len(),
        "every message accepted\nA:\n{}\nB:\n{}",
        a.log_text(),
        b.log_text()
    );

    // Kill A once deliveries are flowing and A holds leases.
    let deadline = Instant::now() + Duration::from_secs(30);
    let held_by_a = loop {
        let n: usize = pg
            .psql("queue", "SELECT count(*) FROM postern_messages WHERE lease_owner = 'node-a' AND lease_until > now()")
            .parse()
            .expect("a count");
        if n > 0 && delivered(&peer_log).len() >= 20 {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery under way\nA:\n{}",
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    a.kill9();
    let killed = Instant::now();
    let seen_at_kill = delivered(&peer_log).len();

    // Load goes on at the surviving node.
    let more: Vec<String> = (0..20).map(|i| format!("u{i:04}")).collect();
    let more_acked = send_all(b.ports.mta, &more);
    assert_eq!(more_acked.len(), more.len());
    acked.extend(more_acked);

    // Everything acknowledged arrives; the backlog's own delivery time is
    // allowed on top of lease + scan.
    let backlog = Duration::from_secs_f64(0.05 * acked.len() as f64);
    let bound = Duration::from_secs(LEASE_SECS + SCAN_SECS) + backlog + Duration::from_secs(10);
    let want: HashSet<&String> = acked.iter().collect();
    let done_at = loop {
        let got: HashSet<String> = delivered(&peer_log).into_iter().collect();
        if want.iter().all(|t| got.contains(*t)) {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < bound,
            "after {:?}: {} of {} delivered\nB:\n{}",
            killed.elapsed(),
            want.iter().filter(|t| got.contains(**t)).count(),
            want.len(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };

    // The queue empties (B finished and removed everything, A's too).
    let deadline = Instant::now() + Duration::from_secs(15);
    while pg.psql("queue", "SELECT count(*) FROM postern_messages") != "0" {
        assert!(
            Instant::now() < deadline,
            "queue not empty:\n{}",
            pg.psql(
                "queue",
                "SELECT id, lease_owner, open FROM postern_messages"
            )
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines = delivered(&peer_log);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for l in &lines {
        *counts.entry(l.as_str()).or_default() += 1;
    }
    let dups: Vec<(&str, usize)> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(t, n)| (*t, *n))
        .collect();
    assert!(
        counts.keys().all(|t| want.contains(&t.to_string())),
        "only our messages"
    );
    assert!(
        dups.iter().all(|(_, n)| *n == 2),
        "never more than twice: {dups:?}"
    );
    // A duplicate is a message A handed over and died before recording:
    // at most what A held.
    assert!(
        dups.len() <= held_by_a,
        "{} duplicates, A held {held_by_a}",
        dups.len()
    );
    eprintln!(
        "pg_nodes: {} acknowledged, {} delivered lines, {} duplicates (A held {held_by_a} leases, peer had {seen_at_kill} at the kill), all done {:?} after the kill (lease {LEASE_SECS}s, scan {SCAN_SECS}s)",
        acked.len(),
        lines.len(),
        dups.len(),
        done_at
    );
    drop(b);
}

#[test]
fn an_unreachable_database_gets_451_never_250() {
    let Some(python) = python_with("aiosmtpd") else {
        return;
    };
    let Some(mut pg) = Postgres::start() else {
        return;
    };
    pg.create_db("queue");
    let dir = TempDir::new("pg-451");
    let (_peer, peer_port, peer_log) = start_peer(&python, dir.path(), 0.0);
    let node = Server::start(dir.path(), &node_config(&pg, "solo", peer_port, ""));
    assert_eq!(send_all(node.ports.mta, &["before".to_owned()]), ["before"]);

    pg.crash();
    let mut c = Smtp::connect(node.ports.mta).expect("connect");
    c.cmd("EHLO client.test").expect("ehlo");
    for i in 0..3 {
        let body = format!("X-Token: down{i}\r\n\r\nx\r\n");
        let r = c
            .send("sender@client.test", "r@far.test", body.as_bytes())
            .expect("reply");
        assert!(
            r.starts_with("451 4.3.0"),
            "while the database is down: {r}"
        );
        c.cmd("RSET").expect("rset");
    }
    pg.start_server();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if send_all(node.ports.mta, &["after".to_owned()]) == ["after"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 250 after the restart:\n{}",
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !delivered(&peer_log).contains(&"after".to_owned()) {
        assert!(
            Instant::now() < deadline,
            "not delivered:\n{}",
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !delivered(&peer_log).iter().any(|t| t.starts_with("down")),
        "nothing refused was delivered"
    );
}
