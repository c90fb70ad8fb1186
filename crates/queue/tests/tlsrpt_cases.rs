//! TLS-RPT (RFC 8460) from a run of the MTA-STS cases (issue 14): real
//! deliveries through the relay (the local DNS zone, nginx serving the
//! policies, an aiosmtpd MX: the relay's own fixture) are counted by the
//! [`TlsRptRecorder`]; the next day the [`ReportSender`] finds each
//! domain's `_smtp._tls` record in the same DNS, queues the report mail in
//! a [`LogStore`] and POSTs the report to nginx. Python's `email`, `gzip`
//! and `json` modules (parsers we did not write) read both, and the fields
//! RFC 8460 §4.4 and §5.3 require are checked; dkimpy verifies the mail's
//! DKIM signature (§3).
//!
//! Skipped loudly without the DNS servers, nginx or aiosmtpd; failed with
//! POSTERN_REQUIRE_PEERS=1.

#![cfg(unix)]

#[path = "../../relay/tests/sts_fixture/mod.rs"]
mod sts_fixture;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use postern_queue::dkim::DkimSigner;
use postern_queue::tlsrpt::{ReportSender, ReportSettings, SentReport, TlsRptRecorder, day_of};
use postern_queue::{LogStore, Store};
use postern_relay::mta_sts::{FetchSettings, PolicyFetcher};
use sts_fixture::*;

