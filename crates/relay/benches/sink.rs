//! Messages per second delivered to Postfix's smtp-sink on loopback, with 1
//! and 10 connections (several messages per connection), beside Postfix's
//! smtp-source against the same sink in the same run.
//!
//! `cargo bench -p postern-relay --bench sink`
//! (`POSTERN_BENCH_MESSAGES` sets the messages per run, default 10000;
//! `POSTERN_BENCH_ROUNDS` the rounds, median reported, default 3).
//!
//! Client and sink share the machine's cores, so only the ratio measured in
//! one run means anything.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postern_proto::{ForwardPath, Host, Mailbox, ReversePath};
use postern_relay::{Connection, Connector, Message, SessionConfig, TlsMode, TlsPolicy};
use postern_testkit::{ChildGuard, find_executable, free_port, wait_for_port};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn body() -> Vec<u8> {
    let mut b =
        b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: bench\r\n\r\n".to_vec();
    while b.len() < 1024 - 2 {
        b.extend_from_slice(b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n");
    }
    b.truncate(1022);
    b.extend_from_slice(b"\r\n");
    b
}

fn smtp_source(bin: &std::path::Path, addr: SocketAddr, sessions: usize, messages: usize) -> f64 {
    let start = Instant::now();
    let status = Command::new(bin)
        .args([
            "-d",
            "-l",
            "1024",
            "-f",
            "alice@example.org",
            "-t",
            "bob@example.net",
        ])
        .args(["-s", &sessions.to_string(), "-m", &messages.to_string()])
        .arg(addr.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("smtp-source runs");
    assert!(status.success(), "smtp-source failed: {status}");
    messages as f64 / start.elapsed().as_secs_f64()
}

async fn relay(addr: SocketAddr, connections: usize, messages: usize) -> f64 {
    let config = Arc::new(SessionConfig::new(
        Host::parse("relay.bench").unwrap().into_owned(),
    ));
    let provider = Arc::new(postern_relay::default_provider());
    let connector = Arc::new(Connector::new(&TlsPolicy::new(TlsMode::None), provider).unwrap());
    let message = Message::new(
        ReversePath::Mailbox(Mailbox::parse("alice@example.org").unwrap().into_owned()),
        [ForwardPath::Mailbox(
            Mailbox::parse("bob@example.net").unwrap().into_owned(),
        )],
        body(),
    );
    let start = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let n = messages / connections + usize::from(i < messages % connections);
            let (config, connector, message) = (config.clone(), connector.clone(), message.clone());
            tokio::spawn(async move {
                let mut conn = Connection::open(addr, "localhost", config, &connector)
                    .await
                    .expect("connects to smtp-sink");
                for _ in 0..n {
                    let r = conn.send(message.clone()).await;
                    assert!(r.all_delivered(), "{r:?}");
                }
                conn.quit().await;
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    messages as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (Some(sink), Some(source)) = (find_executable("smtp-sink"), find_executable("smtp-source"))
    else {
        println!("SKIPPED: smtp-sink/smtp-source not installed (bash scripts/install-peers.sh)");
        return;
    };
    let messages = env("POSTERN_BENCH_MESSAGES", 10_000);
    let rounds = env("POSTERN_BENCH_ROUNDS", 3).max(1);
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _sink = ChildGuard::spawn(
        Command::new(sink)
            .args(["-u", "nobody"])
            .arg(addr.to_string())
            .arg("1024")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(
        wait_for_port(addr, Duration::from_secs(10)),
        "smtp-sink did not start"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{messages} messages of 1 KiB, 1 recipient, to smtp-sink on {addr}; median of {rounds} rounds"
    );
    println!(
        "{:<12} {:>16} {:>16} {:>8}",
        "connections", "smtp-source/s", "postern-relay/s", "ratio"
    );
    for connections in [1, 10] {
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..rounds {
            theirs.push(smtp_source(&source, addr, connections, messages));
            ours.push(rt.block_on(relay(addr, connections, messages)));
        }
        let (o, t) = (median(ours), median(theirs));
        println!("{connections:<12} {t:>16.0} {o:>16.0} {:>8.2}", o / t);
    }
}
