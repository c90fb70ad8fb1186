//! The outbound queue runner against real receiving peers on loopback:
//! aiosmtpd with STARTTLS (and without), driven through the rules'
//! smart-host route with TLS required and versions pinned, the default MX
//! route, permanent and transient failures, expiry, DSNs and restarts.
//!
//! Each test starts with `python_with("aiosmtpd")`: skipped loudly when the
//! peer is missing, failed when POSTERN_REQUIRE_PEERS=1. Everything binds
//! 127.0.0.1 on ports from `free_port()`; every wait is bounded.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use postern_mta::outbound::{MtaRunner, RulesRouter};
use postern_proto::{Mailbox, Notify, Orcpt, Ret, ReversePath, TlsVersion};
use postern_queue::log::{MessageKey, Record, RecordKind};
use postern_queue::report::parse_report;
use postern_queue::runner::{Clock, PassReport, Runner, RunnerSettings};
use postern_queue::{Envelope, LogStore, QueueId, RcptStatus, RecipientState};
use postern_queue::{RetryPolicy, SpoolBounces, Store as _};
use postern_relay::{StaticResolver, Timeouts};
use postern_rules::RuleSet;
use postern_testkit::{ChildGuard, dev_pki, free_port, python_with, wait_for_port, write_pki};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// aiosmtpd with STARTTLS optional, TLS version pinning, a line log, and
/// scripted refusals: RCPT to an address containing `reject` gets
/// `550 5.1.1`, one containing `later` gets `451 4.3.0`; the reply to the
/// end of data is `554 5.6.0` when a recipient contains `datafail`,
/// `451 4.3.0` when one contains `tempdata`.
const SMTPD: &str = r#"
import argparse, asyncio, json, ssl
from aiosmtpd.smtp import SMTP

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--mode", choices=["plain", "starttls"], default="plain")
p.add_argument("--cert"); p.add_argument("--key")
p.add_argument("--tls", choices=["any", "1.2", "1.3"], default="any")
p.add_argument("--log", required=True)
args = p.parse_args()

def log(event, tls, frm="", to=(), content=""):
    # One line per event, tab-separated: event, TLS version or -, from,
    # comma-separated recipients, the content JSON-escaped (no tabs or
    # line breaks survive).
    with open(args.log, "a", encoding="utf-8") as f:
        f.write("\t".join([event, tls or "-", frm, ",".join(to), json.dumps(content)]) + "\n")

def tls_version(server):
    obj = server.transport.get_extra_info("ssl_object") if server.transport else None
    return obj.version() if obj else None

class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        log("EHLO", tls_version(server))
        session.host_name = hostname
        return responses
    async def handle_MAIL(self, server, session, envelope, address, options):
        log("MAIL", tls_version(server), address)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"
    async def handle_RCPT(self, server, session, envelope, address, options):
        log("RCPT", tls_version(server), "", [address])
        if "reject" in address:
            return "550 5.1.1 <%s>: no such user here" % address
        if "later" in address:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        content = envelope.content
        if isinstance(content, bytes):
            content = content.decode("utf-8", "replace")
        log("DATA", tls_version(server), envelope.mail_from, envelope.rcpt_tos, content)
        if any("datafail" in r for r in envelope.rcpt_tos):
            return "554 5.6.0 content refused"
        if any("tempdata" in r for r in envelope.rcpt_tos):
            return "451 4.3.0 queue full, try later"
        return "250 2.0.0 queued as 42"

def context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.tls == "1.2":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif args.tls == "1.3":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    return ctx

async def main():
    kw = {"hostname": "peer.test"}
    if args.mode == "starttls":
        kw["tls_context"] = context()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Handler(), **kw), "127.0.0.1", args.port)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"#;

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "postern-outbound-{tag}-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Peer {
    _child: ChildGuard,
    port: u16,
    log: PathBuf,
    /// Holds `ca.pem`, the CA that issued the peer's certificate.
    dir: PathBuf,
}

impl Peer {
    /// `mode`: plain or starttls; `tls`: any, 1.2 or 1.3. `port`: a port to
    /// use (for restarts), or a fresh one.
    fn start(mode: &str, tls: &str, port: Option<u16>) -> Option<Peer> {
        let python = python_with("aiosmtpd")?;
        let dir = tempdir("peer");
        let pki = dev_pki(&["localhost"]);
        write_pki(&pki, &dir).unwrap();
        let script = dir.join("smtpd.py");
        std::fs::write(&script, SMTPD).unwrap();
        let port = port.unwrap_or_else(free_port);
        let log = dir.join("log.jsonl");
        let child = ChildGuard::spawn(
            Command::new(python)
                .arg(&script)
                .args(["--port", &port.to_string(), "--mode", mode, "--tls", tls])
                .arg("--cert")
                .arg(dir.join("cert.pem"))
                .arg("--key")
                .arg(dir.join("key.pem"))
                .arg("--log")
                .arg(&log)
                .stdin(Stdio::null())
                // Failed handshakes are expected in some tests; keep their
                // tracebacks out of the test output.
                .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap()),
        );
        assert!(
            wait_for_port(SocketAddr::new(LOCALHOST, port), Duration::from_secs(15)),
            "aiosmtpd did not start on port {port}"
        );
        Some(Peer {
            _child: child,
            port,
            log,
            dir,
        })
    }

    fn events(&self, kind: &str) -> Vec<Event> {
        read_events(&self.log, kind)
    }
}

/// One line of the peer's log.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Event {
    /// The negotiated TLS version (`TLSv1.2`), or `None` in plaintext.
    tls: Option<String>,
    from: String,
    to: Vec<String>,
    /// JSON-escaped content (plain ASCII text reads as itself).
    content: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self._child.0.kill();
        let _ = self._child.0.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_events(log: &Path, kind: &str) -> Vec<Event> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 5 && f[0] == kind).then(|| Event {
                tls: (f[1] != "-").then(|| f[1].to_owned()),
                from: f[2].to_owned(),
                to: f[3]
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
                content: f[4].to_owned(),
            })
        })
        .collect()
}

