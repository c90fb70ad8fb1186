//! Helpers of the adversarial suite: a server with per-listener connection
//! limits and short timeouts, raw and TLS line clients, the well-behaved
//! reference client, Maildir and queue inspection, and an RSS sampler.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use postern_testkit::{DevPki, dev_pki, free_port, wait_for_port, write_pki};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::common::{Ports, Server, queue_id};

/// Timeouts written into every adversarial config (`[limits]`).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// `command_timeout`: deadline for a complete command.
    pub command: Duration,
    /// `data_timeout`: longest silence inside a body.
    pub data: Duration,
    /// `handshake_timeout`: longest TLS handshake.
    pub handshake: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            command: Duration::from_secs(3),
            data: Duration::from_secs(3),
            handshake: Duration::from_secs(3),
        }
    }
}

/// Connection limits of one listener (`max_connections`,
/// `max_connections_per_ip`).
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Global limit of the listener.
    pub global: usize,
    /// Per-IP limit of the listener.
    pub per_ip: usize,
}

/// What a test server looks like.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Limits of the `mta` listener (the well-behaved client's port).
    pub mta: ConnLimits,
    /// Limits of the `submission` listener.
    pub submission: ConnLimits,
    /// Limits of the extra `perip` STARTTLS listener.
    pub perip: ConnLimits,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// `limits.max_message_size`.
    pub max_message_size: u64,
    /// The abuse tables (`[auth_limits]`, `[connection_rate]`, `[server]`
    /// keys go in `server`). By default the connection rate limit is
    /// lifted for loopback, where every existing case connects from, many
    /// times a second; the abuse cases set their own.
    pub abuse: &'static str,
    /// Extra `[server]` keys (e.g. `bare_lf_networks`).
    pub server: &'static str,
}

impl Default for Setup {
    fn default() -> Self {
        // Loopback tests come from one IP: per-IP limits are raised where
        // a test needs many connections, and tested on `perip`.
        let wide = ConnLimits {
            global: 1000,
            per_ip: 1000,
        };
        Setup {
            mta: wide,
            submission: wide,
            perip: ConnLimits {
                global: 1000,
                per_ip: 20,
            },
            timeouts: Timeouts::default(),
            max_message_size: 1024 * 1024,
            abuse: "[connection_rate]\nallow = [\"127.0.0.0/8\"]\n",
            server: "",
        }
    }
}

/// A running server with its dev PKI and the extra listener's port.
pub struct Adv {
    /// The process and its paths.
    pub server: Server,
    /// The CA and certificate the listeners serve.
    pub pki: DevPki,
    /// Port of the `perip` listener.
    pub perip: u16,
    /// The setup it was started with.
    pub setup: Setup,
}

