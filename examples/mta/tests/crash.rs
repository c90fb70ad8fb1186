//! Durability and operations: SIGKILL under load never loses an
//! acknowledged message and never delivers half of one; SIGTERM lets a
//! transaction under way finish; SIGHUP reloads certificates.

mod common;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, Smtp, TempDir, queue_id};

const CLIENTS: usize = 4;
const PER_CLIENT: usize = 100;

fn body(token: &str) -> Vec<u8> {
    let mut b = format!(
        "From: load@remote.test\r\nTo: postmaster@localhost\r\nSubject: {token}\r\nMessage-ID: <{token}@remote.test>\r\n\r\n"
    )
    .into_bytes();
    // ~16 KiB, so a kill often lands inside a body.
    for i in 0..200 {
        b.extend_from_slice(format!("{token} line {i:04} .................................................................\r\n").as_bytes());
    }
    b.extend_from_slice(format!("END-{token}\r\n").as_bytes());
    b
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_message_and_delivers_no_half_message() {
    let dir = TempDir::new("crash");
    let mut server = Server::start(dir.path(), "");
    let port = server.ports.mta;
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let attempted = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for c in 0..CLIENTS {
        let acked = acked.clone();
        let attempted = attempted.clone();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut n = 0;
            'outer: while n < PER_CLIENT && !stop.load(Ordering::Relaxed) {
                let Ok(mut smtp) = Smtp::connect(port) else {
                    break;
                };
                if smtp.cmd("EHLO load.test").is_err() {
                    break;
                }
                // Several messages per connection, then a new connection.
                for _ in 0..10 {
                    if n >= PER_CLIENT || stop.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                    let token = format!("TOKEN-{c}-{n}");
                    n += 1;
                    attempted.fetch_add(1, Ordering::Relaxed);
                    match smtp.send("load@remote.test", "postmaster@localhost", &body(&token)) {
                        Ok(reply) if reply.starts_with("250") => {
                            let id = queue_id(&reply).expect("250 carries the queue id");
                            acked.lock().unwrap().push((token, id));
                        }
                        Ok(reply) => panic!("unexpected reply {reply}"),
                        Err(_) => break 'outer,
                    }
                }
                let _ = smtp.cmd("QUIT");
            }
        }));
    }
    // Kill once about half the load is acknowledged.
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().len() < CLIENTS * PER_CLIENT / 2 {
        assert!(
            Instant::now() < deadline,
            "load too slow; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("client thread");
    }
    let acked = acked.lock().unwrap().clone();
    let attempted = attempted.load(Ordering::Relaxed);
    eprintln!(
        "killed after {} acknowledged of {attempted} attempted",
        acked.len()
    );
    assert!(acked.len() >= CLIENTS * PER_CLIENT / 2);
    assert!(
        attempted < CLIENTS * PER_CLIENT,
        "the kill should land mid-load"
    );

    // Restart: the spool is recovered and local delivery finishes.
    server.restart();
    let maildir = server.data.join("mail/localhost/postmaster/new");
    let deadline = Instant::now() + Duration::from_secs(60);
    let by_id = loop {
        let mut by_id: HashMap<String, Vec<String>> = HashMap::new();
        for entry in fs::read_dir(&maildir)
            .map(|d| d.flatten().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = name
                .split(".Q")
                .nth(1)
                .and_then(|r| r.split('R').next())
                .unwrap_or("")
                .to_owned();
            by_id.entry(id).or_default().push(name);
        }
        let queue_empty = server.queued().is_empty();
        if acked.iter().all(|(_, id)| by_id.contains_key(id)) && queue_empty {
            break by_id;
        }
        assert!(
            Instant::now() < deadline,
            "acknowledged messages missing after restart; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    // Every acknowledged message exactly once, under its queue id.
    let mut seen_tokens = HashSet::new();
    for (token, id) in &acked {
        let files = &by_id[id];
        assert_eq!(files.len(), 1, "{id} delivered {} times", files.len());
        let text = fs::read_to_string(maildir.join(&files[0])).unwrap();
        assert!(
            text.contains(&format!("Subject: {token}\n")),
            "{id} holds another message"
        );
        assert!(
            text.contains(&format!("id {id}")),
            "Received header names {id}"
        );
    }
    // No file holds half a message, and no message is there twice (also
    // those committed whose 250 was lost in the kill).
    let mut files = 0;
    for names in by_id.values() {
        for name in names {
            files += 1;
            let text = fs::read_to_string(maildir.join(name)).unwrap();
            let token = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .expect("a subject")
                .to_owned();
            assert!(
                text.ends_with(&format!("END-{token}\n")),
                "{name} is truncated"
            );
            assert_eq!(text.matches(" line ").count(), 200, "{name} is incomplete");
            assert!(seen_tokens.insert(token.clone()), "{token} delivered twice");
        }
    }
    assert!(
        files >= acked.len() && files <= attempted,
        "{files} files, {} acked, {attempted} attempted",
        acked.len()
    );
    // The queue holds no leftovers.
    let tmp = server.uncommitted();
    assert_eq!(tmp, 0, "uncommitted bodies left in the queue");
    let leftovers = server.queued();
    assert!(leftovers.is_empty(), "queue not empty: {leftovers:?}");
}

#[test]
fn sigterm_lets_a_transaction_under_way_finish_then_exits() {
    let dir = TempDir::new("sigterm");
    let mut server = Server::start(dir.path(), "");
    let mut smtp = Smtp::connect(server.ports.mta).unwrap();
    smtp.cmd("EHLO term.test").unwrap();
    assert!(
        smtp.cmd("MAIL FROM:<a@remote.test>")
            .unwrap()
            .starts_with("250")
    );
    assert!(
        smtp.cmd("RCPT TO:<postmaster@localhost>")
            .unwrap()
            .starts_with("250")
    );
    assert!(smtp.cmd("DATA").unwrap().starts_with("354"));
    let b = body("TOKEN-TERM");
    let (first, second) = b.split_at(b.len() / 2);
    std::io::Write::write_all(&mut smtp_writer(&smtp), first).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    // No new connections once shutting down.
    let refused = Smtp::connect(server.ports.mta).map(|mut s| s.cmd("EHLO x").unwrap_or_default());
    assert!(
        refused.as_ref().map_or(true, |r| r.starts_with("421")),
        "new connection served: {refused:?}"
    );
    std::io::Write::write_all(&mut smtp_writer(&smtp), second).unwrap();
    std::io::Write::write_all(&mut smtp_writer(&smtp), b".\r\n").unwrap();
    let reply = smtp.reply().unwrap();
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    let id = queue_id(&reply).unwrap();
    let next = smtp
        .reply()
        .or_else(|_| smtp.cmd("NOOP"))
        .unwrap_or_default();
    assert!(next.is_empty() || next.starts_with("421"), "{next}");
    assert_eq!(
        server.wait_exit(Duration::from_secs(30)),
        Some(0),
        "log:\n{}",
        server.log_text()
    );
    // The message is durable: delivered, or delivered after a restart.
    server.restart();
    server.wait_maildir("postmaster", "localhost", &id);
}

fn smtp_writer(smtp: &Smtp) -> std::net::TcpStream {
    smtp.stream().try_clone().unwrap()
}

const PEER_CERT: &str = r#"
import hashlib, ssl, socket, sys
port, path = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="mx.test") as s:
        served = s.getpeercert(binary_form=True)
on_disk = ssl.PEM_cert_to_DER_cert(open(path).read())
print("same" if served == on_disk else "different")
"#;

#[test]
fn sighup_reloads_certificates() {
    let Some(python) = postern_testkit::python_with("ssl") else {
        return;
    };
    let dir = TempDir::new("sighup");
    let pki = dir.path().join("pki");
    postern_testkit::write_pki(&postern_testkit::dev_pki(&["mx.test"]), &pki).unwrap();
    let tls = format!(
        "certificate = \"{}\"\nkey = \"{}\"",
        pki.join("cert.pem").display(),
        pki.join("key.pem").display()
    );
    let server = Server::start_with_tls(dir.path(), "", &tls);
    let served = || {
        let (code, out) = common::run(
            std::process::Command::new(&python)
                .arg("-c")
                .arg(PEER_CERT)
                .arg(server.ports.submissions.to_string())
                .arg(pki.join("cert.pem")),
            Duration::from_secs(20),
        );
        assert_eq!(code, Some(0), "{out}");
        out.trim().to_owned()
    };
    assert_eq!(served(), "same");
    // New files on disk: still the old certificate until SIGHUP.
    postern_testkit::write_pki(&postern_testkit::dev_pki(&["mx.test"]), &pki).unwrap();
    assert_eq!(served(), "different");
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log_text().contains("certificates reloaded") {
        assert!(
            Instant::now() < deadline,
            "no reload; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(served(), "same");
}