/// The guide's smart-host rule: mail for example.net goes to the peer only,
/// over STARTTLS, TLS 1.2 only.
fn smart_host_rules(port: u16, tls: &str) -> Arc<RuleSet> {
    let src = format!(
        r#"
[[rule]]
name = "example_net_via_smart_host_tls12_only"
conditions = [{{ relaying = true }}, {{ recipient_domain = {{ is = "example.net" }} }}]
actions = [
  {{ relay_host = "localhost:{port}" }},
  {{ relay_tls = "{tls}" }},
  {{ relay_tls_versions = ["TLSv1.2"] }},
]
"#
    );
    Arc::new(RuleSet::from_toml_str(&src, "test.rules.toml").unwrap())
}

/// One rule for example.net: the smart host, then the given actions.
fn rules_with(port: u16, actions: &str) -> Arc<RuleSet> {
    let src = format!(
        r#"
[[rule]]
name = "example_net"
conditions = [{{ relaying = true }}, {{ recipient_domain = {{ is = "example.net" }} }}]
actions = [{{ relay_host = "localhost:{port}" }}, {actions}]
"#
    );
    Arc::new(RuleSet::from_toml_str(&src, "test.rules.toml").unwrap())
}

fn status_of(spool: &Arc<LogStore>, id: &QueueId, i: usize) -> RcptStatus {
    spool.load(id).unwrap().recipients[i].status.clone()
}

/// A manual clock starting at the real time.
fn manual_clock() -> (Clock, Arc<AtomicU64>) {
    let now = Arc::new(AtomicU64::new(postern_queue::unix_now()));
    let c = now.clone();
    (Arc::new(move || c.load(Ordering::SeqCst)), now)
}

/// The runner's settings and the MTA's router over the test's rules.
struct Settings {
    runner: RunnerSettings,
    router: RulesRouter,
}

fn settings(rules: Arc<RuleSet>, max_age: Duration) -> Settings {
    let mut s = RunnerSettings::new("mta.test");
    s.retry = RetryPolicy::new(
        Duration::from_secs(10),
        2.0,
        Duration::from_secs(20),
        max_age,
    );
    s.scan_interval = Duration::from_millis(100);
    s.timeouts = Timeouts::uniform(Duration::from_secs(10));
    s.shutdown_grace = Duration::from_secs(5);
    Settings {
        runner: s,
        router: RulesRouter::new(rules),
    }
}

fn runner(spool: &Arc<LogStore>, settings: Settings, clock: Clock) -> MtaRunner {
    let resolver = StaticResolver::new()
        .with_host("localhost", [LOCALHOST])
        .with_mx("example.org", [(10, "mx.example.org")])
        .with_mx("example.com", [(10, "mx.example.org")])
        .with_host("mx.example.org", [LOCALHOST]);
    let bounces = SpoolBounces::new(spool.clone(), "mta.test").local_domains(["local.test"]);
    Runner::new(spool.clone(), settings.runner, settings.router, bounces)
        .with_resolver(Arc::new(resolver))
        .with_provider(Arc::new(postern_listener::default_provider()))
        .with_clock(clock)
}

const BODY: &str = "From: alice@local.test\r\nTo: bob@example.net\r\nSubject: outbound test\r\nMessage-ID: <t1@local.test>\r\n\r\nHello over the relay.\r\n";

/// A mailbox from text known to parse.
fn mailbox(text: &str) -> Mailbox<'static> {
    Mailbox::parse(text).unwrap().into_owned()
}

/// `""` as the null sender, anything else as a sender mailbox.
fn sender(text: &str) -> ReversePath<'static> {
    if text.is_empty() {
        ReversePath::Null
    } else {
        ReversePath::Mailbox(mailbox(text))
    }
}

/// Queues a message the way the inbound server does.
fn enqueue(spool: &Arc<LogStore>, from: &str, recipients: &[(&str, bool)]) -> QueueId {
    let id = spool.new_id();
    let mut w = spool.writer(&id).unwrap();
    w.write(BODY.as_bytes()).unwrap();
    let mut env = Envelope::new(id.clone(), sender(from));
    env.tls_version = Some(TlsVersion::Tls13);
    env.listener = Some("mta".into());
    for (addr, local) in recipients {
        env.recipients
            .push(RecipientState::pending(mailbox(addr), *local));
    }
    drop(w.commit(&env).wait().unwrap());
    id
}

/// Every committed message, with its envelope.
fn queued(spool: &Arc<LogStore>) -> Vec<Envelope> {
    spool
        .list_all()
        .unwrap()
        .iter()
        .map(|id| spool.load(id).unwrap())
        .collect()
}

fn only_dsn(spool: &Arc<LogStore>) -> (Envelope, Vec<u8>) {
    let dsns: Vec<Envelope> = queued(spool)
        .into_iter()
        .filter(|e| e.sender == ReversePath::Null)
        .collect();
    assert_eq!(dsns.len(), 1, "exactly one DSN expected: {dsns:#?}");
    let body = spool.body(&dsns[0].id).unwrap();
    (dsns[0].clone(), body)
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("postern_mta=info,postern_relay=info")
        .with_test_writer()
        .try_init();
}

