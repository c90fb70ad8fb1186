//! REQUIRETLS (RFC 8689) through the MTA: Python's smtplib sends MAIL FROM
//! with REQUIRETLS after STARTTLS and the flag is kept in the queue across
//! a restart (before TLS the parameter is refused, and not offered); the
//! runner relays such a message only over authenticated TLS to a next hop
//! that offers REQUIRETLS (aiosmtpd, the relay crate's
//! `tests/peers/smtpd.py --requiretls`), and bounces it with 5.7.30
//! otherwise; a `TLS-Required: No` header field waives a DANE-only policy.
//!
//! Skipped loudly without aiosmtpd or swaks, failed when
//! POSTERN_REQUIRE_PEERS=1.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Aiosmtpd, Server, TempDir, run};
use postern_mta::outbound::{MtaRunner, RulesRouter};
use postern_proto::{Mailbox, ReversePath};
use postern_queue::report::parse_report;
use postern_queue::runner::{Runner, RunnerSettings};
use postern_queue::{Envelope, LogStore, QueueId, RcptStatus, RecipientState, SpoolBounces};
use postern_relay::{StaticResolver, Timeouts};
use postern_rules::RuleSet;
use postern_testkit::{free_port, python_with};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const T: Duration = Duration::from_secs(30);

fn mailbox(text: &str) -> Mailbox<'static> {
    Mailbox::parse(text).unwrap().into_owned()
}

/// A runner whose one rule sends example.net to `port` with `tls` (the
/// peer's CA, `ca.pem` in its `dir`, as the trust anchor).
fn runner(spool: &Arc<LogStore>, dir: &Path, port: u16, tls: &str) -> MtaRunner {
    let anchors = if tls == "verified" {
        r#", { relay_trust_anchors = ["ca.pem"] }"#
    } else {
        ""
    };
    let src = format!(
        r#"
[[rule]]
name = "example_net"
conditions = [{{ relaying = true }}, {{ recipient_domain = {{ is = "example.net" }} }}]
actions = [{{ relay_host = "localhost:{port}" }}, {{ relay_tls = "{tls}" }}{anchors}]
"#
    );
    let mut router = RulesRouter::new(Arc::new(RuleSet::from_toml_str(&src, "t.toml").unwrap()));
    router.base_dir = dir.to_owned();
    let mut s = RunnerSettings::new("mta.test");
    s.timeouts = Timeouts::uniform(Duration::from_secs(10));
    let bounces = SpoolBounces::new(spool.clone(), "mta.test").local_domains(["local.test"]);
    Runner::new(spool.clone(), s, router, bounces)
        .with_resolver(Arc::new(
            StaticResolver::new().with_host("localhost", [LOCALHOST]),
        ))
        .with_provider(Arc::new(postern_listener::default_provider()))
}

fn enqueue(spool: &Arc<LogStore>, requiretls: bool, headers: &str) -> QueueId {
    let id = spool.new_id();
    let mut w = spool.writer(&id).unwrap();
    let body = format!(
        "From: alice@local.test\r\nTo: bob@example.net\r\n{headers}Subject: rt\r\n\r\nHi.\r\n"
    );
    w.write(body.as_bytes()).unwrap();
    let mut env = Envelope::new(
        id.clone(),
        ReversePath::Mailbox(mailbox("alice@local.test")),
    );
    env.params.requiretls = requiretls;
    // Asks for the whole message back; RFC 8689 §5 returns headers only.
    env.params.ret = Some(postern_proto::Ret::Full);
    env.recipients
        .push(RecipientState::pending(mailbox("bob@example.net"), false));
    drop(w.commit(&env).wait().unwrap());
    id
}

/// The report queued to alice about `id`'s recipient: its status.
fn bounce_status(spool: &Arc<LogStore>) -> String {
    let reports: Vec<QueueId> = spool
        .list_all()
        .unwrap()
        .into_iter()
        .filter(|id| spool.load(id).unwrap().sender == ReversePath::Null)
        .collect();
    assert_eq!(reports.len(), 1, "one report");
    // RFC 8689 §5: the report travels under REQUIRETLS and returns the
    // headers only, though RET=FULL was asked.
    assert!(spool.load(&reports[0]).unwrap().params.requiretls);
    let report = parse_report(&spool.body(&reports[0]).unwrap()).expect("an RFC 3464 report");
    assert_eq!(
        report.part_types.last().map(String::as_str),
        Some("text/rfc822-headers"),
        "{:?}",
        report.part_types
    );
    spool.remove(&reports[0]).unwrap();
    report
        .recipient_field(0, "Status")
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn relayed_only_over_authenticated_tls_to_a_next_hop_offering_requiretls() {
    let dir = TempDir::new("requiretls-relay");
    let Some(offers) = Aiosmtpd::start("starttls", &["--requiretls"]) else {
        return;
    };
    let lacks = Aiosmtpd::start("starttls", &[]).expect("aiosmtpd");
    let spool = LogStore::open(&dir.path().join("queue")).unwrap();

    // Verified TLS, REQUIRETLS offered: delivered, with the parameter.
    let id = enqueue(&spool, true, "");
    let report = runner(&spool, &offers.dir, offers.port, "verified")
        .run_once()
        .await;
    assert_eq!((report.delivered, report.removed), (1, 1), "{report:?}");
    let mail = offers.events("MAIL");
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains("\"REQUIRETLS\""), "{mail:?}");
    assert!(mail[0].contains("TLSv1."), "{mail:?}");
    assert!(spool.load(&id).is_err(), "finished and removed");

    // Verified TLS to a next hop without REQUIRETLS: bounced with 5.7.30,
    // nothing of the message sent.
    let id = enqueue(&spool, true, "");
    let report = runner(&spool, &lacks.dir, lacks.port, "verified")
        .run_once()
        .await;
    assert_eq!(report.failed, 1, "{report:?}");
    assert!(
        lacks.events("MAIL").is_empty(),
        "{:?}",
        lacks.events("MAIL")
    );
    assert!(spool.load(&id).is_err(), "bounced and removed");
    assert_eq!(bounce_status(&spool), "5.7.30");

    // Unauthenticated TLS (opportunistic) even with REQUIRETLS offered:
    // bounced with 5.7.30, never relaxed.
    enqueue(&spool, true, "");
    let report = runner(&spool, &offers.dir, offers.port, "opportunistic")
        .run_once()
        .await;
    assert_eq!(report.failed, 1, "{report:?}");
    assert_eq!(offers.events("MAIL").len(), 1, "no second MAIL");
    assert_eq!(bounce_status(&spool), "5.7.30");

    // Without REQUIRETLS the same next hop takes it.
    enqueue(&spool, false, "");
    let report = runner(&spool, &lacks.dir, lacks.port, "verified")
        .run_once()
        .await;
    assert_eq!(report.delivered, 1, "{report:?}");
    assert!(!lacks.events("MAIL")[0].contains("REQUIRETLS"));
}

