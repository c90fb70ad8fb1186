//! The PROXY protocol against the real binary (issue 15, item 3): Debian's
//! HAProxy in front (TCP mode, `send-proxy` to a STARTTLS listener,
//! `send-proxy-v2` to an implicit-TLS one), binding its server side to
//! 127.0.0.5, the only trusted front; the client connects to HAProxy from
//! 127.0.0.77, so the log and the Received header tell the real client
//! from the front. Then forged headers from an untrusted address, and a
//! trusted front that sends none: closed, never believed.
//!
//! HAProxy and Python's smtplib are peers: a missing one prints SKIPPED,
//! or fails with POSTERN_REQUIRE_PEERS=1.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, TempDir, queue_id, run};
use postern_testkit::{ChildGuard, free_port, peer, python_with, wait_for_port};

const T: Duration = Duration::from_secs(30);
/// The front HAProxy speaks from (trusted).
const FRONT: &str = "127.0.0.5";
/// The client (never trusted).
const CLIENT: &str = "127.0.0.77";

/// Two listeners behind the front, beside the usual three.
struct Proxied {
    starttls: u16,
    implicit: u16,
}

fn start_server(dir: &std::path::Path) -> (Server, Proxied) {
    let p = Proxied {
        starttls: free_port(),
        implicit: free_port(),
    };
    let extra = format!(
        r#"
[[listener]]
name = "proxied"
address = "127.0.0.1:{}"
mode = "starttls"
tls = "default"
proxy_protocol = {{ trusted = ["{FRONT}/32"], header_timeout = "3s" }}

[[listener]]
name = "proxied-tls"
address = "127.0.0.1:{}"
mode = "implicit"
tls = "default"
proxy_protocol = {{ trusted = ["{FRONT}/32"] }}
"#,
        p.starttls, p.implicit
    );
    let server = Server::start(dir, &extra);
    for port in [p.starttls, p.implicit] {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert!(wait_for_port(addr, Duration::from_secs(20)), "{port}");
    }
    (server, p)
}

/// HAProxy in TCP mode: `v1` in front of the STARTTLS listener, `v2` in
/// front of the implicit one, the server side bound to [`FRONT`].
fn start_haproxy(dir: &std::path::Path, p: &Proxied) -> Option<(ChildGuard, u16, u16)> {
    let haproxy = peer("haproxy")?;
    let (v1, v2) = (free_port(), free_port());
    let cfg = format!(
        r#"
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend v1
    bind 127.0.0.1:{v1}
    default_backend to_starttls

backend to_starttls
    server mta 127.0.0.1:{starttls} send-proxy source {FRONT}

frontend v2
    bind 127.0.0.1:{v2}
    default_backend to_implicit

backend to_implicit
    server mta 127.0.0.1:{implicit} send-proxy-v2 source {FRONT}
"#,
        starttls = p.starttls,
        implicit = p.implicit,
    );
    let path = dir.join("haproxy.cfg");
    fs::write(&path, cfg).unwrap();
    // -db: foreground, no daemon; -W off. The process is ours and killed
    // with the guard.
    let guard = ChildGuard::spawn(
        Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(fs::File::create(dir.join("haproxy.log")).unwrap())
            .stderr(fs::File::create(dir.join("haproxy.err")).unwrap()),
    );
    for port in [v1, v2] {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert!(
            wait_for_port(addr, Duration::from_secs(10)),
            "haproxy did not listen: {}",
            fs::read_to_string(dir.join("haproxy.err")).unwrap_or_default()
        );
    }
    Some((guard, v1, v2))
}

const SMTPLIB: &str = r#"
import json, smtplib, ssl, sys
v1, v2, client = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
msg = "From: alice@localhost\r\nTo: alice@localhost\r\nSubject: %s\r\n\r\nvia %s\r\n"
out = {}
s = smtplib.SMTP("127.0.0.1", v1, local_hostname="client.test", source_address=(client, 0), timeout=20)
s.starttls(context=ctx)
s.login("alice", "alice-pw")
s.mail("alice@localhost")
s.rcpt("alice@localhost")
code, text = s.data(msg % ("v1", "starttls"))
out["v1"] = [code, text.decode()]
s.quit()
s = smtplib.SMTP_SSL("127.0.0.1", v2, local_hostname="client.test", source_address=(client, 0), context=ctx, timeout=20)
s.login("alice", "alice-pw")
s.mail("alice@localhost")
s.rcpt("alice@localhost")
code, text = s.data(msg % ("v2", "implicit"))
out["v2"] = [code, text.decode()]
s.quit()
print(json.dumps(out))
"#;

