//! A postern-mta process for tests: a config with free loopback ports in a
//! temporary directory, the binary started with it, ports waited for, and
//! the process killed (and reaped) on drop.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postern_testkit::{ChildGuard, free_port, wait_for_port};

/// The binary under test; `POSTERN_MTA_BIN` overrides it (to measure an
/// older build with the same attacks, see docs/adversarial.md).
pub fn bin() -> PathBuf {
    std::env::var_os("POSTERN_MTA_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_postern-mta")),
        PathBuf::from,
    )
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "postern-mta-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("POSTERN_KEEP_TEMP").is_none() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// The ports of the three listeners.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub mta: u16,
    pub submission: u16,
    pub submissions: u16,
}

impl Ports {
    pub fn free() -> Ports {
        Ports {
            mta: free_port(),
            submission: free_port(),
            submissions: free_port(),
        }
    }
}

/// The test configuration: the guide's rules, `localhost` and
/// `mydomain.test` (STARTTLS required for it), a self-signed certificate,
/// a fast local sweep.
pub fn config_text(ports: Ports, data: &Path, extra: &str) -> String {
    config_text_with_tls(ports, data, extra, SELF_SIGNED)
}

/// The default `[tls.default]` table.
pub const SELF_SIGNED: &str = "certificate = \"self-signed\"";

/// [`config_text`] with another body for `[tls.default]`.
pub fn config_text_with_tls(ports: Ports, data: &Path, extra: &str, tls: &str) -> String {
    // The tests connect from loopback, often and fast: the connection rate
    // limit (on by default, loopback included) is tested on its own, in
    // the adversarial suite, and lifted here unless a test sets its own.
    let rate = if extra.contains("[connection_rate") {
        ""
    } else {
        "[connection_rate]\nallow = [\"127.0.0.0/8\"]\n"
    };
    format!(
        r#"
[server]
hostname = "mx.test"
data_dir = "{data}"

[[domain]]
name = "localhost"

[[domain]]
name = "mydomain.test"
mailboxes = ["bob"]

[tls.default]
{tls}
versions = ["TLSv1.2", "TLSv1.3"]

[[listener]]
name = "mta"
address = "127.0.0.1:{mta}"
mode = "starttls"
tls = "default"

[[listener]]
name = "submission"
address = "127.0.0.1:{submission}"
mode = "starttls"
tls = "default"

[[listener]]
name = "submissions"
address = "127.0.0.1:{submissions}"
mode = "implicit"
tls = "default"

[queue]
scan_interval = "1s"

{extra}

{rate}

[[rule]]
name = "disableAUTH_on_non_SSL"
actions = [{{ plain_auth = "off" }}]

[[rule]]
name = "enableAUTH_on_SSL"
actions = [{{ tls_auth = ["PLAIN", "LOGIN"] }}]

[[rule]]
name = "allow_only_tls_for_mydomain_test"
match = "all"
conditions = [{{ tls = false }}, {{ recipient_domain = {{ is = "mydomain.test" }} }}]
actions = [{{ reject = {{ code = 550, enhanced = "5.7.1", text = "Accepting only secure delivery (STARTTLS) for mydomain.test" }} }}]
"#,
        data = data.display(),
        mta = ports.mta,
        submission = ports.submission,
        submissions = ports.submissions,
        tls = tls,
        rate = rate,
    )
}

/// A running server.
pub struct Server {
    pub child: Option<ChildGuard>,
    pub ports: Ports,
    pub dir: PathBuf,
    pub data: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Server {
    /// Writes the config into `dir` and starts the server; adds user
    /// `alice` with password `alice-pw` first.
    pub fn start(dir: &Path, extra: &str) -> Server {
        Server::start_with_tls(dir, extra, SELF_SIGNED)
    }

    /// [`Server::start`] with another body for `[tls.default]`.
    pub fn start_with_tls(dir: &Path, extra: &str, tls: &str) -> Server {
        let ports = Ports::free();
        let data = dir.join("data");
        let config = dir.join("postern.toml");
        fs::write(&config, config_text_with_tls(ports, &data, extra, tls)).expect("write config");
        let mut s = Server {
            child: None,
            ports,
            dir: dir.to_owned(),
            data,
            config,
            log: dir.join("server.log"),
        };
        s.add_user("alice", "alice-pw");
        s.restart();
        s
    }

    /// (Re)starts the process with the same config and data.
    pub fn restart(&mut self) {
        self.child = None;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = ChildGuard::spawn(
            Command::new(bin())
                .arg("--config")
                .arg(&self.config)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log),
        );
        self.child = Some(child);
        for port in [
            self.ports.mta,
            self.ports.submission,
            self.ports.submissions,
        ] {
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            assert!(
                wait_for_port(addr, Duration::from_secs(20)),
                "server did not listen on {addr}; log:\n{}",
                self.log_text()
            );
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.0.id()).expect("running")
    }

