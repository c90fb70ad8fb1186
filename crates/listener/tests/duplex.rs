//! `Listener::serve_connection` over `tokio::io::duplex`: whole SMTP
//! dialogues with no socket, STARTTLS upgraded in place on the same
//! stream, the handler's questions and notices in order, and the
//! listener's mode as the one owner of the STARTTLS policy.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{AnyCert, Pki, complete_reply, limits, provider};
use postern_listener::session::{Config, Decision, Notice, Question, StartTlsPolicy};
use postern_listener::{
    BindError, ConnectionHandler, ConnectionView, Listener, ListenerConfig, Mode, TlsSettings,
};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, DuplexStream};

const PEER: &str = "192.0.2.7:40001";
const LOCAL: &str = "198.51.100.1:25";

/// Records what it is asked and told; accepts everything.
#[derive(Debug, Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

struct Conn {
    log: Log,
    body: Vec<u8>,
}

impl Log {
    fn conn(&self) -> Conn {
        Conn {
            log: self.clone(),
            body: Vec::new(),
        }
    }
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl ConnectionHandler for Conn {
    async fn question(&mut self, question: Question, facts: &ConnectionView<'_>) -> Decision {
        let line = match &question {
            Question::Connect => format!("connect {} -> {}", facts.peer, facts.local),
            Question::Hello { host, .. } => format!("hello {host} tls={}", facts.is_tls()),
            Question::Mail { from, .. } => format!("mail {from}"),
            Question::Rcpt { to, .. } => format!("rcpt {to}"),
            Question::DataStart { .. } => "data".to_owned(),
            Question::MessageComplete { size, .. } => format!(
                "message {size} {:?}",
                String::from_utf8_lossy(&std::mem::take(&mut self.body))
            ),
            other => format!("{other:?}"),
        };
        self.log.push(line);
        Decision::Accept
    }

    async fn notice(&mut self, notice: Notice, facts: &ConnectionView<'_>) {
        match notice {
            Notice::BodyChunk(chunk) => self.body.extend_from_slice(&chunk),
            Notice::TlsEstablished => self.log.push(format!("tls-established {}", facts.is_tls())),
            Notice::Closed { reason } => self.log.push(format!("closed {reason:?}")),
            other => self.log.push(format!("{other:?}")),
        }
    }
}

/// A client end: sends lines, reads whole replies.
struct Client<S> {
    io: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn reply(&mut self) -> String {
        loop {
            if let Some(n) = complete_reply(&self.buf) {
                let reply: Vec<u8> = self.buf.drain(..n).collect();
                return String::from_utf8(reply).unwrap();
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), self.io.read(&mut chunk))
                .await
                .expect("reply within 5 s")
                .unwrap();
            assert!(n > 0, "EOF before a complete reply: {:?}", self.buf);
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.io
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.reply().await
    }

    async fn eof(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.io.read(&mut chunk)).await,
            Ok(Ok(0))
        )
    }
}

