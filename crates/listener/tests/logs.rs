//! Per-connection structured logs: listener, peer, TLS version, cipher,
//! SNI and outcome.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use postern_listener::{Mode, TlsSettings};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_connection_logs_listener_peer_tls_and_outcome() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_env_filter("postern_listener=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let pki = Pki::new("logs", &["mx.test"]);
    let srv = Running::start(vec![listener(
        "smtps",
        Mode::Implicit,
        Some(TlsSettings::new(vec![pki.spec(&["mx.test"])])),
    )]);
    let tcp = TcpStream::connect(srv.addr("smtps")).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = tcp.local_addr().unwrap();
    let mut tls = tls_connect(tcp, "mx.test", client_config(None)).unwrap();
    read_reply(&mut tls);
    assert!(tls_cmd(&mut tls, "QUIT").starts_with("221"));
    drop(tls);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
        if text.contains("connection closed") {
            let line = |what: &str| {
                text.lines()
                    .find(|l| l.contains(what))
                    .unwrap_or_else(|| panic!("no {what:?} in:\n{text}"))
                    .to_owned()
            };
            let tls_line = line("TLS established");
            for field in [
                "listener=smtps".to_owned(),
                format!("peer={local}"),
                "version=TLSv1.3".to_owned(),
                "cipher=TLS13_".to_owned(),
                "sni=mx.test".to_owned(),
            ] {
                assert!(tls_line.contains(&field), "{field} missing: {tls_line}");
            }
            let closed = line("connection closed");
            assert!(closed.contains("outcome=Quit"), "{closed}");
            assert!(closed.contains(&format!("peer={local}")), "{closed}");
            assert!(text.contains("listening"), "{text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no close log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
