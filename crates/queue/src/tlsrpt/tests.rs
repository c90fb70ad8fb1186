use std::io::Read as _;

use super::*;

#[test]
fn the_rfc_records_parse() {
    // RFC 8460 §3.
    let r = TlsRptRecord::parse("v=TLSRPTv1;rua=mailto:reports@example.com").unwrap();
    assert_eq!(r.rua(), [ReportUri::Mail("reports@example.com".into())]);
    let r = TlsRptRecord::parse("v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt").unwrap();
    assert_eq!(
        r.rua(),
        [ReportUri::Https(
            "https://reporting.example.com/v1/tlsrpt".into()
        )]
    );
    let r = TlsRptRecord::parse(
        "v=TLSRPTv1; rua=mailto:a%2Cb@example.com, https://r.example/x, ftp://skip.example; ext=1;",
    )
    .unwrap();
    assert_eq!(r.rua().len(), 2);
    assert_eq!(r.rua()[0], ReportUri::Mail("a,b@example.com".into()));
    for bad in [
        "v=TLSRPTv2; rua=mailto:a@b",
        "v=TLSRPTv1",
        "v=TLSRPTv1; rua=",
        "v=TLSRPTv1; rua=ftp://only.example",
        "v=TLSRPTv1; rua=mailto:nobody",
        "v=TLSRPTv1; rua=mailto:a@b; rua=mailto:c@d",
        "v=TLSRPTv1; rua=mailto:a%zz@b",
        "v=TLSRPTv1; rua=mailto:a@b;; x=y",
        "v=TLSRPTv1rua=mailto:a@b",
    ] {
        assert!(TlsRptRecord::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(TlsRptRecord::select(["v=spf1 -all"]), Ok(None));
    assert_eq!(
        TlsRptRecord::select(["v=TLSRPTv1; rua=mailto:a@b", "v=TLSRPTv1; rua=mailto:c@d"]),
        Err(TlsRptRecordError::Several(2))
    );
}

fn sample_log() -> (TlsRptLog, PolicyKey) {
    let sts = PolicyKey::new(PolicyType::Sts, "Company-Y.example")
        .with_policy_string(
            [
                "version: STSv1",
                "mode: testing",
                "mx: *.mail.company-y.example",
                "max_age: 86400",
            ]
            .map(String::from),
        )
        .with_mx_host(["*.mail.company-y.example".to_owned()]);
    let mut log = TlsRptLog::new();
    for _ in 0..5 {
        log.success(&sts);
    }
    let mut expired = Failure::new(ResultType::CertificateExpired);
    expired.sending_mta_ip = Some("2001:db8:abcd:12::1".parse().unwrap());
    expired.receiving_mx_hostname = Some("mx1.mail.company-y.example".into());
    expired.receiving_ip = Some("203.0.113.56".parse().unwrap());
    log.failure(&sts, expired.clone());
    log.failure(&sts, expired);
    log.failure(&sts, Failure::new(ResultType::StarttlsNotSupported));
    let none = PolicyKey::new(PolicyType::NoPolicyFound, "other.example");
    log.success(&none);
    (log, sts)
}

#[test]
fn the_report_has_rfc_8460_appendix_b_shape() {
    let (log, _) = sample_log();
    assert_eq!(log.domains(), ["company-y.example", "other.example"]);
    let report = log
        .report(
            "company-y.example",
            "Company-X",
            "sts-reporting@company-x.example",
            "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
            DateRange::utc_day(1_459_468_800 + 3_600),
        )
        .unwrap();
    assert_eq!(report.totals(), (5, 3));
    let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(v["organization-name"], "Company-X");
    assert_eq!(v["date-range"]["start-datetime"], "2016-04-01T00:00:00Z");
    assert_eq!(v["date-range"]["end-datetime"], "2016-04-01T23:59:59Z");
    assert_eq!(v["contact-info"], "sts-reporting@company-x.example");
    let p = &v["policies"][0];
    assert_eq!(p["policy"]["policy-type"], "sts");
    assert_eq!(p["policy"]["policy-domain"], "company-y.example");
    assert_eq!(p["policy"]["policy-string"][1], "mode: testing");
    assert_eq!(p["policy"]["mx-host"][0], "*.mail.company-y.example");
    assert_eq!(p["summary"]["total-successful-session-count"], 5);
    assert_eq!(p["summary"]["total-failure-session-count"], 3);
    let details = p["failure-details"].as_array().unwrap();
    let expired = details
        .iter()
        .find(|d| d["result-type"] == "certificate-expired")
        .unwrap();
    assert_eq!(expired["failed-session-count"], 2);
    assert_eq!(expired["sending-mta-ip"], "2001:db8:abcd:12::1");
    assert_eq!(
        expired["receiving-mx-hostname"],
        "mx1.mail.company-y.example"
    );
    assert_eq!(expired["receiving-ip"], "203.0.113.56");
    assert!(
        details
            .iter()
            .any(|d| d["result-type"] == "starttls-not-supported")
    );
    assert!(
        log.report("nobody.example", "x", "y", "z", DateRange::utc_day(0))
            .is_none()
    );
}

#[test]
fn the_log_survives_a_restart_and_the_gzip_is_the_json() {
    let (log, sts) = sample_log();
    let stored = serde_json::to_string(&log).unwrap();
    let mut back: TlsRptLog = serde_json::from_str(&stored).unwrap();
    assert_eq!(back, log);
    back.success(&sts);
    let r = back
        .report("company-y.example", "o", "c", "id", DateRange::utc_day(0))
        .unwrap();
    assert_eq!(r.totals(), (6, 3));
    let mut json = String::new();
    flate2::read::GzDecoder::new(&r.to_gzip().unwrap()[..])
        .read_to_string(&mut json)
        .unwrap();
    assert_eq!(json, r.to_json());
    assert_eq!(
        report_file_name("mx.example", "company-y.example", 1, 2, "id"),
        "mx.example!company-y.example!1!2!id.json.gz"
    );
}

/// Python's own gzip and json modules read the report (a parser we did
/// not write), and the fields RFC 8460 §4.4 requires are where it says.
#[test]
fn python_reads_the_gzipped_report() {
    let Ok(py) = which_python() else {
        eprintln!("SKIPPED: python3 not found; the report was not checked by an outside parser");
        assert!(
            std::env::var_os("POSTERN_REQUIRE_PEERS").is_none(),
            "python3 is required"
        );
        return;
    };
    let (log, _) = sample_log();
    let r = log
        .report(
            "company-y.example",
            "Company-X",
            "c@x.example",
            "rid",
            DateRange::utc_day(0),
        )
        .unwrap();
    let dir = std::env::temp_dir().join(format!("postern-tlsrpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("r.json.gz");
    std::fs::write(&path, r.to_gzip().unwrap()).unwrap();
    let script = r#"
import gzip, json, sys
r = json.load(gzip.open(sys.argv[1]))
for k in ("organization-name", "date-range", "contact-info", "report-id", "policies"):
    assert k in r, k
assert set(r["date-range"]) == {"start-datetime", "end-datetime"}
for p in r["policies"]:
    assert p["policy"]["policy-type"] in ("tlsa", "sts", "no-policy-found")
    s = p["summary"]
    assert sum(d["failed-session-count"] for d in p.get("failure-details", [])) == s["total-failure-session-count"]
print(r["policies"][0]["summary"]["total-successful-session-count"])
"#;
    let out = std::process::Command::new(py)
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
}

fn which_python() -> Result<&'static str, ()> {
    std::process::Command::new("python3")
        .arg("--version")
        .output()
        .map(|_| "python3")
        .map_err(|_| ())
}

#[test]
fn names_are_the_serialised_forms() {
    // RFC 8460 §4.3 and §4.4: the metric labels use the report's names.
    for rt in [
        ResultType::StarttlsNotSupported,
        ResultType::CertificateHostMismatch,
        ResultType::CertificateExpired,
        ResultType::CertificateNotTrusted,
        ResultType::ValidationFailure,
        ResultType::TlsaInvalid,
        ResultType::DnssecInvalid,
        ResultType::DaneRequired,
        ResultType::StsPolicyFetchError,
        ResultType::StsPolicyInvalid,
        ResultType::StsWebpkiInvalid,
    ] {
        assert_eq!(
            serde_json::to_string(&rt).unwrap(),
            format!("\"{}\"", rt.name())
        );
    }
    for pt in [PolicyType::Tlsa, PolicyType::Sts, PolicyType::NoPolicyFound] {
        assert_eq!(
            serde_json::to_string(&pt).unwrap(),
            format!("\"{}\"", pt.name())
        );
    }
}

#[test]
fn the_recorder_writes_at_most_every_few_seconds_and_at_each_day_end() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = std::env::temp_dir().join(format!("postern-tlsrpt-rec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let start = 20_000 * 86_400 + 3600;
    let clock = Arc::new(AtomicU64::new(start));
    let c = clock.clone();
    let rec =
        TlsRptRecorder::open_with_clock(&dir, Arc::new(move || c.load(Ordering::SeqCst))).unwrap();
    let key = PolicyKey::new(PolicyType::Sts, "example.com");
    let one = [postern_relay::tlsrpt::TlsSession::success(key)];
    let on_disk = |day: u64| {
        let log = TlsRptRecorder::load(&dir, day).unwrap();
        log.report("example.com", "o", "c", "r", DateRange::utc_day(day))
            .map_or(0, |r| r.totals().0)
    };
    let day = day_of(start);
    rec.record(&one).unwrap();
    assert_eq!(on_disk(day), 1, "the first record is written");
    rec.record(&one).unwrap();
    assert_eq!(on_disk(day), 1, "the next waits");
    assert_eq!(rec.pending().1.domains(), ["example.com"]);
    clock.store(start + WRITE_EVERY, Ordering::SeqCst);
    rec.record(&one).unwrap();
    assert_eq!(on_disk(day), 3, "written again after WRITE_EVERY");
    rec.record(&one).unwrap();
    // The day ends: its last count is written before the new day starts.
    clock.store(start + 86_400, Ordering::SeqCst);
    assert_eq!(rec.finished_days().unwrap(), [day]);
    assert_eq!(on_disk(day), 4);
    rec.record(&one).unwrap();
    drop(rec);
    assert_eq!(on_disk(day + 86_400), 1, "dropping writes the rest");
    let _ = std::fs::remove_dir_all(&dir);
}