fn secs(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// Starts postern-mta in `dir` with `setup`.
pub fn start(dir: &Path, setup: Setup) -> Adv {
    let ports = Ports::free();
    let perip = free_port();
    let data = dir.join("data");
    let config = dir.join("postern.toml");
    let pki = dev_pki(&["mx.test"]);
    let pki_dir = dir.join("pki");
    write_pki(&pki, &pki_dir).expect("pki");
    let listener = |name: &str, port: u16, mode: &str, l: ConnLimits| {
        format!(
            "[[listener]]\nname = \"{name}\"\naddress = \"127.0.0.1:{port}\"\nmode = \"{mode}\"\ntls = \"default\"\nmax_connections = {}\nmax_connections_per_ip = {}\n\n",
            l.global, l.per_ip
        )
    };
    let text = format!(
        r#"
[server]
hostname = "mx.test"
data_dir = "{data}"
{server_extra}

[[domain]]
name = "localhost"

[tls.default]
certificate = "{cert}"
key = "{key}"
versions = ["TLSv1.2", "TLSv1.3"]

{l1}{l2}{l3}{l4}
[queue]
scan_interval = "1s"

[limits]
max_message_size = {size}
max_recipients = 100
command_timeout = "{ct}"
data_timeout = "{dt}"
handshake_timeout = "{ht}"

{abuse}

[[rule]]
name = "disableAUTH_on_non_SSL"
actions = [{{ plain_auth = "off" }}]

[[rule]]
name = "enableAUTH_on_SSL"
actions = [{{ tls_auth = ["PLAIN", "LOGIN"] }}]
"#,
        data = data.display(),
        cert = pki_dir.join("cert.pem").display(),
        key = pki_dir.join("key.pem").display(),
        l1 = listener("mta", ports.mta, "starttls", setup.mta),
        l2 = listener("submission", ports.submission, "starttls", setup.submission),
        l3 = listener(
            "submissions",
            ports.submissions,
            "implicit",
            ConnLimits {
                global: 1000,
                per_ip: 1000
            }
        ),
        l4 = listener("perip", perip, "starttls", setup.perip),
        size = setup.max_message_size,
        ct = secs(setup.timeouts.command),
        dt = secs(setup.timeouts.data),
        ht = secs(setup.timeouts.handshake),
        abuse = setup.abuse,
        server_extra = setup.server,
    );
    fs::write(&config, text).expect("config");
    let mut server = Server {
        child: None,
        ports,
        dir: dir.to_owned(),
        data,
        config,
        log: dir.join("server.log"),
    };
    server.add_user("alice", "alice-pw");
    server.restart();
    let addr: SocketAddr = ([127, 0, 0, 1], perip).into();
    assert!(wait_for_port(addr, Duration::from_secs(20)), "perip port");
    Adv {
        server,
        pki,
        perip,
        setup,
    }
}

impl Adv {
    /// Panics (with the log) unless the process is still running.
    pub fn assert_alive(&mut self) {
        let c = self.server.child.as_mut().expect("started");
        if let Ok(Some(st)) = c.0.try_wait() {
            panic!("server exited with {st}; log:\n{}", self.server.log_text());
        }
    }

    /// Every delivered file of postmaster@localhost whose text contains
    /// `needle` (new/ and cur/).
    pub fn delivered_containing(&self, needle: &str) -> Vec<PathBuf> {
        let base = self.server.data.join("mail/localhost/postmaster");
        let mut out = Vec::new();
        for sub in ["new", "cur", "tmp"] {
            for e in fs::read_dir(base.join(sub)).into_iter().flatten().flatten() {
                if fs::read(e.path())
                    .map(|b| contains(&b, needle.as_bytes()))
                    .unwrap_or(false)
                {
                    out.push(e.path());
                }
            }
        }
        out
    }

    /// The live messages of the queue (committed or still being written)
    /// whose records (body chunks, envelopes) contain `needle`, by log key.
    /// Dead records a segment still holds until it is reclaimed are not
    /// looked at: they are never delivered.
    pub fn queued_containing(&self, needle: &str) -> Vec<String> {
        let dir = self.server.data.join("queue/log");
        if !dir.is_dir() {
            return Vec::new();
        }
        postern_queue::log::snapshot(&dir, |_| true)
            .expect("scan the queue")
            .into_iter()
            .filter(|(_, records)| {
                let all: Vec<u8> = records.iter().flat_map(|r| r.payload.clone()).collect();
                contains(&all, needle.as_bytes())
            })
            .map(|(key, _)| key.to_string())
            .collect()
    }

    /// Asserts that nothing holding `needle` is queued or delivered, after
    /// giving the local sweep (1 s) time to run.
    pub fn assert_never_stored(&self, needle: &str) {
        self.assert_none_stored(&[needle.to_owned()]);
    }

    /// [`Adv::assert_never_stored`] for several needles, one wait.
    pub fn assert_none_stored(&self, needles: &[String]) {
        std::thread::sleep(Duration::from_millis(1500));
        for needle in needles {
            let q = self.queued_containing(needle);
            let d = self.delivered_containing(needle);
            assert!(
                q.is_empty() && d.is_empty(),
                "{needle:?} stored: {q:?} {d:?}"
            );
        }
    }

    /// A TLS client config trusting the dev CA.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.pki.ca_pem.as_bytes()).expect("CA pem"))
            .expect("CA");
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                postern_listener::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
        )
    }

    /// Handshakes TLS on `tcp` (STARTTLS after its 220, or implicit).
    pub fn tls(&self, tcp: TcpStream) -> io::Result<Lines<TlsStream>> {
        let conn = rustls::ClientConnection::new(
            self.client_config(),
            ServerName::try_from("mx.test").expect("name"),
        )
        .map_err(io::Error::other)?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        Ok(Lines::new(s))
    }

    /// The well-behaved client: a full transaction on the `mta` listener
    /// (EHLO, MAIL, RCPT, DATA with a unique token, 250 with a queue id),
    /// then the message in postmaster's Maildir. Returns the time from
    /// connect to the 250; panics if it exceeds `bound`.
    pub fn well_behaved(&self, bound: Duration) -> Duration {
        use std::sync::atomic::AtomicU32;
        static N: AtomicU32 = AtomicU32::new(0);
        let token = format!(
            "GOOD-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let started = Instant::now();
        let mut c = Lines::plain(self.server.ports.mta).expect("well-behaved connect");
        let greeting = c.reply().expect("greeting");
        assert!(greeting.starts_with("220 "), "{greeting}");
        let r = c.cmd("EHLO good.test").expect("EHLO");
        assert!(r.starts_with("250"), "{r}");
        for (line, want) in [
            ("MAIL FROM:<good@remote.test>".to_owned(), "250 "),
            ("RCPT TO:<postmaster@localhost>".to_owned(), "250 "),
            ("DATA".to_owned(), "354 "),
            (
                format!("Subject: {token}\r\n\r\nwell-behaved {token}\r\n."),
                "250 ",
            ),
        ] {
            let r = c.cmd(&line).expect("well-behaved transaction");
            assert!(r.starts_with(want), "{line}: {r}");
            if want == "250 " && line.starts_with("Subject") {
                let id = queue_id(&r).unwrap_or_else(|| panic!("no queue id in {r}"));
                let took = started.elapsed();
                let _ = c.cmd("QUIT");
                assert!(
                    took < bound,
                    "well-behaved client took {took:?} (bound {bound:?})"
                );
                let file = self.server.wait_maildir("postmaster", "localhost", &id);
                let text = fs::read_to_string(file).expect("maildir file");
                assert!(text.contains(&token), "{text}");
                return took;
            }
        }
        unreachable!()
    }
}

