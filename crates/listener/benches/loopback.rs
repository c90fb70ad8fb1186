//! Loopback figures for the listener: TLS handshakes per second (by
//! key-exchange group: the hybrid X25519MLKEM768 beside X25519, rounds
//! interleaved), the CPU time and wire bytes of one handshake in memory
//! per group, and message throughput over plain, STARTTLS and implicit
//! TLS, with an in-process tokio client, plus Postfix's smtp-source against
//! the plain listener when it is installed.
//!
//! `cargo bench -p postern-listener --bench loopback` (env: BENCH_SECS,
//! default 3; BENCH_CONNS, default 4). Client and server share the
//! machine's cores, so compare ratios from one run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use postern_listener::session::{Decision, Question};
use postern_listener::{
    CertSpec, ConnContext, ConnLimits, ConnectionHandler, ConnectionView, Handler, ListenerConfig,
    Mode, Server, TlsSettings,
};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

struct Discard;
struct DiscardConn;
impl Handler for Discard {
    type Conn = DiscardConn;
    fn connect(&self, _: &ConnContext) -> DiscardConn {
        DiscardConn
    }
}
impl ConnectionHandler for DiscardConn {
    async fn question(&mut self, _: Question, _: &ConnectionView<'_>) -> Decision {
        Decision::Accept
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);
impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &ServerName<'_>,
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

/// Reads until a complete final reply line; returns its code.
async fn reply<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    loop {
        let mut start = 0;
        while let Some(p) = buf[start..].windows(2).position(|w| w == b"\r\n") {
            let line = &buf[start..start + p];
            start += p + 2;
            if line.len() >= 4 && line[3] == b' ' {
                let code = std::str::from_utf8(&line[..3])
                    .ok()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                buf.drain(..start);
                return Ok(code);
            }
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn cmd<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
    line: &[u8],
) -> std::io::Result<u16> {
    s.write_all(line).await?;
    reply(s, buf).await
}

/// Sends messages over one session until `until`; counts them.
async fn messages<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
    body: &[u8],
    until: Instant,
    count: &AtomicU64,
) -> std::io::Result<()> {
    while Instant::now() < until {
        cmd(s, buf, b"MAIL FROM:<a@bench.test>\r\n").await?;
        cmd(s, buf, b"RCPT TO:<b@bench.test>\r\n").await?;
        cmd(s, buf, b"DATA\r\n").await?;
        let code = cmd(s, buf, body).await?;
        assert_eq!(code, 250);
        count.fetch_add(1, Ordering::Relaxed);
    }
    cmd(s, buf, b"QUIT\r\n").await.map(|_| ())
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Plain,
    StartTls,
    Implicit,
}

async fn session(
    kind: Kind,
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
    body: Arc<Vec<u8>>,
    until: Instant,
    count: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("mx.bench").unwrap();
    match kind {
        Kind::Plain => {
            reply(&mut tcp, &mut buf).await?;
            cmd(&mut tcp, &mut buf, b"EHLO c.bench\r\n").await?;
            messages(&mut tcp, &mut buf, &body, until, &count).await
        }
        Kind::StartTls => {
            reply(&mut tcp, &mut buf).await?;
            cmd(&mut tcp, &mut buf, b"EHLO c.bench\r\n").await?;
            cmd(&mut tcp, &mut buf, b"STARTTLS\r\n").await?;
            let mut s = tls.connect(name, tcp).await?;
            cmd(&mut s, &mut buf, b"EHLO c.bench\r\n").await?;
            messages(&mut s, &mut buf, &body, until, &count).await
        }
        Kind::Implicit => {
            let mut s = tls.connect(name, tcp).await?;
            reply(&mut s, &mut buf).await?;
            cmd(&mut s, &mut buf, b"EHLO c.bench\r\n").await?;
            messages(&mut s, &mut buf, &body, until, &count).await
        }
    }
}

/// One full handshake between `client` and `server` in memory; the
/// octets sent by the client and by the server.
fn memory_handshake(
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
) -> (usize, usize) {
    let mut c =
        rustls::ClientConnection::new(client, ServerName::try_from("mx.bench").unwrap()).unwrap();
    let mut s = rustls::ServerConnection::new(server).unwrap();
    let (mut from_client, mut from_server) = (0, 0);
    let mut buf = Vec::with_capacity(8192);
    while c.is_handshaking() || s.is_handshaking() {
        buf.clear();
        c.write_tls(&mut buf).unwrap();
        from_client += buf.len();
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
        }
        s.process_new_packets().unwrap();
        buf.clear();
        s.write_tls(&mut buf).unwrap();
        from_server += buf.len();
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
        }
        c.process_new_packets().unwrap();
    }
    (from_client, from_server)
}

