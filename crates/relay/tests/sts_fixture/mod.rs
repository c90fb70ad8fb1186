//! The MTA-STS fixture (issue 14): the local DNS zone `sts.dane.test`,
//! nginx serving the cases' policies under a test CA, and an aiosmtpd MX.
//! Shared by the relay's `mta_sts` tests and the queue's TLS-RPT tests
//! (included there by path).

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use postern_proto::{ForwardPath, Host, Mailbox, ReversePath};
use postern_relay::mta_sts::{
    CachedPolicy, FetchSettings, PolicyCache, PolicyFetcher, StsPolicy, StsResolver,
};
use postern_relay::tlsrpt::TlsSession;
use postern_relay::{
    Anchors, DnssecConfig, DnssecResolver, Message, MessageResult, Relay, Route, SessionConfig,
    Target, Timeouts, TlsMode, TlsPolicy,
};
use postern_testkit::{
    ChildGuard, dev_pki, find_executable, free_port, missing, python_with, wait_for_port,
};

/// nginx and the SMTP peer listen on fixed addresses: one case at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub const POLICY_HOST_ADDR: &str = "127.0.3.1";
pub const MX_ADDR: &str = "127.0.3.10";
pub const CASES: [&str; 16] = [
    "good",
    "badtxt",
    "badfile",
    "badcert",
    "testing",
    "none",
    "same",
    "newid",
    "fetchfail",
    "nomatch",
    "restart",
    "redirect",
    "html",
    "big",
    "twotxt",
    "testbad",
];

pub struct Fixture {
    _serial: MutexGuard<'static, ()>,
    pub dir: PathBuf,
    pub zone: String,
    pub https_port: u16,
    pub smtp_port: u16,
    pub anchors: Anchors,
    pub resolver: Arc<DnssecResolver>,
    pub nginx: Option<ChildGuard>,
    _peer: ChildGuard,
    pub peer_log: PathBuf,
    /// Every TLS-RPT session the deliveries tried, in order.
    pub sessions: Mutex<Vec<TlsSession>>,
}

pub fn enforce(mx: &str) -> String {
    format!("version: STSv1\nmode: enforce\nmx: {mx}\nmax_age: 86400\n")
}

impl Fixture {
    pub fn start() -> Option<Fixture> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let Some(resolver) = var("POSTERN_DNS_RESOLVER") else {
            missing(
                "the DNS test servers (POSTERN_DNS_RESOLVER unset: eval \"$(scripts/dns-test-servers.sh)\")",
            );
            return None;
        };
        let zone = var("POSTERN_STS_ZONE").unwrap_or_else(|| "sts.dane.test".into());
        let Some(nginx) = find_executable("nginx") else {
            missing("nginx");
            return None;
        };
        let python = python_with("aiosmtpd")?;
        let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = std::env::temp_dir().join(format!("postern-mta-sts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tmp")).unwrap();