/// The TLS stream type of [`Adv::tls`].
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Whether `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// A line-reading SMTP client over any stream.
pub struct Lines<S: Read + Write> {
    r: BufReader<S>,
}

impl Lines<TcpStream> {
    /// Connects to 127.0.0.1:`port` (10 s read/write timeouts); the
    /// greeting is not read.
    pub fn plain(port: u16) -> io::Result<Lines<TcpStream>> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(Lines::new(s))
    }

    /// The socket.
    pub fn tcp(&self) -> &TcpStream {
        self.r.get_ref()
    }

    /// The socket back, with the octets already read past the last reply.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        let rest = self.r.buffer().to_vec();
        (self.r.into_inner(), rest)
    }

    /// The socket back, asserting nothing was read past the last reply.
    pub fn into_tcp(self) -> TcpStream {
        assert!(
            self.r.buffer().is_empty(),
            "octets after the reply: {:?}",
            String::from_utf8_lossy(self.r.buffer())
        );
        self.r.into_inner()
    }
}

impl Lines<TlsStream> {
    /// The TCP socket under TLS.
    pub fn tcp(&self) -> &TcpStream {
        &self.r.get_ref().sock
    }
}

impl<S: Read + Write> Lines<S> {
    /// Wraps a stream.
    pub fn new(s: S) -> Lines<S> {
        Lines {
            r: BufReader::with_capacity(64 * 1024, s),
        }
    }

    /// Writes `b` and flushes.
    pub fn send(&mut self, b: &[u8]) -> io::Result<()> {
        let s = self.r.get_mut();
        s.write_all(b)?;
        s.flush()
    }

    /// One reply (all its lines).
    pub fn reply(&mut self) -> io::Result<String> {
        let mut all = String::new();
        loop {
            let mut line = Vec::new();
            if self.r.read_until(b'\n', &mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed after {all:?}"),
                ));
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            let last = line.len() < 4 || line.as_bytes()[3] != b'-';
            all.push_str(&line);
            if last {
                return Ok(all);
            }
        }
    }

    /// Sends `line` + CRLF and reads the reply.
    pub fn cmd(&mut self, line: &str) -> io::Result<String> {
        self.send(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// True when the peer has closed: EOF (or reset) within `within`,
    /// with no further reply.
    pub fn closed_within(&mut self, within: Duration, tcp: &TcpStream) -> bool {
        let _ = tcp.set_read_timeout(Some(within));
        let mut b = [0u8; 512];
        match self.r.read(&mut b) {
            Ok(0) => true,
            Ok(n) => panic!("expected close, got {:?}", String::from_utf8_lossy(&b[..n])),
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
            ),
        }
    }

    /// Asserts that nothing arrives for `quiet` (no unprompted reply).
    pub fn assert_silent(&mut self, quiet: Duration, tcp: &TcpStream) {
        let _ = tcp.set_read_timeout(Some(quiet));
        let mut b = [0u8; 512];
        match self.r.read(&mut b) {
            Ok(n) => panic!("unprompted data: {:?}", String::from_utf8_lossy(&b[..n])),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ),
                "{e}"
            ),
        }
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    }
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Samples VmRSS of a process every 50 ms until dropped; `peak()` is the
/// largest sample.
pub struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> RssSampler {
        let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        RssSampler {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// The largest sample so far, in KiB.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Makes sure this process (and so the server it spawns) may open `n`
/// files, raising the soft limit with prlimit(1) when it is lower.
pub fn ensure_nofile(n: u64) {
    let limits = fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or(0);
    if soft >= n {
        return;
    }
    let status = std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={n}:"))
        .status();
    assert!(
        matches!(status, Ok(s) if s.success()),
        "RLIMIT_NOFILE is {soft} and cannot be raised to {n}"
    );
}
