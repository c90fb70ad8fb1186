//! Delay DSNs: one RFC 3464 `action=delayed` report per message once it
//! has waited `delay_warning`, never to the null sender, as `NOTIFY` allows
//! (RFC 3461 §4.1), remembered across restarts, checked by the same parser
//! as the bounces.
//!
//! No network: the router defers every recipient itself (as it does when a
//! route cannot be built), so each pass is an attempt that fails
//! transiently, on a manual clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use postern_proto::{EnhancedCode, Mailbox, Notify, ReversePath};
use postern_queue::report::{Diagnosis, parse_report};
use postern_queue::runner::{Router, Runner, RunnerSettings};
use postern_queue::{Envelope, LogStore, QueueId, RecipientState, RetryPolicy, SpoolBounces};
use postern_relay::Route;

const HOUR: u64 = 3600;

/// A mailbox from text known to parse.
fn mailbox(text: &str) -> Mailbox<'static> {
    Mailbox::parse(text).unwrap().into_owned()
}

/// `""` as the null sender, anything else as a sender mailbox.
fn reverse_path(text: &str) -> ReversePath<'static> {
    if text.is_empty() {
        ReversePath::Null
    } else {
        ReversePath::Mailbox(mailbox(text))
    }
}
const T0: u64 = 1_764_614_400;

/// Defers everything: "no route yet".
#[derive(Debug)]
struct Unreachable;

impl Router for Unreachable {
    fn route(&self, _: &Envelope, _: &RecipientState) -> Result<Route, Diagnosis> {
        Err(Diagnosis::local(
            EnhancedCode::new(4, 4, 1).unwrap(),
            "no answer from the next hop",
            None,
        ))
    }
}

struct Queue {
    dir: std::path::PathBuf,
    /// `None` only while it is reopened.
    store: Option<Arc<LogStore>>,
    now: Arc<AtomicU64>,
}