async fn handshakes(
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
    until: Instant,
    count: Arc<AtomicU64>,
) -> std::io::Result<()> {
    while Instant::now() < until {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut s = tls
            .connect(ServerName::try_from("mx.bench").unwrap(), tcp)
            .await?;
        let mut buf = Vec::new();
        reply(&mut s, &mut buf).await?;
        count.fetch_add(1, Ordering::Relaxed);
        let _ = s.write_all(b"QUIT\r\n").await;
    }
    Ok(())
}

fn main() {
    let secs = env("BENCH_SECS", 3);
    let conns = env("BENCH_CONNS", 4);
    let provider = Arc::new(postern_listener::default_provider());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["mx.bench".to_owned()]).unwrap();
    let spec = CertSpec::pem(
        &["mx.bench"],
        cert.cert.pem(),
        cert.signing_key.serialize_pem(),
    );
    let tls = TlsSettings::new(vec![spec]);
    let mut limits = ConnLimits::default();
    limits.global = 10_000;
    limits.per_ip = 10_000;
    let mk = |name: &str, mode| {
        ListenerConfig::new(name, "127.0.0.1:0".parse().unwrap(), mode)
            .with_tls(tls.clone())
            .with_limits(limits)
    };
    let server = Server::bind(
        vec![
            mk("plain", Mode::Plain),
            mk("starttls", Mode::StartTls { required: false }),
            mk("implicit", Mode::Implicit),
        ],
        Arc::new(Discard),
        provider.clone(),
    )
    .unwrap();
    let s = server.clone();
    rt.spawn(async move { s.run().await });

    let client_rustls = |versions: &[&'static rustls::SupportedProtocolVersion],
                         group: rustls::NamedGroup| {
        // The client offers only `group`, so the server (which has every
        // group of the provider) negotiates exactly that one.
        let only = Arc::new(rustls::crypto::CryptoProvider {
            kx_groups: provider
                .kx_groups
                .iter()
                .copied()
                .filter(|g| g.name() == group)
                .collect(),
            ..(*provider).clone()
        });
        let mut config = rustls::ClientConfig::builder_with_provider(only)
            .with_protocol_versions(versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider.clone())))
            .with_no_client_auth();
        // Full handshakes, as with a new peer: a resumed one skips the
        // certificate and its signature, and would hide what is measured.
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    };
    let client_config = |versions: &[&'static rustls::SupportedProtocolVersion],
                         group: rustls::NamedGroup| {
        tokio_rustls::TlsConnector::from(client_rustls(versions, group))
    };
    let hybrid = rustls::NamedGroup::X25519MLKEM768;
    let x25519 = rustls::NamedGroup::X25519;
    let has_hybrid = provider.kx_groups.iter().any(|g| g.name() == hybrid);
    let tls13 = client_config(&[&rustls::version::TLS13], x25519);
    let tls13_hybrid = client_config(&[&rustls::version::TLS13], hybrid);
    let tls12 = client_config(&[&rustls::version::TLS12], x25519);
    let implicit = server.local_addr("implicit").unwrap();

    println!(
        "postern-listener loopback, {conns} client tasks, {secs} s per figure, client and server in one process (2 server workers)"
    );
    // The two TLS 1.3 groups alternate over two rounds each, so drift in
    // the machine's speed falls on both.
    let mut figures: Vec<(&str, tokio_rustls::TlsConnector)> = Vec::new();
    for _ in 0..2 {
        if has_hybrid {
            figures.push(("TLS 1.3, X25519MLKEM768", tls13_hybrid.clone()));
        }
        figures.push(("TLS 1.3, X25519", tls13.clone()));
    }
    figures.push(("TLS 1.2, X25519", tls12));
    for (label, connector) in figures {
        let count = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + Duration::from_secs(secs);
        rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..conns {
                set.spawn(handshakes(
                    implicit,
                    connector.clone(),
                    until,
                    count.clone(),
                ));
            }
            while let Some(r) = set.join_next().await {
                r.unwrap().unwrap();
            }
        });
        let n = count.load(Ordering::Relaxed);
        println!(
            "handshakes ({label}, ECDSA P-256, connect + handshake + greeting): {:.0}/s",
            n as f64 / secs as f64
        );
    }

    // One handshake in memory, no sockets: the CPU time of client and
    // server together, and the octets each side sends.
    let (built, _) = tls.build(provider.clone()).unwrap();
    let server_config = built.server_config();
    let mut groups = vec![("X25519", x25519)];
    if has_hybrid {
        groups.insert(0, ("X25519MLKEM768", hybrid));
    }
    for round in 0..2 {
        for (label, group) in &groups {
            let client = client_rustls(&[&rustls::version::TLS13], *group);
            let n = 400;
            let started = Instant::now();
            let mut wire = (0, 0);
            for _ in 0..n {
                wire = memory_handshake(client.clone(), server_config.clone());
            }
            let per = started.elapsed() / n;
            if round == 1 {
                println!(
                    "in-memory TLS 1.3 handshake ({label}, ECDSA P-256, client + server CPU): {:.0} us; client sends {} B, server {} B",
                    per.as_secs_f64() * 1e6,
                    wire.0,
                    wire.1
                );
            }
        }
    }

    for size in [1024usize, 1024 * 1024] {
        let mut body = vec![b'x'; size];
        for i in (76..size).step_by(78) {
            body[i] = b'\r';
            if i + 1 < size {
                body[i + 1] = b'\n';
            }
        }
        body.extend_from_slice(b"\r\n.\r\n");
        let body = Arc::new(body);
        for (kind, name) in [
            (Kind::Plain, "plain"),
            (Kind::StartTls, "starttls"),
            (Kind::Implicit, "implicit"),
        ] {
            let addr = server.local_addr(name).unwrap();
            let count = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            let until = started + Duration::from_secs(secs);
            rt.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..conns {
                    set.spawn(session(
                        kind,
                        addr,
                        tls13.clone(),
                        body.clone(),
                        until,
                        count.clone(),
                    ));
                }
                while let Some(r) = set.join_next().await {
                    r.unwrap().unwrap();
                }
            });
            let elapsed = started.elapsed().as_secs_f64();
            let n = count.load(Ordering::Relaxed) as f64;
            println!(
                "messages {:>7} B, {name:>8}: {:>8.0} msg/s, {:>7.1} MB/s",
                size,
                n / elapsed,
                n * size as f64 / elapsed / 1e6
            );
        }
    }

    // Postfix's load generator against the plain listener.
    if let Some(smtp_source) = postern_testkit::find_executable("smtp-source") {
        let addr = server.local_addr("plain").unwrap();
        for (label, per_session, messages) in [
            ("1 KiB, 10 sessions, 1 msg/session", false, "2000"),
            ("1 KiB, 10 sessions, many msg/session", true, "20000"),
        ] {
            let started = Instant::now();
            let mut cmd = std::process::Command::new(&smtp_source);
            if per_session {
                cmd.arg("-d");
            }
            let status = cmd
                .args(["-l", "1024", "-m", messages, "-s", "10", "-M", "c.bench"])
                .args(["-f", "a@bench.test", "-t", "b@bench.test"])
                .arg(addr.to_string())
                .status();
            let elapsed = started.elapsed().as_secs_f64();
            let m: f64 = messages.parse().unwrap();
            match status {
                Ok(s) if s.success() => {
                    println!("smtp-source {label} (plain): {:.0} msg/s", m / elapsed)
                }
                other => println!("smtp-source {label}: failed: {other:?}"),
            }
        }
    } else {
        println!("SKIPPED: smtp-source not installed");
    }
    server.shutdown();
}