#[tokio::test]
async fn tls_required_no_waives_a_dane_only_policy_but_not_with_requiretls() {
    let dir = TempDir::new("requiretls-header");
    // A next hop without STARTTLS: dane-only can never deliver to it.
    let Some(plain) = Aiosmtpd::start("plain", &[]) else {
        return;
    };
    let spool = LogStore::open(&dir.path().join("queue")).unwrap();
    let id = enqueue(&spool, false, "");
    let report = runner(&spool, &plain.dir, plain.port, "dane-only")
        .run_once()
        .await;
    assert_eq!(report.deferred, 1, "{report:?}");
    assert!(matches!(
        spool.load(&id).unwrap().recipients[0].status,
        RcptStatus::Deferred(_)
    ));
    spool.remove(&id).unwrap();

    // The sender waived the recipient's policy: sent (TLS attempted, not
    // offered, so plaintext).
    enqueue(&spool, false, "TLS-Required: No\r\n");
    let report = runner(&spool, &plain.dir, plain.port, "dane-only")
        .run_once()
        .await;
    assert_eq!(report.delivered, 1, "{report:?}");
    let data = plain.events("DATA");
    assert_eq!(data.len(), 1);
    assert!(
        data[0].contains("TLS-Required: No"),
        "the field goes on: {data:?}"
    );

    // With REQUIRETLS the header field is ignored (§4.1): not sent.
    let id = enqueue(&spool, true, "TLS-Required: No\r\n");
    let report = runner(&spool, &plain.dir, plain.port, "dane-only")
        .run_once()
        .await;
    assert_eq!(report.delivered, 0, "{report:?}");
    assert_eq!(plain.events("DATA").len(), 1);
    let _ = spool.load(&id);
}

/// smtplib: EHLO, optionally STARTTLS and AUTH, then MAIL FROM with
/// REQUIRETLS; prints the EHLO keywords and the outcome.
const CLIENT: &str = r#"
import smtplib, ssl, sys
port, tls = int(sys.argv[1]), sys.argv[2] == "tls"
s = smtplib.SMTP("127.0.0.1", port, timeout=20)
s.ehlo("client.test")
if tls:
    s.starttls(context=ssl._create_unverified_context())
    s.ehlo("client.test")
    s.login("alice", "alice-pw")
print("REQUIRETLS offered:", s.has_extn("requiretls"))
try:
    s.sendmail("alice@localhost", ["carol@remote.test"], b"Subject: rt\r\n\r\nhi\r\n", mail_options=["REQUIRETLS"])
    print("accepted")
except smtplib.SMTPSenderRefused as e:
    print("refused", e.smtp_code, e.smtp_error.decode())
s.quit()
"#;

#[test]
fn the_flag_is_accepted_only_over_tls_and_survives_a_restart_in_the_queue() {
    let Some(python) = python_with("aiosmtpd") else {
        return;
    };
    let dir = TempDir::new("requiretls-queue");
    // remote.test goes to a closed port: the message stays queued.
    let closed = free_port();
    let rules = format!(
        "[[rule]]\nname = \"remote\"\nconditions = [{{ relaying = true }}, {{ recipient_domain = {{ is = \"remote.test\" }} }}]\nactions = [{{ relay_host = \"127.0.0.1:{closed}\" }}, {{ relay_tls = \"verified\" }}]\n"
    );
    let mut server = Server::start(dir.path(), &rules);
    let client = |tls: &str| {
        let port = server.ports.submission.to_string();
        run(Command::new(&python).args(["-c", CLIENT, &port, tls]), T).1
    };
    let out = client("plain");
    assert!(out.contains("REQUIRETLS offered: False"), "{out}");
    assert!(out.contains("refused 5"), "not over plaintext: {out}");
    let out = client("tls");
    assert!(out.contains("REQUIRETLS offered: True"), "{out}");
    assert!(out.contains("accepted"), "{out}");

    let flagged = |server: &Server| {
        let deadline = Instant::now() + T;
        loop {
            let q = server.queued();
            if let Some(env) = q.iter().find(|e| {
                e.recipients
                    .iter()
                    .any(|r| r.address.to_string() == "carol@remote.test")
            }) {
                return env.params.requiretls;
            }
            assert!(
                Instant::now() < deadline,
                "not queued: {}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert!(flagged(&server), "REQUIRETLS kept in the envelope");
    server.restart();
    assert!(flagged(&server), "and after a restart");
}