        // One CA for the policy hosts and the MX hosts; badcert's policy
        // host gets a certificate of a CA the relay does not trust.
        let mut names: Vec<String> = CASES
            .iter()
            .filter(|c| **c != "badcert")
            .map(|c| format!("mta-sts.{c}.{zone}"))
            .collect();
        // testbad's MX is left out: its certificate does not name it.
        names.extend(
            CASES
                .iter()
                .filter(|c| **c != "testbad")
                .map(|c| format!("mx.{c}.{zone}")),
        );
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let pki = dev_pki(&refs);
        let rogue = dev_pki(&[&format!("mta-sts.badcert.{zone}")]);
        for (name, text) in [
            ("cert.pem", &pki.cert_pem),
            ("key.pem", &pki.key_pem),
            ("rogue.pem", &rogue.cert_pem),
            ("rogue.key", &rogue.key_pem),
        ] {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let anchors = Anchors::from_pem(pki.ca_pem.as_bytes()).unwrap();

        let https_port = free_port();
        let sink_port = free_port();
        std::fs::create_dir_all(dir.join("posts")).unwrap();
        let smtp_port = free_port();
        let fixture_zone = zone.clone();
        let write = |case: &str, body: &str| {
            let path = dir.join(format!("www/{case}/.well-known/mta-sts.txt"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        };
        for case in CASES {
            let body = match case {
                "good" | "restart" | "newid" => enforce(&format!("mx.{case}.{zone}")),
                // Wildcards match one label only: mx.good.<zone> is not
                // under *.<zone>.
                "nomatch" => enforce(&format!("*.{zone}")),
                "badfile" => "version: STSv1\nmode: enforce\nmx: nowhere.example\n".into(),
                "testing" => {
                    "version: STSv1\nmode: testing\nmx: nowhere.example\nmax_age: 86400\n".into()
                }
                "none" => "version: STSv1\nmode: none\nmax_age: 86400\n".into(),
                "testbad" => {
                    format!("version: STSv1\nmode: testing\nmx: mx.{case}.{zone}\nmax_age: 86400\n")
                }
                "big" => format!("{}{}", enforce("nowhere.example"), "x: y\n".repeat(20_000)),
                _ => enforce("nowhere.example"),
            };
            write(case, &body);
        }
        let d = dir.display();
        let mut servers = String::new();
        for case in CASES {
            let (cert, key) = if case == "badcert" {
                ("rogue.pem", "rogue.key")
            } else {
                ("cert.pem", "key.pem")
            };
            let location = match case {
                "redirect" => format!(
                    "return 301 https://mta-sts.good.{zone}:{https_port}/.well-known/mta-sts.txt;"
                ),
                "fetchfail" => "return 503;".into(),
                "html" => "types { } default_type text/html;".into(),
                _ => "types { } default_type text/plain;".into(),
            };
            servers.push_str(&format!(
                "server {{ listen {POLICY_HOST_ADDR}:{https_port} ssl; server_name mta-sts.{case}.{zone};\n\
                 ssl_certificate {d}/{cert}; ssl_certificate_key {d}/{key};\n\
                 root {d}/www/{case};\n\
                 location = /.well-known/mta-sts.txt {{ {location} }}\n\
                 location = /tlsrpt {{ client_body_in_file_only on; client_body_temp_path {d}/posts;\n\
                 proxy_pass http://{POLICY_HOST_ADDR}:{sink_port}/; }} }}\n"
            ));
        }
        // TLS-RPT reports POSTed to /tlsrpt are kept in posts/ (the body
        // read into a file that stays), then answered 200 by this server.
        servers.push_str(&format!(
            "server {{ listen {POLICY_HOST_ADDR}:{sink_port}; location / {{ return 200; }} }}\n"
        ));
        let conf = format!(
            "daemon off; master_process off; worker_processes 1;\n\
             pid {d}/nginx.pid; error_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
             log_format sts '$ssl_server_name $request $status';\n\
             access_log {d}/access.log sts;\n\
             client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy;\n\
             fastcgi_temp_path {d}/tmp/fastcgi; uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;\n\
             {servers}}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let nginx = ChildGuard::spawn(
            Command::new(nginx)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .arg("-e")
                .arg(dir.join("error.log"))
                .stdin(Stdio::null())
                .stderr(std::fs::File::create(dir.join("nginx.stderr")).unwrap()),
        );
        let https: SocketAddr = format!("{POLICY_HOST_ADDR}:{https_port}").parse().unwrap();
        assert!(
            wait_for_port(https, Duration::from_secs(10)),
            "nginx did not start: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );

        let peer_log = dir.join("smtp.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../relay/tests/peers/smtpd.py");
        let peer = ChildGuard::spawn(
            Command::new(python)
                .arg(script)
                .args(["--addr", MX_ADDR, "--port", &smtp_port.to_string()])
                .args(["--mode", "starttls"])
                .arg("--cert")
                .arg(dir.join("cert.pem"))
                .arg("--key")
                .arg(dir.join("key.pem"))
                .arg("--log")
                .arg(&peer_log)
                .stdin(Stdio::null())
                .stderr(std::fs::File::create(dir.join("smtp.stderr")).unwrap()),
        );
        let smtp: SocketAddr = format!("{MX_ADDR}:{smtp_port}").parse().unwrap();
        assert!(
            wait_for_port(smtp, Duration::from_secs(15)),
            "aiosmtpd did not start"
        );
        let config =
            DnssecConfig::new([resolver.parse().expect("POSTERN_DNS_RESOLVER is ADDR:PORT")])
                .with_timeouts(Duration::from_secs(2), Duration::from_secs(8));
        Some(Fixture {
            _serial: serial,
            dir,
            zone: fixture_zone,
            https_port,
            smtp_port,
            anchors,
            resolver: Arc::new(DnssecResolver::new(config).expect("resolver")),
            nginx: Some(nginx),
            _peer: peer,
            peer_log,
            sessions: Mutex::new(Vec::new()),
        })
    }

    pub fn domain(&self, case: &str) -> String {
        format!("{case}.{}", self.zone)
    }

    pub fn fetcher(&self) -> PolicyFetcher {
        let settings = FetchSettings::new(self.anchors.clone())
            .with_port(self.https_port)
            .with_timeout(Duration::from_secs(5));
        PolicyFetcher::new(settings, provider(), self.resolver.clone()).unwrap()
    }

    pub fn cache(&self) -> PolicyCache {
        PolicyCache::open(self.dir.join("cache")).unwrap()
    }

    /// A resolver over the fixture's cache directory (a new one is what a
    /// restarted MTA has).
    pub fn sts(&self) -> Arc<StsResolver> {
        Arc::new(StsResolver::new(
            self.resolver.clone(),
            self.fetcher(),
            Some(self.cache()),
        ))
    }

    pub fn deliver(&self, sts: &Arc<StsResolver>, case: &str) -> MessageResult {
        let domain = self.domain(case);
        let message = Message::new(
            ReversePath::Mailbox(Mailbox::parse("alice@relay.test").unwrap().into_owned()),
            [ForwardPath::Mailbox(
                Mailbox::parse(&format!("bob@{domain}"))
                    .unwrap()
                    .into_owned(),
            )],
            &b"Subject: MTA-STS\r\n\r\nhello\r\n"[..],
        );
        let (relay, route) = self.relay(sts, case);
        let delivery = runtime().block_on(relay.deliver_reporting(&route, vec![message]));
        self.sessions.lock().unwrap().extend(delivery.tls_sessions);
        delivery.results.into_iter().next().expect("one result")
    }

    /// The relay and the route of `case`: the MTA's default, DANE, else
    /// MTA-STS, else opportunistic.
    pub fn relay(&self, sts: &Arc<StsResolver>, case: &str) -> (Relay, Route) {
        let route = Route::new(
            Target::mx(self.domain(case), self.smtp_port),
            TlsPolicy::new(TlsMode::dane()).with_mta_sts(true),
        );
        let mut session = SessionConfig::new(Host::parse("relay.test").unwrap().into_owned());
        session.timeouts = Timeouts::uniform(Duration::from_secs(10));
        let relay = Relay::new(session, provider(), self.resolver.clone())
            .with_dane_resolver(self.resolver.clone())
            .with_mta_sts(sts.clone());
        (relay, route)
    }

    /// The sessions recorded since the last call.
    pub fn take_sessions(&self) -> Vec<TlsSession> {
        std::mem::take(&mut *self.sessions.lock().unwrap())
    }

    /// The bodies nginx received on /tlsrpt, oldest first.
    pub fn posts(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<PathBuf> = walk(&self.dir.join("posts"));
        files.sort();
        files.iter().map(|f| std::fs::read(f).unwrap()).collect()
    }

    /// Messages for `case` the SMTP peer received.
    pub fn delivered(&self, case: &str) -> usize {
        let rcpt = format!("bob@{}", self.domain(case));
        std::fs::read_to_string(&self.peer_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"event\": \"DATA\"") && l.contains(&rcpt))
            .count()
    }

    /// Connections the SMTP peer saw (EHLO commands), for every case.
    pub fn ehlos(&self) -> usize {
        std::fs::read_to_string(&self.peer_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"event\": \"EHLO\""))
            .count()
    }

    /// Requests nginx logged for `case`'s policy host.
    pub fn fetches(&self, case: &str) -> usize {
        let host = format!("mta-sts.{} ", self.domain(case));
        std::fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(&host))
            .count()
    }

    pub fn seed(&self, case: &str, id: &str, policy: &str, age: u64) {
        let entry = CachedPolicy::new(
            id,
            StsPolicy::parse(policy.as_bytes()).unwrap(),
            now() - age,
        );
        self.cache().store(&self.domain(case), &entry).unwrap();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.nginx.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The files under `dir`, at any depth.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(postern_relay::default_provider())
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
