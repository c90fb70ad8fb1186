//! Smart-host AUTH through the MTA's rules (`relay_auth`), against aiosmtpd
//! requiring AUTH after STARTTLS (the relay crate's `tests/peers/smtpd.py`):
//! PLAIN and LOGIN delivered; a 535 refusal bounces with 5.7.8; a 454
//! refusal defers with 4.7.0 (and the delay report says so); a smart host
//! without STARTTLS never gets the credentials or the mail, which defers
//! with 4.7.0 and bounces with it at expiry.
//!
//! Skipped loudly without aiosmtpd, failed when POSTERN_REQUIRE_PEERS=1.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::Aiosmtpd as Peer;
use postern_mta::outbound::{MtaRunner, RulesRouter};
use postern_proto::{Mailbox, ReversePath, TlsVersion};
use postern_queue::SpoolBounces;
use postern_queue::report::{ParsedReport, parse_report};
use postern_queue::runner::{Runner, RunnerSettings};
use postern_queue::{Envelope, LogStore, QueueId, RcptStatus, RecipientState, RetryPolicy};
use postern_relay::{StaticResolver, Timeouts};
use postern_rules::RuleSet;
use postern_testkit::free_port;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PASSWORD: &str = "s3cret-Pw";

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "postern-relayauth-{tag}-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A queue, the password file beside it (mode 0600) and a manual clock.
struct Setup {
    dir: PathBuf,
    spool: Arc<LogStore>,
    now: Arc<AtomicU64>,
}