fn config(mode: Mode, tls: Option<TlsSettings>) -> ListenerConfig {
    let mut c = ListenerConfig::new("duplex", LOCAL.parse().unwrap(), mode)
        .with_limits(limits())
        .with_session(Config::new("mx.test"));
    c.tls = tls;
    c
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Serves `server` on `listener` in a task; the log and the join handle.
fn spawn(
    listener: Listener,
    server: DuplexStream,
) -> (
    Log,
    tokio::task::JoinHandle<
        Result<postern_listener::session::CloseReason, postern_listener::ConnectionError>,
    >,
) {
    let log = Log::default();
    let conn = log.conn();
    let peer: SocketAddr = PEER.parse().unwrap();
    let local: SocketAddr = LOCAL.parse().unwrap();
    let handle =
        tokio::spawn(async move { listener.serve_connection(server, peer, local, conn).await });
    (log, handle)
}

#[test]
fn a_whole_dialogue_over_a_duplex_stream() {
    rt().block_on(async {
        let listener = Listener::new(config(Mode::Plain, None), provider()).unwrap();
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (log, served) = spawn(listener, server);
        let mut c = Client {
            io: client,
            buf: Vec::new(),
        };
        assert!(c.reply().await.starts_with("220 mx.test ESMTP"));
        let ehlo = c.cmd("EHLO client.test").await;
        assert!(ehlo.starts_with("250-mx.test\r\n"), "{ehlo}");
        assert!(!ehlo.contains("STARTTLS"), "plain mode offers no STARTTLS");
        assert!(
            c.cmd("MAIL FROM:<a@example.org>")
                .await
                .starts_with("250 2.1.0")
        );
        assert!(
            c.cmd("RCPT TO:<b@example.net>")
                .await
                .starts_with("250 2.1.5")
        );
        assert!(c.cmd("DATA").await.starts_with("354 "));
        assert!(
            c.cmd("Subject: hi\r\n\r\nHello.\r\n.")
                .await
                .starts_with("250 2.0.0")
        );
        assert!(c.cmd("QUIT").await.starts_with("221 "));
        assert!(c.eof().await, "closed after QUIT");
        let reason = served.await.unwrap().unwrap();
        assert_eq!(reason, postern_listener::session::CloseReason::Quit);
        assert_eq!(
            log.lines(),
            [
                format!("connect {PEER} -> {LOCAL}"),
                "hello client.test tls=false".to_owned(),
                "mail <a@example.org>".to_owned(),
                "rcpt <b@example.net>".to_owned(),
                "data".to_owned(),
                "message 23 \"Subject: hi\\r\\n\\r\\nHello.\\r\\n\"".to_owned(),
                "closed Quit".to_owned(),
            ]
        );
    });
}

#[test]
fn starttls_upgrades_the_same_duplex_stream_in_place() {
    let pki = Pki::new("duplex", &["mx.test"]);
    let tls = TlsSettings::new(vec![pki.spec(&["mx.test"])]);
    rt().block_on(async {
        let listener = Listener::new(
            config(Mode::StartTls { required: true }, Some(tls)),
            provider(),
        )
        .unwrap();
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (log, served) = spawn(listener, server);
        let mut c = Client {
            io: client,
            buf: Vec::new(),
        };
        c.reply().await;
        assert!(c.cmd("EHLO client.test").await.contains("STARTTLS\r\n"));
        assert!(
            c.cmd("MAIL FROM:<a@example.org>")
                .await
                .starts_with("530 5.7.0"),
            "required by the mode"
        );
        assert!(c.cmd("STARTTLS").await.starts_with("220 "));
        assert!(c.buf.is_empty());
        let client_config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider())))
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let name = rustls::pki_types::ServerName::try_from("mx.test").unwrap();
        let tls = connector.connect(name, c.io).await.expect("handshake");
        let mut c = Client {
            io: tls,
            buf: Vec::new(),
        };
        let ehlo = c.cmd("EHLO client.test").await;
        assert!(!ehlo.contains("STARTTLS"), "not offered over TLS: {ehlo}");
        assert!(ehlo.contains("AUTH PLAIN LOGIN"), "AUTH over TLS: {ehlo}");
        assert!(c.cmd("MAIL FROM:<a@example.org>").await.starts_with("250 "));
        assert!(c.cmd("RCPT TO:<b@example.net>").await.starts_with("250 "));
        assert!(c.cmd("DATA").await.starts_with("354 "));
        assert!(c.cmd("secret\r\n.").await.starts_with("250 2.0.0"));
        assert!(c.cmd("QUIT").await.starts_with("221 "));
        served.await.unwrap().unwrap();
        let lines = log.lines();
        let at = |l: &str| {
            lines
                .iter()
                .position(|x| x == l)
                .unwrap_or_else(|| panic!("{l} in {lines:?}"))
        };
        assert!(at("StartTls { discarded: 0 }") < at("tls-established true"));
        assert!(at("tls-established true") < at("hello client.test tls=true"));
        assert!(lines.contains(&"message 8 \"secret\\r\\n\"".to_owned()));
    });
}

#[test]
fn the_mode_owns_the_starttls_policy() {
    // `with_session` takes the policy from the mode...
    let c = config(Mode::StartTls { required: true }, None);
    assert_eq!(c.session.starttls, StartTlsPolicy::required());
    assert_eq!(
        config(Mode::Plain, None).session.starttls,
        StartTlsPolicy::off()
    );
    // ...and a configuration changed behind its back is refused, not
    // silently rewritten.
    let mut c = config(Mode::Plain, None);
    let mut session = (*c.session).clone();
    session.starttls = StartTlsPolicy::offered();
    c.session = Arc::new(session);
    match Listener::new(c, provider()) {
        Err(BindError::Config { field, .. }) => assert_eq!(field, "session.starttls"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn shutdown_reaches_connections_served_by_hand() {
    rt().block_on(async {
        let listener = Listener::new(config(Mode::Plain, None), provider()).unwrap();
        let shutdown = listener.shutdown_handle();
        let (client, server) = tokio::io::duplex(4096);
        let (_log, served) = spawn(listener, server);
        let mut c = Client {
            io: client,
            buf: Vec::new(),
        };
        c.reply().await;
        shutdown.shutdown();
        assert!(c.reply().await.starts_with("421 4.3.2"));
        assert_eq!(
            served.await.unwrap().unwrap(),
            postern_listener::session::CloseReason::Shutdown
        );
    });
}
