//! MTA-STS end to end (issue 14): `Relay::deliver` with an
//! [`StsResolver`] against real parts:
//! - the local DNS of `scripts/dns-test-servers.sh` (zone `sts.dane.test`,
//!   unsigned, so DANE does not apply and MTA-STS decides), through the
//!   validating Unbound;
//! - Debian's nginx, started here on a high loopback port with a temporary
//!   configuration, serving the policies under a test CA made with rcgen
//!   (the policy host of `badcert` presents a certificate of another CA);
//! - an aiosmtpd peer with STARTTLS for every MX host (all at 127.0.3.10,
//!   one certificate naming them all).
//!
//! The cases are postfix-mta-sts-resolver's:
//!
//! | case | expected |
//! |---|---|
//! | good policy | delivered to a matching MX, certificate verified |
//! | bad TXT record (and two TXT records) | no policy |
//! | bad policy file | no policy |
//! | bad certificate on the policy host | no policy |
//! | testing mode | delivered, not enforced |
//! | none | no policy |
//! | policy changed with the same id | old policy kept until max_age |
//! | policy changed with a new id | refreshed |
//! | fetch fails with a cached policy | the cached policy enforced |
//! | MX not matching an enforce policy | not used |
//! | restart with a cached policy | still enforced before any fetch |
//!
//! and the fetch's own rules: a redirect, a media type other than
//! text/plain, a body over the bound and a server that never answers are
//! all failures.
//!
//! Without the DNS environment, nginx or aiosmtpd every test is SKIPPED
//! loudly; with POSTERN_REQUIRE_PEERS=1 it fails instead.

#![cfg(all(feature = "hickory", feature = "mta-sts-fetch"))]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use postern_proto::{ForwardPath, Host, Mailbox, ReversePath};
use postern_relay::mta_sts::{
    CachedPolicy, FetchError, FetchSettings, PolicyCache, PolicyFetcher, PolicySource, StsMode,
    StsPolicy, StsResolver,
};
use postern_relay::{
    Anchors, DnssecConfig, DnssecResolver, Message, MessageResult, Relay, RelayError, Resolver,
    Route, SessionConfig, StaticResolver, Target, Timeouts, TlsMode, TlsPolicy,
};
use postern_testkit::{
    ChildGuard, dev_pki, find_executable, free_port, missing, python_with, wait_for_port,
};

/// nginx and the SMTP peer listen on fixed addresses: one case at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const POLICY_HOST_ADDR: &str = "127.0.3.1";
const MX_ADDR: &str = "127.0.3.10";
const CASES: [&str; 15] = [
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
];

struct Fixture {
    _serial: MutexGuard<'static, ()>,
    dir: PathBuf,
    zone: String,
    https_port: u16,
    smtp_port: u16,
    anchors: Anchors,
    resolver: Arc<DnssecResolver>,
    nginx: Option<ChildGuard>,
    _peer: ChildGuard,
    peer_log: PathBuf,
}

fn enforce(mx: &str) -> String {
    format!("version: STSv1\nmode: enforce\nmx: {mx}\nmax_age: 86400\n")
}