#[tokio::test]
async fn relays_through_the_smart_host_over_required_pinned_tls() {
    init_logs();
    let Some(peer) = Peer::start("starttls", "any", None) else {
        return;
    };
    let dir = tempdir("deliver");
    let spool = LogStore::open(&dir).unwrap();
    let id = enqueue(
        &spool,
        "alice@local.test",
        &[("bob@example.net", false), ("carol@local.test", true)],
    );
    let (clock, _) = manual_clock();
    let r = runner(
        &spool,
        settings(
            smart_host_rules(peer.port, "required"),
            Duration::from_secs(3600),
        ),
        clock,
    );
    let report = r.run_once().await;
    assert_eq!(report.delivered, 1, "{report:?}");
    assert_eq!((report.deferred, report.failed, report.dsns), (0, 0, 0));

    // The peer got it over TLS 1.2 (the peer allows 1.3: the pin held).
    let data = peer.events("DATA");
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].tls.as_deref(), Some("TLSv1.2"));
    assert_eq!(data[0].from, "alice@local.test");
    assert_eq!(data[0].to, ["bob@example.net"]);
    assert!(data[0].content.contains("Subject: outbound test"));
    // MAIL only after TLS; EHLO before and after the handshake.
    let mail = peer.events("MAIL");
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].tls.as_deref(), Some("TLSv1.2"));
    let ehlo = peer.events("EHLO");
    assert_eq!(ehlo.len(), 2);
    assert_eq!(ehlo[0].tls, None);

    // The local recipient is left to local delivery; the remote one is
    // recorded as delivered with the peer's reply.
    let env = spool.load(&id).unwrap();
    match &env.recipients[0].status {
        RcptStatus::Delivered(d) => {
            let reply = d.to_string();
            assert!(reply.starts_with("250 2.0.0 queued as 42"), "{reply}");
            assert!(reply.contains("localhost[127.0.0.1]"), "{reply}");
        }
        other => panic!("not delivered: {other:?}"),
    }
    assert_eq!(env.recipients[1].status, RcptStatus::Pending);
    assert_eq!(env.attempts, 1);

    // Nothing more to do: a second pass sends nothing.
    let again = r.run_once().await;
    assert_eq!(again, PassReport::default());
    assert_eq!(peer.events("DATA").len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_peer_without_starttls_never_gets_the_message_and_it_bounces_at_expiry() {
    init_logs();
    let Some(peer) = Peer::start("plain", "any", None) else {
        return;
    };
    let dir = tempdir("notls");
    let spool = LogStore::open(&dir).unwrap();
    let id = enqueue(&spool, "alice@local.test", &[("bob@example.net", false)]);
    let (clock, now) = manual_clock();
    let max_age = Duration::from_secs(60);
    let r = runner(
        &spool,
        settings(smart_host_rules(peer.port, "required"), max_age),
        clock,
    );

    // First attempt: deferred, nothing sent.
    let report = r.run_once().await;
    assert_eq!(
        (report.delivered, report.deferred, report.failed),
        (0, 1, 0)
    );
    let env = spool.load(&id).unwrap();
    match &env.recipients[0].status {
        RcptStatus::Deferred(d) => {
            let reply = d.to_string();
            assert!(reply.starts_with("4.7.4 "), "{reply}")
        }
        other => panic!("not deferred: {other:?}"),
    }
    let t0 = now.load(Ordering::SeqCst);
    assert_eq!(env.next_attempt, t0 + 10, "first backoff step");
    assert!(!peer.events("EHLO").is_empty(), "the runner did connect");

    // Not due yet: nothing happens.
    assert_eq!(r.run_once().await, PassReport::default());

    // Due again: still deferred, the next delay doubles.
    now.store(t0 + 10, Ordering::SeqCst);
    let report = r.run_once().await;
    assert_eq!(report.deferred, 1, "{report:?}");
    let env = spool.load(&id).unwrap();
    assert_eq!(env.attempts, 2);
    assert_eq!(env.next_attempt, t0 + 10 + 20);

    // Past the maximum age: the last attempt fails, the message bounces.
    now.store(env.arrival + 61, Ordering::SeqCst);
    let report = r.run_once().await;
    assert_eq!((report.failed, report.dsns), (1, 1), "{report:?}");
    assert!(
        spool.list_all().unwrap().iter().all(|q| *q != id),
        "the original is removed once every recipient is decided"
    );
    assert!(
        peer.events("MAIL").is_empty(),
        "no MAIL ever reached the peer"
    );
    assert!(peer.events("DATA").is_empty());

    let (dsn_env, body) = only_dsn(&spool);
    assert_eq!(
        dsn_env.sender,
        ReversePath::Null,
        "a DSN has the null sender"
    );
    assert_eq!(dsn_env.recipients.len(), 1);
    assert_eq!(dsn_env.recipients[0].address, mailbox("alice@local.test"));
    assert!(dsn_env.recipients[0].local, "the sender's domain is local");
    let report = parse_report(&body).unwrap();
    assert_eq!(report.header("to"), Some("<alice@local.test>"));
    assert_eq!(report.message_field("reporting-mta"), Some("dns; mta.test"));
    assert_eq!(
        report.message_field("x-postern-queue-id"),
        Some(id.as_str())
    );
    assert!(report.message_field("arrival-date").is_some());
    assert_eq!(
        report.recipient_field(0, "final-recipient"),
        Some("rfc822; bob@example.net")
    );
    assert_eq!(report.recipient_field(0, "action"), Some("failed"));
    assert_eq!(report.recipient_field(0, "status"), Some("4.7.4"));
    assert_eq!(
        report.recipient_field(0, "remote-mta"),
        Some("dns; localhost")
    );
    let diag = report.recipient_field(0, "diagnostic-code").unwrap();
    assert!(diag.starts_with("X-Postern; policy requires TLS"), "{diag}");
    assert!(
        report
            .human
            .contains("for 1 minute without being delivered"),
        "{}",
        report.human
    );
    assert_eq!(report.part_types[2], "text/rfc822-headers");
    assert!(String::from_utf8_lossy(&report.returned).contains("Subject: outbound test"));
    assert!(!String::from_utf8_lossy(&report.returned).contains("Hello over the relay"));

    // The DSN is for local delivery; the runner leaves it alone.
    assert_eq!(r.run_once().await.messages, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_permanent_refusal_bounces_at_once_with_the_peers_reply() {
    init_logs();
    let Some(peer) = Peer::start("starttls", "any", None) else {
        return;
    };
    let dir = tempdir("reject");
    let spool = LogStore::open(&dir).unwrap();
    let id = spool.new_id();
    let mut w = spool.writer(&id).unwrap();
    w.write(BODY.as_bytes()).unwrap();
    let mut env = Envelope::new(id.clone(), sender("alice@remote.example"));
    env.params.ret = Some(Ret::Full);
    env.params.envid = Some("envid-7".into());
    env.recipients = vec![
        RecipientState::pending(mailbox("bob@example.net"), false),
        RecipientState::pending(mailbox("reject-me@example.net"), false),
        RecipientState::pending(mailbox("later@example.net"), false),
    ];
    env.recipients[1].orcpt = Some(Orcpt {
        addr_type: "rfc822".into(),
        address: "Reject-Me@Example.NET".into(),
    });
    drop(w.commit(&env).wait().unwrap());

    let (clock, _) = manual_clock();
    let r = runner(
        &spool,
        settings(
            smart_host_rules(peer.port, "required"),
            Duration::from_secs(3600),
        ),
        clock,
    );
    let report = r.run_once().await;
    assert_eq!(
        (
            report.delivered,
            report.deferred,
            report.failed,
            report.dsns
        ),
        (1, 1, 1, 1),
        "{report:?}"
    );
    let data = peer.events("DATA");
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].to, ["bob@example.net"]);

    let env = spool.load(&id).unwrap();
    assert!(matches!(env.recipients[0].status, RcptStatus::Delivered(_)));
    match &env.recipients[1].status {
        RcptStatus::Failed(d) => {
            let reply = d.to_string();
            assert!(reply.starts_with("550 5.1.1"), "{reply}")
        }
        other => panic!("not failed: {other:?}"),
    }
    assert!(matches!(env.recipients[2].status, RcptStatus::Deferred(_)));

    let (dsn_env, body) = only_dsn(&spool);
    assert_eq!(
        dsn_env.recipients[0].address,
        mailbox("alice@remote.example")
    );
    assert!(
        !dsn_env.recipients[0].local,
        "remote sender: relayed by the runner"
    );
    let report = parse_report(&body).unwrap();
    assert_eq!(report.recipients.len(), 1, "only the failed recipient");
    assert_eq!(
        report.message_field("original-envelope-id"),
        Some("envid-7")
    );
    assert_eq!(
        report.recipient_field(0, "final-recipient"),
        Some("rfc822; reject-me@example.net")
    );
    assert_eq!(
        report.recipient_field(0, "original-recipient"),
        Some("rfc822; Reject-Me@Example.NET")
    );
    assert_eq!(report.recipient_field(0, "status"), Some("5.1.1"));
    assert_eq!(
        report.recipient_field(0, "remote-mta"),
        Some("dns; localhost")
    );
    assert_eq!(
        report.recipient_field(0, "diagnostic-code"),
        Some("smtp; 550 5.1.1 <reject-me@example.net>: no such user here")
    );
    // RET=FULL: the whole message comes back.
    assert_eq!(report.part_types[2], "message/rfc822");
    assert!(String::from_utf8_lossy(&report.returned).contains("Hello over the relay"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_null_sender_never_gets_a_dsn() {
    init_logs();
    let Some(peer) = Peer::start("starttls", "any", None) else {
        return;
    };
    let dir = tempdir("null");
    let spool = LogStore::open(&dir).unwrap();
    let id = enqueue(&spool, "", &[("reject-me@example.net", false)]);
    let (clock, _) = manual_clock();
    let r = runner(
        &spool,
        settings(
            smart_host_rules(peer.port, "required"),
            Duration::from_secs(3600),
        ),
        clock,
    );
    let report = r.run_once().await;
    assert_eq!(
        (report.failed, report.dsns, report.removed),
        (1, 0, 1),
        "{report:?}"
    );
    assert_eq!(peer.events("MAIL")[0].from, "<>");
    assert!(
        spool.list_all().unwrap().is_empty(),
        "no DSN, original removed"
    );
    let _ = id;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_new_runner_on_the_same_spool_continues_after_a_restart() {
    init_logs();
    if python_with("aiosmtpd").is_none() {
        return;
    }
    // Nobody listens yet: the first runner defers.
    let port = free_port();
    let dir = tempdir("restart");
    let (clock, now) = manual_clock();
    let id = {
        let spool = LogStore::open(&dir).unwrap();
        let id = enqueue(&spool, "alice@local.test", &[("bob@example.net", false)]);
        let r = runner(
            &spool,
            settings(
                smart_host_rules(port, "required"),
                Duration::from_secs(3600),
            ),
            clock.clone(),
        );
        let report = r.run_once().await;
        assert_eq!(report.deferred, 1, "{report:?}");
        id
    };
    // "Restart": a new spool handle and a new runner; the peer is up now.
    let peer = Peer::start("starttls", "any", Some(port)).unwrap();
    let spool = LogStore::open(&dir).unwrap();
    let env = spool.load(&id).unwrap();
    assert_eq!(env.attempts, 1);
    now.store(env.next_attempt, Ordering::SeqCst);
    let r = runner(
        &spool,
        settings(
            smart_host_rules(port, "required"),
            Duration::from_secs(3600),
        ),
        clock,
    );
    let report = r.run_once().await;
    assert_eq!(report.delivered, 1, "{report:?}");
    assert_eq!(report.removed, 1);
    assert_eq!(peer.events("DATA").len(), 1);
    assert!(spool.list_all().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_default_route_uses_mx_hosts_and_opportunistic_starttls() {
    init_logs();
    let Some(peer) = Peer::start("starttls", "1.3", None) else {
        return;
    };
    let dir = tempdir("mx");
    let spool = LogStore::open(&dir).unwrap();
    enqueue(&spool, "alice@local.test", &[("dave@example.org", false)]);
    let (clock, _) = manual_clock();
    // Only the smart-host rule for example.net; example.org takes the default.
    let mut s = settings(smart_host_rules(1, "required"), Duration::from_secs(3600));
    s.router.mx_port = peer.port;
    // TLS-RPT: the runner hands the session to its observers.
    let recorder =
        Arc::new(postern_queue::tlsrpt::TlsRptRecorder::open(dir.join("tlsrpt")).unwrap());
    let r = runner(&spool, s, clock).with_observer(recorder.clone());
    let report = r.run_once().await;
    assert_eq!(report.delivered, 1, "{report:?}");
    let data = peer.events("DATA");
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].tls.as_deref(), Some("TLSv1.3"));
    assert_eq!(data[0].to, ["dave@example.org"]);
    // A TLS-RPT report to the same domain goes, and its session is not
    // counted in the next report (RFC 8460 §3).
    let id = spool.new_id();
    let mut env = Envelope::new(id.clone(), sender("tlsrpt-noreply@local.test"));
    env.recipients.push(RecipientState::pending(
        mailbox("tlsrpt@example.org"),
        false,
    ));
    let mail = "From: <tlsrpt-noreply@local.test>\r\nTo: <tlsrpt@example.org>\r\nTLS-Report-Domain: example.org\r\nTLS-Required: No\r\n\r\nreport\r\n";
    spool.put(&env, mail.as_bytes()).unwrap();
    assert_eq!(r.run_once().await.delivered, 1);
    assert_eq!(peer.events("DATA").len(), 2, "the report went");
    let (day, log) = recorder.pending();
    let settings = postern_queue::tlsrpt::ReportSettings::new("mta.test").unwrap();
    let r = settings.report(&log, "example.org", day).expect("recorded");
    assert_eq!(r.totals(), (1, 0), "one successful session");
    assert!(
        r.to_json().contains("\"no-policy-found\""),
        "{}",
        r.to_json()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn run_delivers_in_the_background_and_stops_on_shutdown() {
    init_logs();
    let Some(peer) = Peer::start("starttls", "any", None) else {
        return;
    };
    let dir = tempdir("run");
    let spool = LogStore::open(&dir).unwrap();
    let r = runner(
        &spool,
        settings(
            smart_host_rules(peer.port, "required"),
            Duration::from_secs(3600),
        ),
        postern_queue::runner::system_clock(),
    );
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(r.run(rx));
    enqueue(&spool, "alice@local.test", &[("bob@example.net", false)]);
    enqueue(&spool, "alice@local.test", &[("erin@example.net", false)]);
    let mut delivered = false;
    for _ in 0..100 {
        if spool.list_all().unwrap().is_empty() {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered, "the background runner delivered within 10 s");
    assert_eq!(peer.events("DATA").len(), 2);
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the runner stops after shutdown")
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn spawn_runs_from_the_mta_config_and_stops_on_shutdown() {
    init_logs();
    let Some(peer) = Peer::start("starttls", "any", None) else {
        return;
    };
    let dir = tempdir("spawn");
    let src = format!(
        r#"
[server]
hostname = "mta.test"
data_dir = "{data}"

[[domain]]
name = "local.test"

# Not started here: only the runner runs.
[[listener]]
name = "mta"
address = "127.0.0.1:{listen}"
mode = "plain"

[queue]
max_age = "1h"
retry_initial = "1s"
scan_interval = "1s"

[[rule]]
name = "example_net_via_smart_host"
conditions = [{{ relaying = true }}, {{ recipient_domain = {{ is = "example.net" }} }}]
actions = [
  {{ relay_host = "127.0.0.1:{port}" }},
  {{ relay_tls = "required" }},
  {{ relay_tls_versions = ["TLSv1.2"] }},
]
"#,
        data = dir.display(),
        port = peer.port,
        listen = free_port(),
    );
    let config = postern_mta::config::MtaConfig::from_toml_str(&src, "test.toml", &dir).unwrap();
    let spool = LogStore::open(&config.queue_dir()).unwrap();
    enqueue(&spool, "alice@local.test", &[("bob@example.net", false)]);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let (task, _runner) = postern_mta::outbound::spawn(spool.clone(), Arc::new(config), rx, None);
    let mut delivered = false;
    for _ in 0..100 {
        if spool.list_all().unwrap().is_empty() {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered, "spawned runner delivered within 10 s");
    let data = peer.events("DATA");
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].tls.as_deref(), Some("TLSv1.2"));
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the runner stops after shutdown")
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server on 127.0.0.1 that accepts (up to 8 connections, held open)
/// and never greets: its port, and how many connections it accepted.
fn tarpit() -> (u16, Arc<AtomicU64>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicU64::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().take(8).flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn shutdown_abandons_a_stuck_delivery_and_keeps_the_message() {
    init_logs();
    // A server that accepts and never greets: the delivery hangs.
    let (port, accepted) = tarpit();
    let dir = tempdir("stuck");
    let spool = LogStore::open(&dir).unwrap();
    let id = enqueue(&spool, "alice@local.test", &[("bob@example.net", false)]);
    let mut s = settings(
        smart_host_rules(port, "required"),
        Duration::from_secs(3600),
    );
    s.runner.timeouts = Timeouts::uniform(Duration::from_secs(60));
    s.runner.shutdown_grace = Duration::from_millis(500);
    let r = runner(&spool, s, postern_queue::runner::system_clock());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(r.run(rx));
    for _ in 0..100 {
        if accepted.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(accepted.load(Ordering::SeqCst) > 0, "the runner connected");
    let started = std::time::Instant::now();
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the runner stops after the grace period")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    // Nothing was decided: the message is intact and will be retried.
    let env = spool.load(&id).unwrap();
    assert_eq!(env.recipients[0].status, RcptStatus::Pending);
    assert_eq!(env.attempts, 0);
    assert!(spool.body(&id).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn verified_tls_with_the_rules_trust_anchors_delivers_and_a_foreign_ca_defers() {
    init_logs();
    let Some(peer) = Peer::start("starttls", "any", None) else {
        return;
    };
    let dir = tempdir("verified");
    let spool = LogStore::open(&dir).unwrap();
    // Anchors are named relative to the configuration's directory.
    let other = dev_pki(&["localhost"]);
    std::fs::write(dir.join("other-ca.pem"), &other.ca_pem).unwrap();
    std::fs::copy(peer.dir.join("ca.pem"), dir.join("peer-ca.pem")).unwrap();
    let (clock, _) = manual_clock();
    let run = |anchors: &str| {
        let rules = rules_with(
            peer.port,
            &format!(r#"{{ relay_tls = "verified" }}, {{ relay_trust_anchors = ["{anchors}"] }}"#),
        );
        let mut s = settings(rules, Duration::from_secs(3600));
        s.router.base_dir = dir.clone();
        runner(&spool, s, clock.clone())
    };

    // A CA that did not issue the peer's certificate: deferred, nothing sent.
    let id = enqueue(&spool, "alice@local.test", &[("bob@example.net", false)]);
    let report = run("other-ca.pem").run_once().await;
    assert_eq!(report.deferred, 1, "{report:?}");
    match status_of(&spool, &id, 0) {
        RcptStatus::Deferred(d) => {
            let reply = d.to_string();
            assert!(reply.starts_with("4.7.5 "), "{reply}")
        }
        other => panic!("{other:?}"),
    }
    assert!(peer.events("MAIL").is_empty());

    // A missing anchors file: deferred before any connection.
    let mut env = spool.load(&id).unwrap();
    env.next_attempt = 0;
    spool.update(&id, &env).unwrap();
    let ehlos = peer.events("EHLO").len();
    let report = run("missing.pem").run_once().await;
    assert_eq!(report.deferred, 1, "{report:?}");
    match status_of(&spool, &id, 0) {
        RcptStatus::Deferred(d) => {
            let reply = d.to_string();
            assert!(
                reply.starts_with("4.3.5 cannot read trust anchors"),
                "{reply}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(peer.events("EHLO").len(), ehlos, "no connection was made");

    // The right CA: delivered, and the log says verified.
    let mut env = spool.load(&id).unwrap();
    env.next_attempt = 0;
    spool.update(&id, &env).unwrap();
    let report = run("peer-ca.pem").run_once().await;
    assert_eq!((report.delivered, report.removed), (1, 1), "{report:?}");
    assert_eq!(peer.events("DATA").len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_version_outside_the_policy_is_never_negotiated() {
    init_logs();
    // The peer speaks only TLS 1.3; the rule allows only TLS 1.2.
    let Some(peer) = Peer::start("starttls", "1.3", None) else {
        return;
    };
    let dir = tempdir("pin");
    let spool = LogStore::open(&dir).unwrap();
    let id = enqueue(&spool, "alice@local.test", &[("bob@example.net", false)]);
    let (clock, _) = manual_clock();
    let r = runner(
        &spool,
        settings(
            smart_host_rules(peer.port, "required"),
            Duration::from_secs(3600),
        ),
        clock,
    );
    let report = r.run_once().await;
    assert_eq!(report.deferred, 1, "{report:?}");
    match status_of(&spool, &id, 0) {
        RcptStatus::Deferred(d) => {
            let reply = d.to_string();
            assert!(reply.starts_with("4.7.5 TLS handshake failed"), "{reply}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        peer.events("MAIL").is_empty(),
        "no MAIL over another version or in plaintext"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn versions_rustls_cannot_speak_defer_without_connecting() {
    init_logs();
    let Some(peer) = Peer::start("starttls", "any", None) else {
        return;
    };
    let dir = tempdir("tls11");
    let spool = LogStore::open(&dir).unwrap();
    let id = enqueue(&spool, "alice@local.test", &[("bob@example.net", false)]);
    let (clock, _) = manual_clock();
    let rules = rules_with(
        peer.port,
        r#"{ relay_tls = "required" }, { relay_tls_versions = ["TLSv1.1"] }"#,
    );
    let report = runner(&spool, settings(rules, Duration::from_secs(3600)), clock)
        .run_once()
        .await;
    assert_eq!(report.deferred, 1, "{report:?}");
    match status_of(&spool, &id, 0) {
        RcptStatus::Deferred(d) => {
            let reply = d.to_string();
            assert!(reply.starts_with("4.7.5 no usable TLS version"), "{reply}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        peer.events("EHLO").is_empty(),
        "never widened, never connected"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn messages_for_one_route_share_one_connection() {
    init_logs();
    let Some(peer) = Peer::start("starttls", "any", None) else {
        return;
    };
    let dir = tempdir("batch");
    let spool = LogStore::open(&dir).unwrap();
    for n in 0..3 {
        enqueue(
            &spool,
            "alice@local.test",
            &[(&format!("user{n}@example.net"), false)],
        );
    }
    let (clock, _) = manual_clock();
    let report = runner(
        &spool,
        settings(
            smart_host_rules(peer.port, "required"),
            Duration::from_secs(3600),
        ),
        clock,
    )
    .run_once()
    .await;
    assert_eq!(
        (report.messages, report.delivered, report.removed),
        (3, 3, 3),
        "{report:?}"
    );
    assert_eq!(peer.events("DATA").len(), 3);
    // One connection: one EHLO before STARTTLS and one after.
    assert_eq!(peer.events("EHLO").len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_dsn_to_a_remote_sender_is_relayed_with_the_null_sender() {
    init_logs();
    let Some(peer) = Peer::start("starttls", "any", None) else {
        return;
    };
    let dir = tempdir("dsnrelay");
    let spool = LogStore::open(&dir).unwrap();
    enqueue(
        &spool,
        "alice@example.net",
        &[("reject-me@example.net", false)],
    );
    let (clock, _) = manual_clock();
    let r = runner(
        &spool,
        settings(
            smart_host_rules(peer.port, "required"),
            Duration::from_secs(3600),
        ),
        clock,
    );
    let first = r.run_once().await;
    assert_eq!((first.failed, first.dsns), (1, 1), "{first:?}");
    let second = r.run_once().await;
    assert_eq!((second.delivered, second.removed), (1, 1), "{second:?}");
    assert!(spool.list_all().unwrap().is_empty());
    let data = peer.events("DATA");
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].from, "<>");
    assert_eq!(data[0].to, ["alice@example.net"]);
    assert_eq!(data[0].tls.as_deref(), Some("TLSv1.2"));
    assert!(data[0].content.contains("report-type=delivery-status"));
    assert!(data[0].content.contains("Status: 5.1.1"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn notify_success_to_a_server_without_dsn_gets_a_relayed_report() {
    init_logs();
    let Some(peer) = Peer::start("starttls", "any", None) else {
        return;
    };
    let dir = tempdir("relayed");
    let spool = LogStore::open(&dir).unwrap();
    let id = spool.new_id();
    let mut w = spool.writer(&id).unwrap();
    w.write(BODY.as_bytes()).unwrap();
    let mut env = Envelope::new(id.clone(), sender("alice@local.test"));
    env.recipients = vec![
        RecipientState::pending(mailbox("bob@example.net"), false),
        RecipientState::pending(mailbox("carol@example.net"), false),
    ];
    env.recipients[0].notify = Notify::from_keyword("SUCCESS,FAILURE");
    env.recipients[1].notify = Some(Notify::Never);
    drop(w.commit(&env).wait().unwrap());
    let (clock, _) = manual_clock();
    let report = runner(
        &spool,
        settings(
            smart_host_rules(peer.port, "required"),
            Duration::from_secs(3600),
        ),
        clock,
    )
    .run_once()
    .await;
    assert_eq!((report.delivered, report.dsns), (2, 1), "{report:?}");
    let (dsn_env, body) = only_dsn(&spool);
    assert_eq!(dsn_env.recipients[0].address, mailbox("alice@local.test"));
    let report = parse_report(&body).unwrap();
    assert_eq!(report.recipients.len(), 1, "only bob asked for success");
    assert_eq!(
        report.recipient_field(0, "final-recipient"),
        Some("rfc822; bob@example.net")
    );
    assert_eq!(report.recipient_field(0, "action"), Some("relayed"));
    assert_eq!(report.recipient_field(0, "status"), Some("2.0.0"));
    assert_eq!(
        report.recipient_field(0, "diagnostic-code"),
        Some("smtp; 250 2.0.0 queued as 42")
    );
    assert_eq!(
        report.header("subject"),
        Some("Delivery Status Notification")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_stuck_route_does_not_hold_up_new_mail() {
    init_logs();
    let Some(peer) = Peer::start("starttls", "any", None) else {
        return;
    };
    // example.net goes to a server that accepts and never greets.
    let (tarpit, accepted) = tarpit();
    let dir = tempdir("hol");
    let spool = LogStore::open(&dir).unwrap();
    let stuck = enqueue(&spool, "alice@local.test", &[("bob@example.net", false)]);
    let mut s = settings(
        smart_host_rules(tarpit, "required"),
        Duration::from_secs(3600),
    );
    s.runner.timeouts = Timeouts::uniform(Duration::from_secs(60));
    s.runner.shutdown_grace = Duration::from_millis(500);
    s.router.mx_port = peer.port;
    let r = runner(&spool, s, postern_queue::runner::system_clock());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(r.run(rx));
    for _ in 0..100 {
        if accepted.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        accepted.load(Ordering::SeqCst) > 0,
        "the first pass is stuck"
    );
    // New mail for another route (example.org, MX -> the peer) still flows.
    let fresh = enqueue(&spool, "alice@local.test", &[("dave@example.org", false)]);
    let mut delivered = false;
    for _ in 0..100 {
        if !spool.list_all().unwrap().contains(&fresh) {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        delivered,
        "new mail was delivered while another pass is stuck"
    );
    assert_eq!(peer.events("DATA").len(), 1);
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the runner stops after the grace period")
        .unwrap();
    let env = spool.load(&stuck).unwrap();
    assert_eq!(env.recipients[0].status, RcptStatus::Pending);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn unusable_addresses_and_corrupt_envelopes_never_panic_or_loop() {
    init_logs();
    let dir = tempdir("garbage");
    let spool = LogStore::open(&dir).unwrap();
    // Addresses no server could take cannot be queued any more (the
    // envelope holds proto's types). An envelope record that has them
    // anyway (the v1 text form, written by hand) does not load: an error
    // that names the message and the bad value, never a guess.
    let unusable = spool.new_id();
    let unusable_env = format!(
        "id = \"{unusable}\"\nsender = \"not an address\"\narrival = 1764614400\n\n\
         [[recipients]]\naddress = \"also bad\"\n\n[recipients.status]\nstate = \"pending\"\n\n\
         [[recipients]]\naddress = \"x@\"\n\n[recipients.status]\nstate = \"pending\"\n"
    );
    // A corrupt envelope beside it. Both are written into the log as they
    // are, then found by a restart.
    let corrupt = spool.new_id();
    let key_of =
        |id: &QueueId| MessageKey::new(u128::from_str_radix(id.as_str(), 16).unwrap()).unwrap();
    let keys = [key_of(&unusable), key_of(&corrupt)];
    for (key, env) in keys.iter().zip([unusable_env.as_str(), "garbage = ["]) {
        let records = [(RecordKind::Body, BODY), (RecordKind::Envelope, env)]
            .map(|(kind, text)| Record::new(kind, *key, text))
            .to_vec();
        spool.log().commit(records).unwrap();
    }
    drop(spool);
    let spool = LogStore::open(&dir).unwrap();
    let err = spool.load(&unusable).unwrap_err().to_string();
    assert!(err.contains(unusable.as_str()), "{err}");
    assert!(
        ["not an address", "also bad", "x@"]
            .iter()
            .any(|bad| err.contains(&format!("{bad:?}"))),
        "{err}"
    );

    let (clock, _) = manual_clock();
    let r = runner(
        &spool,
        settings(smart_host_rules(1, "required"), Duration::from_secs(3600)),
        clock,
    );
    let first = r.run_once().await;
    for id in [&unusable, &corrupt] {
        assert!(
            first.errors.iter().any(|e| e.contains(id.as_str())),
            "{first:?}"
        );
    }
    assert_eq!(
        (first.messages, first.failed, first.dsns),
        (0, 0, 0),
        "{first:?}"
    );
    let second = r.run_once().await;
    assert_eq!((second.messages, second.dsns), (0, 0), "{second:?}");
    assert!(second.errors.is_empty(), "reported once: {second:?}");
    // Both are left for an operator, untouched.
    for (id, key) in [&unusable, &corrupt].into_iter().zip(keys) {
        assert!(spool.list_all().unwrap().contains(id));
        assert!(spool.log().contains(key));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn only_a_2xx_after_the_data_counts_as_delivered() {
    init_logs();
    let Some(peer) = Peer::start("starttls", "any", None) else {
        return;
    };
    let dir = tempdir("dataend");
    let spool = LogStore::open(&dir).unwrap();
    let refused = enqueue(
        &spool,
        "alice@local.test",
        &[("datafail@example.net", false)],
    );
    let later = enqueue(
        &spool,
        "alice@local.test",
        &[("tempdata@example.net", false)],
    );
    let (clock, _) = manual_clock();
    let report = runner(
        &spool,
        settings(
            smart_host_rules(peer.port, "required"),
            Duration::from_secs(3600),
        ),
        clock,
    )
    .run_once()
    .await;
    assert_eq!(
        (
            report.delivered,
            report.deferred,
            report.failed,
            report.dsns
        ),
        (0, 1, 1, 1),
        "{report:?}"
    );
    // RCPT was accepted both times; the end-of-data reply decided.
    assert_eq!(peer.events("DATA").len(), 2);
    assert!(spool.load(&refused).is_err(), "failed, bounced and removed");
    match status_of(&spool, &later, 0) {
        RcptStatus::Deferred(d) => {
            let reply = d.to_string();
            assert!(reply.starts_with("451 4.3.0 queue full"), "{reply}")
        }
        other => panic!("{other:?}"),
    }
    let (_, body) = only_dsn(&spool);
    let dsn = parse_report(&body).unwrap();
    assert_eq!(dsn.recipient_field(0, "status"), Some("5.6.0"));
    assert_eq!(
        dsn.recipient_field(0, "diagnostic-code"),
        Some("smtp; 554 5.6.0 content refused")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_looping_message_bounces_instead_of_being_relayed() {
    init_logs();
    let dir = tempdir("loop");
    let spool = LogStore::open(&dir).unwrap();
    let id = spool.new_id();
    let mut w = spool.writer(&id).unwrap();
    for hop in 0..101 {
        w.write(format!("Received: from hop{hop} by mta.test\r\n").as_bytes())
            .unwrap();
    }
    w.write(BODY.as_bytes()).unwrap();
    let mut env = Envelope::new(id.clone(), sender("alice@local.test"));
    env.recipients
        .push(RecipientState::pending(mailbox("bob@example.net"), false));
    drop(w.commit(&env).wait().unwrap());
    let (clock, _) = manual_clock();
    // Port 1: nothing listens; the loop check happens before any connection.
    let report = runner(
        &spool,
        settings(smart_host_rules(1, "required"), Duration::from_secs(3600)),
        clock,
    )
    .run_once()
    .await;
    assert_eq!(
        (report.failed, report.dsns, report.removed),
        (1, 1, 1),
        "{report:?}"
    );
    let (_, body) = only_dsn(&spool);
    let dsn = parse_report(&body).unwrap();
    assert_eq!(dsn.recipient_field(0, "status"), Some("5.4.6"));
    assert!(
        dsn.recipient_field(0, "diagnostic-code")
            .unwrap()
            .contains("routing loop detected: 101 Received")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_queue_of_sixty_messages_to_three_routes_uses_three_connections() {
    init_logs();
    let Some(peer) = Peer::start("starttls", "any", None) else {
        return;
    };
    let dir = tempdir("load");
    let spool = LogStore::open(&dir).unwrap();
    let domains = ["example.net", "example.org", "example.com"];
    for n in 0..60 {
        let rcpt = format!("user{n}@{}", domains[n % 3]);
        enqueue(&spool, "alice@local.test", &[(&rcpt, false)]);
    }
    let (clock, _) = manual_clock();
    let mut s = settings(
        smart_host_rules(peer.port, "required"),
        Duration::from_secs(3600),
    );
    s.router.mx_port = peer.port;
    let started = std::time::Instant::now();
    let report = runner(&spool, s, clock).run_once().await;
    assert_eq!((report.delivered, report.removed), (60, 60), "{report:?}");
    assert!(spool.list_all().unwrap().is_empty());
    assert!(started.elapsed() < Duration::from_secs(60));
    let data = peer.events("DATA");
    assert_eq!(data.len(), 60);
    // example.net over the pinned smart-host policy, the MX routes over
    // opportunistic TLS (the peer's best: 1.3).
    for d in &data {
        let expected = if d.to[0].ends_with("@example.net") {
            "TLSv1.2"
        } else {
            "TLSv1.3"
        };
        assert_eq!(d.tls.as_deref(), Some(expected), "{d:?}");
    }
    // Three routes, one connection each: EHLO before and after STARTTLS.
    assert_eq!(peer.events("EHLO").len(), 6);
    let _ = std::fs::remove_dir_all(&dir);
}