#[test]
fn haproxy_send_proxy_v1_starttls_and_v2_implicit_tls_report_the_real_client() {
    let Some(python) = python_with("smtplib") else {
        return;
    };
    let dir = TempDir::new("proxy-haproxy");
    let (server, p) = start_server(dir.path());
    let Some((_haproxy, v1, v2)) = start_haproxy(dir.path(), &p) else {
        return;
    };
    let (code, out) = run(
        Command::new(python).arg("-c").arg(SMTPLIB).args([
            v1.to_string(),
            v2.to_string(),
            CLIENT.to_owned(),
        ]),
        T,
    );
    assert_eq!(code, Some(0), "{out}\nserver log:\n{}", server.log_text());
    let json = out.lines().last().unwrap_or_default();
    for key in ["v1", "v2"] {
        let at = json.find(key).unwrap();
        assert!(json[at..].contains("[250, "), "{json}");
        let id = queue_id(&json[at..]).unwrap_or_else(|| panic!("no queue id for {key} in {json}"));
        let text = fs::read_to_string(server.wait_maildir("alice", "localhost", &id)).unwrap();
        let received = text.lines().find(|l| l.starts_with("Received:")).unwrap();
        assert!(
            received.contains(&format!("([{CLIENT}])")),
            "{key}: {received}\n{text}"
        );
        assert!(!text.contains(FRONT), "{key}: the front leaked: {text}");
        assert!(text.contains("using TLSv1.3"), "{text}");
    }
    let log = server.log_text();
    for listener in ["proxied", "proxied-tls"] {
        let line = log
            .lines()
            .find(|l| {
                l.contains(&format!("listener={listener} "))
                    && l.contains("authenticated")
                    && l.contains(&format!("peer={CLIENT}:"))
            })
            .unwrap_or_else(|| panic!("no AUTH line for {listener} from {CLIENT}:\n{log}"));
        assert!(line.contains(&format!("via={FRONT}:")), "{line}");
    }
}

/// Connects from `source` (a loopback address) to `port`.
fn connect_from(source: &str, port: u16) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&from.into()).unwrap();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    socket.connect(&to.into()).unwrap();
    let tcp: TcpStream = socket.into();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp
}

/// Everything the server sends until it closes (or 10 s pass).
fn read_to_close(tcp: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        match tcp.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Err(_) => return (got, false),
        }
    }
    (got, false)
}

#[test]
fn forged_proxy_headers_from_untrusted_addresses_are_closed_and_never_believed() {
    let dir = TempDir::new("proxy-forged");
    let (server, p) = start_server(dir.path());
    let v2_forged: &[u8] = &[
        b'\r', b'\n', b'\r', b'\n', 0, b'\r', b'\n', b'Q', b'U', b'I', b'T', b'\n', 0x21, 0x11, 0,
        12, 192, 0, 2, 7, 198, 51, 100, 1, 0x9c, 0x40, 0, 25,
    ];
    let v1_forged: &[u8] = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\nEHLO forged\r\n";

    // STARTTLS listener: the greeting, then the forged line closes the
    // connection with no reply (it is never answered as SMTP, nor is the
    // EHLO behind it).
    for forged in [v1_forged, v2_forged] {
        let mut tcp = connect_from(CLIENT, p.starttls);
        let mut greeting = [0u8; 256];
        let n = tcp.read(&mut greeting).unwrap();
        assert!(greeting[..n].starts_with(b"220 "), "{:?}", &greeting[..n]);
        tcp.write_all(forged).unwrap();
        let (after, closed) = read_to_close(&mut tcp);
        assert!(closed, "not closed");
        assert!(after.is_empty(), "{}", String::from_utf8_lossy(&after));
    }
    // Implicit TLS: closed before rustls sees it (no TLS alert either).
    for forged in [v1_forged, v2_forged] {
        let mut tcp = connect_from(CLIENT, p.implicit);
        tcp.write_all(forged).unwrap();
        let (after, closed) = read_to_close(&mut tcp);
        assert!(closed && after.is_empty(), "{after:?}");
    }
    // A trusted front must send a header: plain SMTP from it is closed
    // unanswered (no greeting: nothing is served before the header).
    let mut tcp = connect_from(FRONT, p.starttls);
    tcp.write_all(b"EHLO front\r\n").unwrap();
    let (after, closed) = read_to_close(&mut tcp);
    assert!(closed && after.is_empty(), "{after:?}");

    // The untrusted client is still served as itself.
    let mut tcp = connect_from(CLIENT, p.starttls);
    let mut buf = [0u8; 512];
    let n = tcp.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"220 "));
    tcp.write_all(b"EHLO ok.test\r\n").unwrap();
    let n = tcp.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"250"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );

    // The closes are logged as the connections end; give the log a moment.
    let refused = |log: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("PROXY header from untrusted address {CLIENT}:")))
            .count()
    };
    let started = Instant::now();
    while refused(&server.log_text()) < 4 && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log_text();
    assert_eq!(refused(&log), 4, "{log}");
    assert!(
        !log.contains("192.0.2.7"),
        "a forged address was believed:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("a trusted front sent no PROXY header") && l.contains(FRONT)),
        "{log}"
    );
}