impl Queue {
    fn new(tag: &str) -> Queue {
        let dir = std::env::temp_dir().join(format!("postern-delay-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Queue {
            store: Some(LogStore::open(&dir).unwrap()),
            dir,
            now: Arc::new(AtomicU64::new(T0)),
        }
    }

    fn spool(&self) -> &Arc<LogStore> {
        self.store.as_ref().unwrap()
    }

    /// Closes the store and opens it again, as a restart does (every
    /// runner on it must be dropped first).
    fn reopen(&mut self) {
        drop(self.store.take());
        self.store = Some(LogStore::open(&self.dir).unwrap());
    }

    /// A message from `sender` to remote recipients with these `NOTIFY`s.
    fn enqueue(&self, sender: &str, notify: &[Option<&str>]) -> QueueId {
        let id = self.spool().new_id();
        let mut w = self.spool().writer(&id).unwrap();
        w.write(b"From: alice@local.test\r\nSubject: slow\r\n\r\nHello.\r\n")
            .unwrap();
        let mut env = Envelope::new(id.clone(), reverse_path(sender));
        env.arrival = T0;
        for (i, n) in notify.iter().enumerate() {
            let mut r = RecipientState::pending(mailbox(&format!("r{i}@remote.example")), false);
            r.notify = n.map(|k| Notify::from_keyword(k).unwrap());
            env.recipients.push(r);
        }
        drop(w.commit(&env).wait().unwrap());
        id
    }

    /// A fresh runner (as after a restart): warning after 1 hour, first
    /// retry after 10 minutes, at most 2 hours apart, 5 days to expiry.
    fn runner(&self, delay_warning: Duration) -> Runner<Unreachable, SpoolBounces> {
        let mut s = RunnerSettings::new("mx.local.test");
        s.retry = RetryPolicy::new(
            Duration::from_secs(600),
            2.0,
            Duration::from_secs(2 * HOUR),
            Duration::from_secs(5 * 24 * HOUR),
        );
        s.delay_warning = delay_warning;
        let bounces =
            SpoolBounces::new(self.spool().clone(), "mx.local.test").local_domains(["local.test"]);
        let now = self.now.clone();
        Runner::new(self.spool().clone(), s, Unreachable, bounces)
            .with_clock(Arc::new(move || now.load(Ordering::SeqCst)))
    }

    fn at(&self, t: u64) {
        self.now.store(t, Ordering::SeqCst);
    }

    /// The reports queued so far (null sender), parsed.
    fn dsns(&self) -> Vec<postern_queue::report::ParsedReport> {
        let store = self.spool();
        store
            .list_all()
            .unwrap()
            .iter()
            .map(|id| store.load(id).unwrap())
            .filter(|e| e.sender == ReversePath::Null && e.recipients[0].local)
            .map(|e| parse_report(&store.body(&e.id).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        drop(self.store.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn one_delay_report_after_the_warning_time_and_never_again() {
    let mut q = Queue::new("once");
    let id = q.enqueue("alice@local.test", &[None, Some("NEVER"), Some("DELAY")]);
    let r = q.runner(Duration::from_secs(HOUR));

    // Early attempts: deferred, no report.
    let report = r.run_once().await;
    assert_eq!((report.deferred, report.dsns), (3, 0), "{report:?}");
    assert_eq!(q.spool().load(&id).unwrap().next_attempt, T0 + 600);
    q.at(T0 + 600);
    assert_eq!(r.run_once().await.dsns, 0);
    // The backoff would wait 20 minutes more, then 40 (past the hour): the
    // next attempt is pulled in to the warning time instead.
    q.at(T0 + 1800);
    r.run_once().await;
    assert_eq!(q.spool().load(&id).unwrap().next_attempt, T0 + HOUR);

    q.at(T0 + HOUR);
    let report = r.run_once().await;
    assert_eq!((report.deferred, report.dsns), (3, 1), "{report:?}");
    let env = q.spool().load(&id).unwrap();
    assert!(env.delay_reported);
    assert!(env.recipients.iter().all(|r| r.status.is_open()));

    let dsns = q.dsns();
    assert_eq!(dsns.len(), 1);
    let dsn = &dsns[0];
    assert_eq!(dsn.header("to"), Some("<alice@local.test>"));
    assert_eq!(
        dsn.header("subject"),
        Some("Delayed Mail (still being retried)")
    );
    assert!(dsn.human.contains("for more than 1 hour"), "{}", dsn.human);
    assert!(dsn.human.contains("do not need to resend"), "{}", dsn.human);
    // NOTIFY=NEVER is left out; no NOTIFY and NOTIFY=DELAY are in.
    assert_eq!(dsn.recipients.len(), 2);
    for (i, rcpt) in ["r0@remote.example", "r2@remote.example"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            dsn.recipient_field(i, "final-recipient"),
            Some(format!("rfc822; {rcpt}").as_str())
        );
        assert_eq!(dsn.recipient_field(i, "action"), Some("delayed"));
        assert_eq!(dsn.recipient_field(i, "status"), Some("4.4.1"));
        assert_eq!(
            dsn.recipient_field(i, "diagnostic-code"),
            Some("X-Postern; no answer from the next hop")
        );
        assert_eq!(
            dsn.recipient_field(i, "will-retry-until"),
            Some(postern_queue::report::rfc5322_date(T0 + 5 * 24 * HOUR).as_str())
        );
    }
    assert_eq!(dsn.part_types[2], "text/rfc822-headers");

    // Later attempts, and a restart, send no second report.
    q.at(T0 + 3 * HOUR);
    assert_eq!(r.run_once().await.dsns, 0);
    drop(r);
    q.reopen();
    assert!(q.spool().load(&id).unwrap().delay_reported);
    let again = q.runner(Duration::from_secs(HOUR));
    q.at(T0 + 10 * HOUR);
    let report = again.run_once().await;
    assert_eq!((report.deferred, report.dsns), (3, 0), "{report:?}");
    assert_eq!(q.dsns().len(), 1);
}

#[tokio::test]
async fn no_delay_report_for_the_null_sender_notify_without_delay_or_when_off() {
    let q = Queue::new("none");
    let null = q.enqueue("", &[None]);
    let without = q.enqueue("alice@local.test", &[Some("FAILURE"), Some("NEVER")]);
    let r = q.runner(Duration::from_secs(HOUR));
    r.run_once().await;
    // Nothing owed: the warning time does not pull the next attempt in.
    for id in [&null, &without] {
        assert_eq!(q.spool().load(id).unwrap().next_attempt, T0 + 600);
    }
    for t in [T0 + HOUR, T0 + 3 * HOUR, T0 + 6 * HOUR] {
        q.at(t);
        let report = r.run_once().await;
        assert_eq!(report.dsns, 0, "{report:?}");
    }
    assert!(q.dsns().is_empty());

    // `delay_warning = 0` turns the report off.
    let q = Queue::new("off");
    let id = q.enqueue("alice@local.test", &[None]);
    let r = q.runner(Duration::ZERO);
    for t in [T0, T0 + 5 * HOUR, T0 + 24 * HOUR] {
        q.at(t);
        assert_eq!(r.run_once().await.dsns, 0);
    }
    assert!(!q.spool().load(&id).unwrap().delay_reported);
    assert!(q.dsns().is_empty());
}

#[tokio::test]
async fn an_expired_message_bounces_without_a_delay_report_first() {
    // The warning time is after the expiry: only the failure report.
    let q = Queue::new("expired");
    q.enqueue("alice@local.test", &[None]);
    let r = q.runner(Duration::from_secs(6 * 24 * HOUR));
    r.run_once().await;
    q.at(T0 + 5 * 24 * HOUR);
    let report = r.run_once().await;
    assert_eq!((report.failed, report.dsns), (1, 1), "{report:?}");
    let dsns = q.dsns();
    assert_eq!(dsns.len(), 1);
    assert_eq!(dsns[0].recipient_field(0, "action"), Some("failed"));
    assert_eq!(dsns[0].recipient_field(0, "will-retry-until"), None);
}