#[test]
fn a_report_from_the_cases_is_mailed_through_the_queue_and_posted() {
    let Some(fx) = Fixture::start() else { return };
    let Some(python) = postern_testkit::python_with("dkim") else {
        return;
    };
    let sts = fx.sts();
    let yesterday = now() - 86_400;
    let clock = Arc::new(AtomicU64::new(yesterday));
    let c = clock.clone();
    let open = || {
        let c = c.clone();
        TlsRptRecorder::open_with_clock(
            fx.dir.join("tlsrpt"),
            Arc::new(move || c.load(Ordering::SeqCst)),
        )
        .unwrap()
    };
    let recorder = open();
    for case in ["good", "good", "testing", "testbad", "nomatch", "badcert"] {
        fx.deliver(&sts, case);
        recorder.record(&fx.take_sessions()).unwrap();
    }
    let (day, log) = recorder.pending();
    assert_eq!(day, day_of(yesterday));
    let mut domains = log.domains();
    domains.sort_unstable();
    let d = |case: &str| fx.domain(case);
    assert_eq!(
        domains,
        [
            d("badcert"),
            d("good"),
            d("nomatch"),
            d("testbad"),
            d("testing")
        ]
    );
    // Mailed reports are DKIM-signed by the reporting domain (§3).
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let signer = DkimSigner::new(
        "relay.test",
        "tlsrpt",
        key.serialize_pem().as_bytes(),
        &provider(),
    )
    .unwrap();
    let record = signer.txt_record();
    let settings = ReportSettings::new("relay.test").unwrap().with_dkim(signer);
    let good = settings.report(&log, &d("good"), day).unwrap();
    assert_eq!(good.totals(), (2, 0), "two verified sessions");
    let testbad = settings.report(&log, &d("testbad"), day).unwrap();
    assert_eq!(
        testbad.totals(),
        (0, 1),
        "the certificate failure under testing"
    );

    // A day later, after a restart: the day is finished and sent.
    clock.store(now(), Ordering::SeqCst);
    drop(recorder);
    let recorder = open();
    assert_eq!(recorder.finished_days().unwrap(), [day]);
    assert!(recorder.pending().1.is_empty(), "today has nothing yet");
    let store = LogStore::open(&fx.dir.join("queue")).unwrap();
    let spool: Arc<dyn Store> = store.clone();
    // First pass: the HTTPS receiver is unreachable (a port nobody
    // listens on). The mail goes, the POST fails, the day is kept.
    let dead = FetchSettings::new(fx.anchors.clone())
        .with_port(postern_testkit::free_port())
        .with_timeout(std::time::Duration::from_secs(5));
    let dead = PolicyFetcher::new(dead, provider(), fx.resolver.clone()).unwrap();
    let sender = ReportSender::new(
        settings.clone(),
        spool.clone(),
        fx.resolver.clone(),
        Some(dead),
    );
    let first = runtime().block_on(sender.send_finished(&recorder));
    let failed: Vec<_> = first
        .iter()
        .filter(|s| matches!(s, SentReport::Failed { .. }))
        .collect();
    assert_eq!(failed.len(), 1, "the POST failed: {first:?}");
    assert_eq!(recorder.finished_days().unwrap(), [day], "kept for a retry");
    // Second pass: only the POST is tried again; no mail goes twice.
    let sender = ReportSender::new(
        settings,
        spool.clone(),
        fx.resolver.clone(),
        Some(fx.fetcher()),
    );
    let second = runtime().block_on(sender.send_finished(&recorder));
    let sent: Vec<SentReport> = first
        .into_iter()
        .filter(|s| !matches!(s, SentReport::Failed { .. }))
        .chain(second.iter().cloned())
        .collect();
    assert_eq!(second.len(), 1, "only the failed POST again: {second:?}");
    let queued: Vec<_> = sent
        .iter()
        .filter_map(|s| match s {
            SentReport::Queued { domain, to, id, .. } => {
                Some((domain.clone(), to.clone(), id.clone()))
            }
            _ => None,
        })
        .collect();
    let posted: Vec<_> = sent
        .iter()
        .filter_map(|s| match s {
            SentReport::Posted { domain, status, .. } => Some((domain.clone(), *status)),
            _ => None,
        })
        .collect();
    let unrecorded = sent
        .iter()
        .filter(|s| matches!(s, SentReport::NoRecord { .. }))
        .count();
    assert_eq!(queued.len(), 2, "good and testing publish mailto: {sent:?}");
    assert_eq!(posted, [(d("good"), 200)], "{sent:?}");
    assert_eq!(
        unrecorded, 3,
        "the other domains publish no record: {sent:?}"
    );
    assert!(
        recorder.finished_days().unwrap().is_empty(),
        "the day is retired"
    );

    // The queued mail: to the rua, from our reporting address.
    let (domain, to, id) = queued.iter().find(|q| q.0 == d("good")).unwrap();
    assert_eq!(to, "tlsrpt@reports.test");
    let env = spool.load(id).unwrap();
    assert_eq!(env.recipients[0].address.to_string(), "tlsrpt@reports.test");
    assert_eq!(env.sender.to_string(), "<tlsrpt-noreply@relay.test>");
    let mail = fx.dir.join("report.eml");
    std::fs::write(&mail, spool.body(id).unwrap()).unwrap();
    let post = fx.dir.join("report.post");
    let posts = fx.posts();
    assert_eq!(posts.len(), 1, "nginx kept one POST body");
    std::fs::write(&post, &posts[0]).unwrap();
    let script = r#"
import dkim, email, gzip, json, sys
from email import policy
raw = open(sys.argv[1], "rb").read()
def dns(name, timeout=5):
    assert name == b"tlsrpt._domainkey.relay.test.", name
    return sys.argv[4].encode()
assert dkim.verify(raw, dnsfunc=dns), "the DKIM signature verifies"
m = email.message_from_bytes(raw, policy=policy.default)
assert m["TLS-Required"] == "No", "sent despite TLS failures (RFC 8460 3)"
assert m.get_content_type() == "multipart/report", m.get_content_type()
assert m.get_param("report-type") == "tlsrpt"
assert m["TLS-Report-Domain"] == sys.argv[3], m["TLS-Report-Domain"]
assert m["TLS-Report-Submitter"] == "relay.test"
assert m["Subject"].startswith("Report Domain: " + sys.argv[3] + " Submitter: relay.test Report-ID: <")
parts = [p for p in m.iter_parts()]
assert [p.get_content_type() for p in parts] == ["text/plain", "application/tlsrpt+gzip"]
att = parts[1]
name = att.get_filename()
assert name.startswith("relay.test!" + sys.argv[3] + "!") and name.endswith(".json.gz"), name
mailed = json.loads(gzip.decompress(att.get_content()))
posted = json.loads(gzip.decompress(open(sys.argv[2], "rb").read()))
assert mailed == posted
for k in ("organization-name", "date-range", "contact-info", "report-id", "policies"):
    assert k in mailed, k
[p] = mailed["policies"]
assert p["policy"]["policy-type"] == "sts"
assert p["policy"]["policy-domain"] == sys.argv[3]
assert "mode: enforce" in p["policy"]["policy-string"]
assert p["summary"] == {"total-successful-session-count": 2, "total-failure-session-count": 0}, p
print("ok")
"#;
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&mail)
        .arg(&post)
        .arg(domain)
        .arg(&record)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