    /// SIGKILL, reaped.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.0.kill();
            let _ = c.0.wait();
        }
    }

    /// Sends a signal with kill(1).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill(1)");
        assert!(status.success());
    }

    /// Waits up to `timeout` for the process to exit; its status code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let c = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.0.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn add_user(&self, name: &str, password: &str) {
        let mut child = Command::new(bin())
            .args(["user", "add", name, "--config"])
            .arg(&self.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("user add");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n").as_bytes())
            .expect("password");
        let out = child.wait_with_output().expect("user add");
        assert!(out.status.success(), "user add failed");
    }

    /// The queued envelopes, read from the running server's log without
    /// disturbing it.
    pub fn queued(&self) -> Vec<postern_queue::Envelope> {
        postern_queue::LogStore::inspect(&self.data.join("queue")).expect("inspect the queue")
    }

    /// Message `id`'s envelope as TOML (what the queue stores), if queued.
    pub fn queued_toml(&self, id: &str) -> Option<String> {
        let env = self.queued().into_iter().find(|e| e.id.as_str() == id)?;
        Some(toml::to_string(&env).expect("envelope as TOML"))
    }

    /// Messages in the queue's log that were never committed (records
    /// without an envelope): what an abandoned transaction may leave.
    pub fn uncommitted(&self) -> usize {
        use postern_queue::log::{RecordKind, snapshot};
        let dir = self.data.join("queue/log");
        if !dir.is_dir() {
            return 0;
        }
        snapshot(&dir, |_| true)
            .expect("scan the queue")
            .iter()
            .filter(|(_, rs)| rs.iter().all(|r| r.kind == RecordKind::Body))
            .count()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Files in the Maildir `new/` of `local@domain`.
    pub fn maildir(&self, local: &str, domain: &str) -> Vec<PathBuf> {
        let dir = self.data.join("mail").join(domain).join(local).join("new");
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Waits for a Maildir file whose name has queue id `id`.
    pub fn wait_maildir(&self, local: &str, domain: &str, id: &str) -> PathBuf {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(p) = self
                .maildir(local, domain)
                .into_iter()
                .find(|p| p.to_string_lossy().contains(&format!("Q{id}R")))
            {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "no maildir file for {id} in {local}@{domain}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The queue id in a `250 2.0.0 Ok: queued as ID` reply (anywhere in `text`).
pub fn queue_id(text: &str) -> Option<String> {
    let i = text.find("queued as ")?;
    let id: String = text[i + 10..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    (id.len() == 26).then_some(id)
}

/// Runs a command with a time limit; (status code, stdout + stderr).
pub fn run(cmd: &mut Command, timeout: Duration) -> (Option<i32>, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let t1 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = t1.join().unwrap_or_default() + &t2.join().unwrap_or_default();
    (code, out)
}

/// A minimal plaintext SMTP client for load and crash tests.
pub struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    pub fn connect(port: u16) -> std::io::Result<Smtp> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        let mut c = Smtp {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        };
        c.reply()?;
        Ok(c)
    }

    /// One reply (all lines), as text.
    pub fn reply(&mut self) -> std::io::Result<String> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return Ok(all);
            }
        }
    }

    /// The socket, e.g. to write a body in parts.
    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }

    pub fn cmd(&mut self, line: &str) -> std::io::Result<String> {
        self.writer.write_all(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// One message; the final reply.
    pub fn send(&mut self, from: &str, to: &str, body: &[u8]) -> std::io::Result<String> {
        for (line, want) in [
            (format!("MAIL FROM:<{from}>"), "250"),
            (format!("RCPT TO:<{to}>"), "250"),
            ("DATA".to_owned(), "354"),
        ] {
            let r = self.cmd(&line)?;
            if !r.starts_with(want) {
                return Ok(r);
            }
        }
        self.writer.write_all(body)?;
        self.writer.write_all(b".\r\n")?;
        self.reply()
    }
}

/// aiosmtpd, the real SMTP peer, through the relay crate's
/// `tests/peers/smtpd.py` (JSON-line log of EHLO, MAIL, DATA and AUTH
/// events): a certificate for `localhost` from a CA of its own (`ca.pem` in
/// [`Aiosmtpd::dir`]), a free port, killed and cleaned up on drop.
pub struct Aiosmtpd {
    child: ChildGuard,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// Its directory: `ca.pem`, `cert.pem`, `key.pem`, the log.
    pub dir: PathBuf,
    log: PathBuf,
}

impl Aiosmtpd {
    /// `mode`: plain, starttls or implicit; `extra`: more options of the
    /// script (`--auth`, `--requiretls`...). `None` (SKIPPED, or a failure
    /// when peers are required) without aiosmtpd.
    pub fn start(mode: &str, extra: &[&str]) -> Option<Aiosmtpd> {
        Self::start_on(free_port(), mode, extra)
    }

    /// [`Aiosmtpd::start`] on a given port (one a test routed mail to
    /// before the peer was up).
    pub fn start_on(port: u16, mode: &str, extra: &[&str]) -> Option<Aiosmtpd> {
        let python = postern_testkit::python_with("aiosmtpd")?;
        let dir =
            std::env::temp_dir().join(format!("postern-aiosmtpd-{}-{port}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("peer dir");
        postern_testkit::write_pki(&postern_testkit::dev_pki(&["localhost"]), &dir)
            .expect("peer pki");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/relay/tests/peers/smtpd.py");
        let log = dir.join("log.jsonl");
        let child = ChildGuard::spawn(
            Command::new(python)
                .arg(script)
                .args(["--port", &port.to_string(), "--mode", mode])
                .arg("--cert")
                .arg(dir.join("cert.pem"))
                .arg("--key")
                .arg(dir.join("key.pem"))
                .arg("--log")
                .arg(&log)
                .args(extra)
                .stdin(Stdio::null())
                .stderr(fs::File::create(dir.join("stderr.log")).expect("stderr file")),
        );
        assert!(
            wait_for_port(
                SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_secs(15)
            ),
            "aiosmtpd did not start on port {port}"
        );
        Some(Aiosmtpd {
            child,
            port,
            dir,
            log,
        })
    }

    /// The JSON lines of one event kind (`EHLO`, `MAIL`, `DATA`, `AUTH`).
    pub fn events(&self, kind: &str) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("\"event\": \"{kind}\"")))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