impl Fixture {
    fn start() -> Option<Fixture> {
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
        names.extend(CASES.iter().map(|c| format!("mx.{c}.{zone}")));
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
                 location = /.well-known/mta-sts.txt {{ {location} }} }}\n"
            ));
        }
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
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/smtpd.py");
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
        })
    }

    fn domain(&self, case: &str) -> String {
        format!("{case}.{}", self.zone)
    }

    fn fetcher(&self) -> PolicyFetcher {
        let settings = FetchSettings::new(self.anchors.clone())
            .with_port(self.https_port)
            .with_timeout(Duration::from_secs(5));
        PolicyFetcher::new(settings, provider(), self.resolver.clone()).unwrap()
    }

    fn cache(&self) -> PolicyCache {
        PolicyCache::open(self.dir.join("cache")).unwrap()
    }

    /// A resolver over the fixture's cache directory (a new one is what a
    /// restarted MTA has).
    fn sts(&self) -> Arc<StsResolver> {
        Arc::new(StsResolver::new(
            self.resolver.clone(),
            self.fetcher(),
            Some(self.cache()),
        ))
    }

    fn deliver(&self, sts: &Arc<StsResolver>, case: &str) -> MessageResult {
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
        // The MTA's default: DANE, else MTA-STS, else opportunistic.
        let route = Route::new(
            Target::mx(domain, self.smtp_port),
            TlsPolicy::new(TlsMode::dane()).with_mta_sts(true),
        );
        let mut session = SessionConfig::new(Host::parse("relay.test").unwrap().into_owned());
        session.timeouts = Timeouts::uniform(Duration::from_secs(10));
        let relay = Relay::new(session, provider(), self.resolver.clone())
            .with_dane_resolver(self.resolver.clone())
            .with_mta_sts(sts.clone());
        runtime()
            .block_on(relay.deliver(&route, vec![message]))
            .pop()
            .expect("one result")
    }

    /// Messages for `case` the SMTP peer received.
    fn delivered(&self, case: &str) -> usize {
        let rcpt = format!("bob@{}", self.domain(case));
        std::fs::read_to_string(&self.peer_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"event\": \"DATA\"") && l.contains(&rcpt))
            .count()
    }

    /// Connections the SMTP peer saw (EHLO commands), for every case.
    fn ehlos(&self) -> usize {
        std::fs::read_to_string(&self.peer_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"event\": \"EHLO\""))
            .count()
    }

    /// Requests nginx logged for `case`'s policy host.
    fn fetches(&self, case: &str) -> usize {
        let host = format!("mta-sts.{} ", self.domain(case));
        std::fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(&host))
            .count()
    }

    fn seed(&self, case: &str, id: &str, policy: &str, age: u64) {
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

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(postern_relay::default_provider())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn error(result: &MessageResult) -> &RelayError {
    result.recipients[0]
        .outcome
        .as_ref()
        .expect_err("not delivered")
}

/// Delivered over TLS that was not verified: no policy applied.
fn assert_delivered_without_policy(fx: &Fixture, sts: &Arc<StsResolver>, case: &str) {
    let result = fx.deliver(sts, case);
    assert!(result.all_delivered(), "{case}: {result:?}");
    let tls = result.tls.as_ref().expect("opportunistic TLS");
    assert!(
        !tls.verified,
        "{case}: no policy, so no verification: {tls}"
    );
    assert_eq!(fx.delivered(case), 1, "{case}");
}

#[test]
fn good_policy_delivers_to_the_matching_mx_verified_and_caches_it_on_disk() {
    let Some(fx) = Fixture::start() else { return };
    let sts = fx.sts();
    let result = fx.deliver(&sts, "good");
    assert!(result.all_delivered(), "{result:?}");
    let tls = result.tls.as_ref().expect("TLS");
    assert!(
        tls.verified,
        "enforce: the MX certificate is verified: {tls}"
    );
    assert_eq!(tls.server_name, format!("mx.{}", fx.domain("good")));
    assert_eq!(fx.delivered("good"), 1);
    // Cached under the TXT id (a record split into two strings), on disk.
    let cached = fx.cache().load(&fx.domain("good")).expect("cached on disk");
    assert_eq!(cached.id, "good1");
    assert_eq!(cached.policy.mode(), StsMode::Enforce);
    // The second message uses the cache: no second fetch.
    assert!(fx.deliver(&sts, "good").all_delivered());
    assert_eq!(fx.fetches("good"), 1);
}

#[test]
fn bad_txt_records_bad_policy_files_bad_certificates_and_none_mean_no_policy() {
    let Some(fx) = Fixture::start() else { return };
    let sts = fx.sts();
    // Each serves (or would serve) an enforce policy no MX matches: were
    // it applied, nothing would be delivered.
    for case in ["badtxt", "twotxt", "badfile", "badcert", "none"] {
        assert_delivered_without_policy(&fx, &sts, case);
        let lookup = runtime().block_on(sts.lookup(&fx.domain(case)));
        assert!(lookup.policy.is_none(), "{case}: {lookup:?}");
    }
    // The bad TXT records are never fetched for.
    assert_eq!(fx.fetches("badtxt") + fx.fetches("twotxt"), 0);
    // The certificate of another CA fails the handshake.
    let e = runtime()
        .block_on(fx.fetcher().fetch(&fx.domain("badcert")))
        .unwrap_err();
    assert!(matches!(e, FetchError::Tls { .. }), "{e:?}");
    let e = runtime()
        .block_on(fx.fetcher().fetch(&fx.domain("badfile")))
        .unwrap_err();
    assert!(matches!(e, FetchError::Policy { .. }), "{e:?}");
}

#[test]
fn testing_mode_delivers_to_a_host_the_policy_does_not_name() {
    let Some(fx) = Fixture::start() else { return };
    let sts = fx.sts();
    let lookup = runtime().block_on(sts.lookup(&fx.domain("testing")));
    assert_eq!(lookup.mode(), Some(StsMode::Testing), "{lookup:?}");
    let result = fx.deliver(&sts, "testing");
    assert!(result.all_delivered(), "{result:?}");
    assert_eq!(fx.delivered("testing"), 1);
}

#[test]
fn an_mx_not_matching_an_enforced_policy_is_not_used() {
    let Some(fx) = Fixture::start() else { return };
    let before = fx.ehlos();
    let result = fx.deliver(&fx.sts(), "nomatch");
    let e = error(&result);
    assert!(
        matches!(e, RelayError::StsNoMatchingMx { domain } if *domain == fx.domain("nomatch")),
        "{e:?}"
    );
    assert!(e.is_transient());
    assert_eq!(e.status().to_string(), "4.7.5");
    assert_eq!(
        fx.ehlos(),
        before,
        "no connection to a host the policy excludes"
    );
}

#[test]
fn a_policy_changed_under_the_same_id_is_not_refetched_until_refresh() {
    let Some(fx) = Fixture::start() else { return };
    // Cached an hour ago under the id DNS still shows; the server now has
    // a policy naming no MX of ours. The cached one applies.
    let cached = enforce(&format!("mx.{}", fx.domain("same")));
    fx.seed("same", "same1", &cached, 3600);
    let result = fx.deliver(&fx.sts(), "same");
    assert!(result.all_delivered(), "{result:?}");
    assert!(result.tls.as_ref().is_some_and(|t| t.verified));
    assert_eq!(fx.fetches("same"), 0);
    let kept = fx.cache().load(&fx.domain("same")).unwrap();
    assert_eq!(kept.policy, StsPolicy::parse(cached.as_bytes()).unwrap());

    // Close to expiry (max_age one day, fetched 23.5 hours ago), the
    // policy is refreshed: the new one is fetched and enforced.
    fx.seed("same", "same1", &cached, 86_400 - 1800);
    let result = fx.deliver(&fx.sts(), "same");
    assert!(
        matches!(error(&result), RelayError::StsNoMatchingMx { .. }),
        "{result:?}"
    );
    assert_eq!(fx.fetches("same"), 1);
}

#[test]
fn a_new_id_refreshes_the_policy() {
    let Some(fx) = Fixture::start() else { return };
    // The cached policy (old id) names no MX of ours; DNS has a new id,
    // the server the new policy naming mx.newid.
    fx.seed("newid", "old0", &enforce("nowhere.example"), 60);
    let result = fx.deliver(&fx.sts(), "newid");
    assert!(result.all_delivered(), "{result:?}");
    assert_eq!(fx.fetches("newid"), 1);
    let entry = fx.cache().load(&fx.domain("newid")).unwrap();
    assert_eq!(entry.id, "newid1");
    assert!(
        entry
            .policy
            .allows_mx(&format!("mx.{}", fx.domain("newid")))
    );
}

#[test]
fn a_failed_fetch_keeps_enforcing_the_cached_policy() {
    let Some(fx) = Fixture::start() else { return };
    // A new id triggers a fetch; the server answers 503. The cached
    // enforce policy (no MX of ours) still applies: nothing is delivered.
    fx.seed("fetchfail", "old0", &enforce("nowhere.example"), 60);
    let sts = fx.sts();
    let lookup = runtime().block_on(sts.lookup(&fx.domain("fetchfail")));
    assert!(
        matches!(&lookup.source, PolicySource::CacheAfterFailedFetch(e) if matches!(**e, FetchError::Status { status: 503, .. })),
        "{lookup:?}"
    );
    let before = fx.ehlos();
    let result = fx.deliver(&sts, "fetchfail");
    assert!(
        matches!(error(&result), RelayError::StsNoMatchingMx { .. }),
        "{result:?}"
    );
    assert_eq!(fx.ehlos(), before);
    // The entry is kept as it was (still the old id, to be retried).
    assert_eq!(fx.cache().load(&fx.domain("fetchfail")).unwrap().id, "old0");

    // Past its max_age, a cached policy no longer applies: no policy.
    fx.seed("fetchfail", "old0", &enforce("nowhere.example"), 86_401);
    assert_delivered_without_policy(&fx, &fx.sts(), "fetchfail");
}

#[test]
fn after_a_restart_the_cached_policy_is_enforced_before_any_fetch() {
    let Some(mut fx) = Fixture::start() else {
        return;
    };
    assert!(fx.deliver(&fx.sts(), "restart").all_delivered());
    assert_eq!(fx.fetches("restart"), 1);
    // The policy host goes away; a new resolver (a restarted MTA) reads
    // the cache from disk and enforces it: verified TLS to the matching
    // MX, without a fetch.
    fx.nginx.take();
    let sts = fx.sts();
    assert!(sts.cached(&fx.domain("restart")).is_some());
    let result = fx.deliver(&sts, "restart");
    assert!(result.all_delivered(), "{result:?}");
    assert!(
        result.tls.as_ref().is_some_and(|t| t.verified),
        "{result:?}"
    );
    assert_eq!(fx.delivered("restart"), 2);
}

#[test]
fn redirects_other_media_types_and_large_bodies_are_refused() {
    let Some(fx) = Fixture::start() else { return };
    let fetch = |case: &str| runtime().block_on(fx.fetcher().fetch(&fx.domain(case)));
    assert!(fetch("good").is_ok());
    let e = fetch("redirect").unwrap_err();
    assert!(
        matches!(e, FetchError::Redirect { status: 301, .. }),
        "{e:?}"
    );
    let e = fetch("html").unwrap_err();
    assert!(
        matches!(&e, FetchError::ContentType { found: Some(t), .. } if t.starts_with("text/html")),
        "{e:?}"
    );
    let e = fetch("big").unwrap_err();
    assert!(matches!(e, FetchError::TooLarge { .. }), "{e:?}");
    // The redirect's target was never asked for by the redirect.
    assert_eq!(fx.fetches("good"), 1);
}

#[test]
fn a_policy_host_that_never_answers_times_out() {
    let rt = runtime();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts and holds the connection without a word.
        let held = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(socket);
        });
        let resolver: Arc<dyn Resolver> = Arc::new(
            StaticResolver::new().with_host("mta-sts.slow.example", ["127.0.0.1".parse().unwrap()]),
        );
        let pki = dev_pki(&["mta-sts.slow.example"]);
        let settings = FetchSettings::new(Anchors::from_pem(pki.ca_pem.as_bytes()).unwrap())
            .with_port(port)
            .with_timeout(Duration::from_millis(500));
        let fetcher = PolicyFetcher::new(settings, provider(), resolver).unwrap();
        let started = std::time::Instant::now();
        let e = fetcher.fetch("slow.example").await.unwrap_err();
        assert!(matches!(e, FetchError::Timeout { .. }), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
        held.abort();
    });
}

#[test]
fn a_domain_that_is_no_ascii_dns_name_is_refused_before_any_lookup() {
    // An empty resolver: a lookup would fail with NoSuchDomain instead.
    let resolver: Arc<dyn Resolver> = Arc::new(StaticResolver::new());
    let pki = dev_pki(&["mta-sts.example"]);
    let settings = FetchSettings::new(Anchors::from_pem(pki.ca_pem.as_bytes()).unwrap());
    let fetcher = PolicyFetcher::new(settings, provider(), resolver).unwrap();
    for domain in ["bücher.example", "bad_name..example"] {
        let e = runtime().block_on(fetcher.fetch(domain)).unwrap_err();
        assert!(
            matches!(e, FetchError::InvalidHost { .. }),
            "{domain}: {e:?}"
        );
    }
}