impl Setup {
    fn new(tag: &str, password: &str) -> Setup {
        let dir = tempdir(tag);
        let pw = dir.join("smarthost.pw");
        std::fs::write(&pw, format!("{password}\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        Setup {
            spool: LogStore::open(&dir.join("queue")).unwrap(),
            dir,
            now: Arc::new(AtomicU64::new(postern_queue::unix_now())),
        }
    }

    /// The runner over a rule sending example.net to the peer with `tls`
    /// and the credentials; max age and delay warning as given.
    fn runner(&self, port: u16, tls: &str, max_age: u64, warn: u64) -> MtaRunner {
        let src = format!(
            r#"
[[rule]]
name = "via_provider"
conditions = [{{ relaying = true }}, {{ recipient_domain = {{ is = "example.net" }} }}]
actions = [
  {{ relay_host = "localhost:{port}" }},
  {{ relay_tls = "{tls}" }},
  {{ relay_auth = {{ user = "relay", password_file = "smarthost.pw" }} }},
]
"#
        );
        let mut router = RulesRouter::new(Arc::new(
            RuleSet::from_toml_str(&src, "test.rules.toml").unwrap(),
        ));
        router.base_dir = self.dir.clone();
        let mut s = RunnerSettings::new("mta.test");
        s.retry = RetryPolicy::new(
            Duration::from_secs(10),
            2.0,
            Duration::from_secs(20),
            Duration::from_secs(max_age),
        );
        s.timeouts = Timeouts::uniform(Duration::from_secs(10));
        s.delay_warning = Duration::from_secs(warn);
        let resolver = StaticResolver::new().with_host("localhost", [LOCALHOST]);
        let bounces =
            SpoolBounces::new(self.spool.clone(), "mta.test").local_domains(["local.test"]);
        let now = self.now.clone();
        Runner::new(self.spool.clone(), s, router, bounces)
            .with_resolver(Arc::new(resolver))
            .with_provider(Arc::new(postern_listener::default_provider()))
            .with_clock(Arc::new(move || now.load(Ordering::SeqCst)))
    }

    fn enqueue(&self) -> QueueId {
        let mailbox = |text: &str| Mailbox::parse(text).unwrap().into_owned();
        let id = self.spool.new_id();
        let mut w = self.spool.writer(&id).unwrap();
        w.write(b"From: alice@local.test\r\nTo: bob@example.net\r\nSubject: via provider\r\n\r\nHello.\r\n")
            .unwrap();
        let mut env = Envelope::new(
            id.clone(),
            ReversePath::Mailbox(mailbox("alice@local.test")),
        );
        env.arrival = self.now.load(Ordering::SeqCst);
        env.tls_version = Some(TlsVersion::Tls13);
        env.recipients
            .push(RecipientState::pending(mailbox("bob@example.net"), false));
        drop(w.commit(&env).wait().unwrap());
        id
    }

    fn later(&self, secs: u64) {
        self.now.fetch_add(secs, Ordering::SeqCst);
    }

    fn status(&self, id: &QueueId) -> RcptStatus {
        self.spool.load(id).unwrap().recipients[0].status.clone()
    }

    /// The one report queued to the (local) sender.
    fn only_dsn(&self) -> ParsedReport {
        let dsns: Vec<Envelope> = self
            .spool
            .list_all()
            .unwrap()
            .iter()
            .map(|id| self.spool.load(id).unwrap())
            .filter(|e| e.sender == ReversePath::Null)
            .collect();
        assert_eq!(dsns.len(), 1, "exactly one DSN expected: {dsns:#?}");
        parse_report(&self.spool.body(&dsns[0].id).unwrap()).unwrap()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn plain_and_login_to_a_smart_host_requiring_auth_over_starttls_deliver() {
    for mechanism in ["PLAIN", "LOGIN"] {
        let auth = format!("relay:{PASSWORD}");
        let Some(peer) = Peer::start("starttls", &["--auth", &auth, "--auth-only", mechanism])
        else {
            return;
        };
        let q = Setup::new("ok", PASSWORD);
        let id = q.enqueue();
        let report = q.runner(peer.port, "required", 3600, 0).run_once().await;
        assert_eq!(report.delivered, 1, "{mechanism}: {report:?}");
        let auth = peer.events("AUTH");
        assert_eq!(auth.len(), 1, "{auth:?}");
        assert!(
            auth[0].contains(&format!("\"mechanism\": \"{mechanism}\"")),
            "{auth:?}"
        );
        assert!(auth[0].contains("\"ok\": true"), "{auth:?}");
        assert!(
            !auth[0].contains("\"tls\": null"),
            "AUTH only after STARTTLS: {auth:?}"
        );
        let data = peer.events("DATA");
        assert_eq!(data.len(), 1);
        assert!(data[0].contains("\"auth\": true"), "{data:?}");
        assert!(q.spool.list_all().unwrap().iter().all(|q| *q != id));
    }
}

#[tokio::test]
async fn refused_credentials_bounce_with_5_7_8() {
    let auth = format!("relay:{PASSWORD}");
    let Some(peer) = Peer::start("starttls", &["--auth", &auth]) else {
        return;
    };
    let q = Setup::new("535", "not-the-password");
    let id = q.enqueue();
    let report = q.runner(peer.port, "required", 3600, 0).run_once().await;
    assert_eq!((report.failed, report.dsns), (1, 1), "{report:?}");
    assert!(
        peer.events("MAIL").is_empty(),
        "no MAIL after a failed AUTH"
    );
    assert!(q.spool.list_all().unwrap().iter().all(|q| *q != id));
    let dsn = q.only_dsn();
    assert_eq!(dsn.recipient_field(0, "action"), Some("failed"));
    assert_eq!(dsn.recipient_field(0, "status"), Some("5.7.8"));
    assert_eq!(
        dsn.recipient_field(0, "diagnostic-code"),
        Some("smtp; 535 5.7.8 Authentication credentials invalid")
    );
    assert!(!String::from_utf8_lossy(&dsn.returned).contains("not-the-password"));
}

#[tokio::test]
async fn a_temporary_auth_refusal_defers_with_4_7_0_and_the_delay_report_says_so() {
    let auth = format!("relay:{PASSWORD}");
    let refusal = "454 4.7.0 Temporary authentication failure";
    let Some(peer) = Peer::start("starttls", &["--auth", &auth, "--auth-refusal", refusal]) else {
        return;
    };
    let q = Setup::new("454", PASSWORD);
    let id = q.enqueue();
    let r = q.runner(peer.port, "required", 3600, 60);
    let report = r.run_once().await;
    assert_eq!((report.deferred, report.dsns), (1, 0), "{report:?}");
    match q.status(&id) {
        RcptStatus::Deferred(d) => {
            let reply = d.to_string();
            assert!(reply.starts_with(refusal), "{reply}")
        }
        other => panic!("not deferred: {other:?}"),
    }
    // Past the delay warning: still deferred, and one "delayed" report.
    q.later(60);
    let report = r.run_once().await;
    assert_eq!((report.deferred, report.dsns), (1, 1), "{report:?}");
    let dsn = q.only_dsn();
    assert_eq!(dsn.recipient_field(0, "action"), Some("delayed"));
    assert_eq!(dsn.recipient_field(0, "status"), Some("4.7.0"));
    assert_eq!(
        dsn.recipient_field(0, "diagnostic-code"),
        Some(format!("smtp; {refusal}").as_str())
    );
    assert!(dsn.recipient_field(0, "will-retry-until").is_some());
    assert!(peer.events("MAIL").is_empty());
}

#[tokio::test]
async fn a_smart_host_without_starttls_gets_no_credentials_and_the_mail_defers_then_bounces() {
    let auth = format!("relay:{PASSWORD}");
    let Some(peer) = Peer::start("plain", &["--auth", &auth]) else {
        return;
    };
    let q = Setup::new("plain", PASSWORD);
    let id = q.enqueue();
    // Opportunistic TLS would go on in plaintext, but not with credentials.
    let r = q.runner(peer.port, "opportunistic", 60, 0);
    let report = r.run_once().await;
    assert_eq!(report.deferred, 1, "{report:?}");
    match q.status(&id) {
        RcptStatus::Deferred(d) => {
            let reply = d.to_string();
            assert!(reply.starts_with("4.7.0 "), "{reply}")
        }
        other => panic!("not deferred: {other:?}"),
    }
    assert!(!peer.events("EHLO").is_empty(), "the runner did connect");
    q.later(61);
    let report = r.run_once().await;
    assert_eq!((report.failed, report.dsns), (1, 1), "{report:?}");
    assert!(peer.events("AUTH").is_empty(), "no AUTH in plaintext");
    assert!(peer.events("MAIL").is_empty(), "no MAIL either");
    let dsn = q.only_dsn();
    assert_eq!(dsn.recipient_field(0, "action"), Some("failed"));
    assert_eq!(dsn.recipient_field(0, "status"), Some("4.7.0"));
    let diag = dsn.recipient_field(0, "diagnostic-code").unwrap();
    assert!(diag.starts_with("X-Postern; "), "{diag}");
    assert!(!diag.contains(PASSWORD));
}
