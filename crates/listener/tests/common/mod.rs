//! Shared test support: a recording handler, a server on a background
//! runtime, a dev PKI, bounded child processes, a small blocking client.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postern_listener::session::{Decision, Notice, Question};
use postern_listener::{
    CertSpec, ConnContext, ConnLimits, ConnectionHandler, ConnectionView, Handler, ListenerConfig,
    Mode, Server, TlsSettings,
};

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(postern_listener::default_provider())
}

/// One line per event, plus message bodies.
#[derive(Debug, Default)]
pub struct Log {
    pub events: Vec<String>,
    pub bodies: Vec<Vec<u8>>,
    pub tls_seen: Vec<Option<String>>,
    /// The key-exchange group of each message's connection.
    pub groups_seen: Vec<Option<String>>,
}

/// Accepts everything; records; optionally waits before accepting a
/// message (a slow fsync).
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    pub log: Arc<Mutex<Log>>,
    pub message_delay: Duration,
}

pub struct RecorderConn {
    log: Arc<Mutex<Log>>,
    body: Vec<u8>,
    delay: Duration,
}

impl Handler for Recorder {
    type Conn = RecorderConn;
    fn connect(&self, _info: &ConnContext) -> RecorderConn {
        RecorderConn {
            log: self.log.clone(),
            body: Vec::new(),
            delay: self.message_delay,
        }
    }
}

impl RecorderConn {
    fn record(&self, line: String) {
        self.log.lock().unwrap().events.push(line);
    }
}

impl ConnectionHandler for RecorderConn {
    async fn question(&mut self, question: Question, facts: &ConnectionView<'_>) -> Decision {
        let line = match &question {
            Question::MessageComplete { .. } => {
                if !self.delay.is_zero() {
                    tokio::time::sleep(self.delay).await;
                }
                let body = std::mem::take(&mut self.body);
                let mut log = self.log.lock().unwrap();
                log.bodies.push(body);
                log.tls_seen.push(facts.tls.map(|t| t.cipher.clone()));
                log.groups_seen
                    .push(facts.tls.and_then(|t| t.group.clone()));
                "MessageComplete".to_owned()
            }
            Question::Hello { host, .. } => format!(
                "Hello {host} tls={}",
                facts
                    .tls
                    .map_or("none".to_owned(), |t| t.version.to_string())
            ),
            other => format!("{other:?}"),
        };
        self.record(line);
        Decision::Accept
    }

    async fn notice(&mut self, notice: Notice, _: &ConnectionView<'_>) {
        match notice {
            Notice::BodyChunk(c) => self.body.extend_from_slice(&c),
            other => self.record(format!("{other:?}")),
        }
    }
}

/// A dev PKI written to a temp dir.
pub struct Pki {
    pub dir: PathBuf,
    pub pki: postern_testkit::DevPki,
}

impl Pki {
    pub fn new(tag: &str, names: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "postern-listener-{tag}-{}-{}",
            std::process::id(),
            names.first().copied().unwrap_or("x")
        ));
        let pki = postern_testkit::dev_pki(names);
        postern_testkit::write_pki(&pki, &dir).unwrap();
        Self { dir, pki }
    }
    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn spec(&self, names: &[&str]) -> CertSpec {
        CertSpec::files(names, self.cert(), self.key())
    }
}

/// Test limits: short timeouts so nothing hangs.
pub fn limits() -> ConnLimits {
    let mut l = ConnLimits::default();
    l.global = 50;
    l.per_ip = 50;
    l.handshake_timeout = Duration::from_secs(5);
    l.command_timeout = Duration::from_secs(10);
    l.data_timeout = Duration::from_secs(10);
    l.write_timeout = Duration::from_secs(5);
    l.shutdown_grace = Duration::from_secs(10);
    l
}

pub fn listener(name: &str, mode: Mode, tls: Option<TlsSettings>) -> ListenerConfig {
    let mut config = ListenerConfig::new(name, "127.0.0.1:0".parse().unwrap(), mode)
        .with_limits(limits())
        .with_session(postern_session::Config::new("mx.test"));
    config.tls = tls;
    config
}

/// A server running on its own runtime; shut down and joined on drop.
pub struct Running {
    pub server: Server,
    pub recorder: Recorder,
    rt: Option<tokio::runtime::Runtime>,
    done: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Running {
    pub fn start(listeners: Vec<ListenerConfig>) -> Self {
        Self::start_with(listeners, Recorder::default())
    }

    pub fn start_with(listeners: Vec<ListenerConfig>, recorder: Recorder) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("POSTERN_LOG")
                    .unwrap_or_else(|_| "off".into()),
            )
            .with_test_writer()
            .try_init();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = Server::bind(listeners, Arc::new(recorder.clone()), provider()).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let s = server.clone();
        rt.spawn(async move {
            s.run().await;
            let _ = tx.send(());
        });
        Self {
            server,
            recorder,
            rt: Some(rt),
            done: Some(rx),
        }
    }

    pub fn addr(&self, name: &str) -> SocketAddr {
        self.server.local_addr(name).unwrap()
    }

    pub fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.recorder.log.lock().unwrap()
    }

    /// Shuts down and waits (bounded) for `run` to return; true if it did.
    pub fn stop(&mut self, within: Duration) -> bool {
        self.server.shutdown();
        let Some(rx) = self.done.take() else {
            return true;
        };
        let rt = self.rt.as_ref().unwrap();
        rt.block_on(async { tokio::time::timeout(within, rx).await.is_ok() })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.server.shutdown();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// Runs a command with stdin, killing it after `limit`.
pub fn run_bounded(cmd: &mut Command, stdin: &[u8], limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
        // Keep stdin open briefly so s_client does not quit before the
        // server answered; it closes when the thread ends.
        std::thread::sleep(Duration::from_millis(1500));
    });
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = writer.join();
    child.wait_with_output().unwrap()
}

/// A blocking line client for plaintext SMTP.
pub struct Client {
    pub tcp: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Self {
            tcp,
            buf: Vec::new(),
        }
    }

    /// Reads one complete reply (all its lines); empty on EOF.
    pub fn reply(&mut self) -> String {
        loop {
            if let Some(end) = complete_reply(&self.buf) {
                let r: Vec<u8> = self.buf.drain(..end).collect();
                return String::from_utf8_lossy(&r).into_owned();
            }
            let mut chunk = [0u8; 4096];
            match self.tcp.read(&mut chunk) {
                Ok(0) | Err(_) => {
                    let r = std::mem::take(&mut self.buf);
                    return String::from_utf8_lossy(&r).into_owned();
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    pub fn send(&mut self, data: &str) {
        self.tcp.write_all(data.as_bytes()).unwrap();
    }

    pub fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n"));
        self.reply()
    }

    /// True when the server closed the connection (EOF within 5 s).
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 64];
        matches!(self.tcp.read(&mut b), Ok(0))
    }
}

/// Length of the first complete reply in `buf`.
pub fn complete_reply(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(pos) = buf[start..].windows(2).position(|w| w == b"\r\n") {
        let line = &buf[start..start + pos];
        start += pos + 2;
        if line.len() < 4 || line[3] == b' ' {
            return Some(start);
        }
    }
    None
}

/// A blocking rustls client.
pub type TlsClient = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Accepts any server certificate (the tests look at which one came).
#[derive(Debug)]
pub struct AnyCert(pub Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client config that accepts any server certificate, optionally
/// presenting a client certificate.
pub fn client_config(client_cert: Option<&postern_testkit::DevPki>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject as _;
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider())));
    let config = match client_cert {
        None => b.with_no_client_auth(),
        Some(p) => b
            .with_client_auth_cert(
                vec![
                    rustls::pki_types::CertificateDer::from_pem_slice(p.cert_pem.as_bytes())
                        .unwrap(),
                ],
                rustls::pki_types::PrivateKeyDer::from_pem_slice(p.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    Arc::new(config)
}

/// Runs a TLS handshake over `tcp` as `name` (an IP address sends no SNI).
pub fn tls_connect(
    tcp: TcpStream,
    name: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<TlsClient, std::io::Error> {
    let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let conn = rustls::ClientConnection::new(config, server_name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Reads one reply from any stream; empty on EOF or timeout.
pub fn read_reply(s: &mut impl Read) -> String {
    let mut buf = Vec::new();
    loop {
        if let Some(end) = complete_reply(&buf) {
            return String::from_utf8_lossy(&buf[..end]).into_owned();
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&buf).into_owned(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Sends a command line and reads the reply.
pub fn tls_cmd(s: &mut TlsClient, line: &str) -> String {
    s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    s.flush().unwrap();
    read_reply(s)
}

/// The end-entity certificate the server presented.
pub fn served_cert(s: &TlsClient) -> Vec<u8> {
    s.conn.peer_certificates().unwrap()[0].as_ref().to_vec()
}

/// DER of the first certificate in PEM text.
pub fn der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec()
}
