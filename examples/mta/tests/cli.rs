//! The commands that do not serve: check, explain, policy test, user add,
//! and configuration errors that name the file, line, rule and field.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TempDir, bin, run};

fn hardening() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("hardening.toml")
}

fn mta(args: &[&str]) -> (Option<i32>, String) {
    run(Command::new(bin()).args(args), Duration::from_secs(60))
}

#[test]
fn check_hardening_reports_what_rustls_cannot_do_and_passes() {
    let path = hardening();
    let (code, out) = mta(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    for needle in [
        "listener mta on 0.0.0.0:25 (starttls)",
        "listener submission on 0.0.0.0:587 (starttls)",
        "listener submissions on 0.0.0.0:465 (implicit)",
        "AUTH on plaintext: off",
        "AUTH over TLS:     PLAIN LOGIN",
        "effective versions: TLSv1.3, TLSv1.2",
        "warning: rule #5 use_only_tls11_and_12_when_relaying: relay TLS versions TLSv1.1 cannot be negotiated",
        "the effective set is TLSv1.2",
        "check: ok",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from\n{out}");
    }
}

#[test]
fn check_embedded_default() {
    let dir = TempDir::new("check-default");
    let (code, out) = mta(&["check", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("configuration: <embedded default>"), "{out}");
    assert!(
        out.contains("tls_report: reports from tlsrpt-noreply@localhost (localhost); mailed ones unsigned (no dkim_key)"),
        "{out}"
    );
    assert!(
        out.contains("listener mta on 127.0.0.1:2525 (starttls)"),
        "{out}"
    );
    assert!(
        out.contains("listener submission on 127.0.0.1:2587 (starttls)"),
        "{out}"
    );
    assert!(
        out.contains("listener submissions on 127.0.0.1:2465 (implicit)"),
        "{out}"
    );
    // check writes nothing.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn check_refuses_what_cannot_be_honoured() {
    let dir = TempDir::new("check-bad");
    let cfg = dir.path().join("bad.toml");
    fs::write(
        &cfg,
        "[tls.old]\ncertificate = \"self-signed\"\nversions = [\"SSLv3\", \"TLSv1.1\"]\nciphers = \"DHE-RSA-AES128-SHA256:DHE-RSA-AES128-SHA\"\n\n[[listener]]\nname = \"mta\"\naddress = \"127.0.0.1:2525\"\nmode = \"starttls\"\ntls = \"old\"\n\n[[rule]]\nname = \"auth_everywhere\"\nactions = [{ plain_auth = [\"PLAIN\"] }]\n",
    )
    .unwrap();
    let (code, out) = mta(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("error: tls.versions"), "{out}");
    assert!(
        out.contains("cleartext-password-without-tls") || out.contains("PLAIN"),
        "{out}"
    );
    assert!(out.contains("check: "), "{out}");
}

#[test]
fn config_errors_name_file_line_rule_and_field() {
    let dir = TempDir::new("config-errors");
    let cases = [
        (
            "[[listener]]\nname = \"mta\"\naddress = \"127.0.0.1:2525\"\nmode = \"plain\"\nport = 25\n",
            ":5:1: listener[0] \"mta\", ",
            "unknown field `port`",
        ),
        (
            "[[listener]]\nname = \"mta\"\naddress = \"127.0.0.1:2525\"\nmode = \"plain\"\n\n[[rule]]\nname = \"typo\"\nconditions = [{ recipient_domian = { is = \"x\" } }]\nactions = [{ stop = true }]\n",
            "rule #1 \"typo\", conditions[0]",
            "recipient_domian",
        ),
        (
            "[[listener]]\nname = \"sub\"\naddress = \"127.0.0.1:2587\"\nmode = \"starttls\"\ntls = \"nope\"\n",
            ":1:1: listener[0] \"sub\", tls: ",
            "no [tls.nope] table",
        ),
        (
            "[[listener]]\nname = \"mta\"\naddress = \"127.0.0.1:2525\"\nmode = \"plain\"\n\n[[rule]]\nname = \"bad_reply\"\nactions = [{ reject = { code = 450, text = \"no\" } }]\n",
            ":8:23: rule #1 \"bad_reply\", actions[0].reject: ",
            "450",
        ),
    ];
    let syntax = (
        "[server]\nhostname = \"mx.test\"\n[[listener]\nname = \"x\"\n",
        ":3:",
        "",
    );
    let cases: Vec<(&str, &str, &str)> = cases.into_iter().chain([syntax]).collect();
    for (i, (text, location, message)) in cases.iter().enumerate() {
        let cfg = dir.path().join(format!("c{i}.toml"));
        fs::write(&cfg, text).unwrap();
        let (code, out) = mta(&["check", "--config", cfg.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{out}");
        let first = out.lines().next().unwrap_or_default();
        assert!(first.contains(&format!("c{i}.toml")), "{first}");
        assert!(first.contains(location), "{location:?} not in {first}");
        assert!(first.contains(message), "{message:?} not in {first}");
    }
}

#[test]
fn explain_shows_the_trace_the_verdict_and_the_outbound_plan() {
    let path = hardening();
    let cfg = path.to_str().unwrap();
    let (code, out) = mta(&[
        "explain",
        "--config",
        cfg,
        "--listener",
        "mta",
        "--from",
        "alice@remote.example",
        "--to",
        "bob@mydomain.com",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("verdict: reject at rcpt by rule allow_only_tls_for_mydomain_com: 550 5.7.1 Accepting only secure delivery (STARTTLS) for mydomain.com"),
        "{out}"
    );
    let (code, out) = mta(&[
        "explain",
        "--config",
        cfg,
        "--listener",
        "submission",
        "--tls",
        "--auth",
        "alice",
        "--from",
        "alice@mydomain.com",
        "--to",
        "dave@example.com",
        "info@mydomain.com",
        "nobody@mydomain.com",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "route:         smtp.example.net:465 [rule use_only_tls11_and_12_when_relaying]"
        ),
        "{out}"
    );
    assert!(out.contains("TLS mode:      implicit"), "{out}");
    assert!(
        out.contains("TLS versions:  TLSv1.2 (asked for TLSv1.1, TLSv1.2"),
        "{out}"
    );
    assert!(out.contains("mta: accept: queued for relay"), "{out}");
    assert!(
        out.contains("mta: accept: local delivery to the Maildir of info@mydomain.com"),
        "{out}"
    );
    assert!(
        out.contains("mta: reject at rcpt: 550 5.1.1 <nobody@mydomain.com>"),
        "{out}"
    );
    let (code, out) = mta(&[
        "explain",
        "--config",
        cfg,
        "--listener",
        "mta",
        "--from",
        "x@remote.example",
        "--to",
        "y@elsewhere.example",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("554 5.7.1 Relay access denied"), "{out}");
    let (code, out) = mta(&[
        "explain",
        "--config",
        cfg,
        "--listener",
        "nope",
        "--from",
        "a@b",
        "--to",
        "c@d",
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("no listener \"nope\" (listeners: mta, submission, submissions)"),
        "{out}"
    );
}

#[test]
fn policy_test_runs_cases_against_the_config_rules() {
    let cases =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/policies/hardening.cases.toml");
    let cfg = hardening();
    let (code, out) = mta(&[
        "policy",
        "test",
        "--config",
        cfg.to_str().unwrap(),
        cases.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("5 cases, 0 failing"), "{out}");

    let dir = TempDir::new("policy-fail");
    let failing = dir.path().join("wrong.cases.toml");
    fs::write(
        &failing,
        "[[case]]\nname = \"wrongly expects acceptance\"\nfacts.connection = { tls = false }\nfacts.recipient = { address = \"bob@mydomain.com\", local = true }\nexpect.decision = \"accept\"\n",
    )
    .unwrap();
    let (code, out) = mta(&[
        "policy",
        "test",
        "--config",
        cfg.to_str().unwrap(),
        failing.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL  wrongly expects acceptance"), "{out}");
    assert!(out.contains("+ decision = \"reject\""), "{out}");
}

#[test]
fn user_add_stores_an_argon2_hash_from_stdin() {
    let dir = TempDir::new("user-add");
    let data = dir.path().join("data");
    let add = |name: &str, password: &str| {
        let mut child = Command::new(bin())
            .args(["user", "add", name, "--data-dir"])
            .arg(&data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), password.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = add("Alice", "correct horse\n");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("added user alice"), "{out}");
    let users = fs::read_to_string(data.join("users")).unwrap();
    assert!(users.starts_with("alice:$argon2id$"), "{users}");
    assert!(!users.contains("correct horse"));
    let (code, out) = add("alice", "battery staple\n");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("replaced user alice"), "{out}");
    assert_eq!(
        fs::read_to_string(data.join("users"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    let (code, out) = add("bad:name", "x\n");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("invalid user name"), "{out}");
    let (code, out) = add("bob", "\n");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("empty password"), "{out}");
}

/// The newcomer's command: `postern-mta` with no arguments in an empty
/// directory serves the embedded default on 2525/2587/2465, creates
/// `./postern-data` with a self-signed certificate, says where it listens
/// and how to add a user, and delivers to postmaster@localhost. Skipped
/// (loudly) when those ports are taken on this machine.
#[test]
fn embedded_default_serves_with_no_arguments() {
    use std::net::TcpListener;
    let free = [2525u16, 2587, 2465]
        .iter()
        .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok());
    if !free {
        eprintln!(
            "SKIPPED: embedded_default_serves_with_no_arguments: ports 2525/2587/2465 are in use"
        );
        return;
    }
    let dir = TempDir::new("default-serve");
    let log = dir.path().join("out.log");
    let out = fs::File::create(&log).unwrap();
    let _child = postern_testkit::ChildGuard::spawn(
        Command::new(bin())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out),
    );
    for p in [2525u16, 2587, 2465] {
        assert!(
            postern_testkit::wait_for_port(([127, 0, 0, 1], p).into(), Duration::from_secs(20)),
            "not listening on {p}: {}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    }
    // The banner is printed right after binding; give it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut text = fs::read_to_string(&log).unwrap();
    while !text.contains("add a user:") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        text = fs::read_to_string(&log).unwrap();
    }
    for needle in [
        "listening on 127.0.0.1:2525 (mta, starttls)",
        "listening on 127.0.0.1:2587 (submission, starttls)",
        "listening on 127.0.0.1:2465 (submissions, implicit)",
        "postern-mta user add alice --data-dir postern-data",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
    assert!(
        dir.path()
            .join("postern-data/tls/self-signed.pem")
            .is_file()
    );
    let mut smtp = common::Smtp::connect(2525).unwrap();
    smtp.cmd("EHLO newcomer.test").unwrap();
    let reply = smtp
        .send(
            "me@remote.test",
            "postmaster@localhost",
            b"Subject: hi\r\n\r\nhello\r\n",
        )
        .unwrap();
    let id = common::queue_id(&reply).unwrap_or_else(|| panic!("{reply}"));
    let maildir = dir
        .path()
        .join("postern-data/mail/localhost/postmaster/new");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !fs::read_dir(&maildir)
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().contains(&id))
        })
        .unwrap_or(false)
    {
        assert!(std::time::Instant::now() < deadline, "not delivered");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tls_report_prints_the_pending_reports_of_the_data_directory() {
    use postern_queue::tlsrpt::TlsRptRecorder;
    use postern_relay::tlsrpt::{Failure, PolicyKey, PolicyType, ResultType, TlsSession};
    let dir = TempDir::new("tls-report");
    let data = dir.path().join("data");
    let (code, out) = mta(&["--data-dir", data.to_str().unwrap(), "tls-report"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.trim(), "[]", "nothing recorded yet");
    // What the runner records (the recorder is its observer), then read
    // back by the command as the server keeps running.
    let recorder = TlsRptRecorder::open(data.join("tlsrpt")).unwrap();
    let sts = PolicyKey::new(PolicyType::Sts, "example.com");
    let none = PolicyKey::new(PolicyType::NoPolicyFound, "example.net");
    let failure = Failure::new(ResultType::CertificateExpired).at("mx.example.com", None);
    recorder
        .record(&[
            TlsSession::success(sts.clone()),
            TlsSession::failed(sts, failure),
            TlsSession::success(none),
        ])
        .unwrap();
    let (code, out) = mta(&["--data-dir", data.to_str().unwrap(), "tls-report"]);
    assert_eq!(code, Some(0), "{out}");
    let reports: serde_json::Value = serde_json::from_str(&out).expect("a JSON array");
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), 2, "{out}");
    let com = &reports[0]["policies"][0];
    assert_eq!(com["policy"]["policy-domain"], "example.com");
    assert_eq!(com["summary"]["total-successful-session-count"], 1);
    assert_eq!(com["summary"]["total-failure-session-count"], 1);
    assert_eq!(
        com["failure-details"][0]["result-type"],
        "certificate-expired"
    );
    assert_eq!(
        com["failure-details"][0]["receiving-mx-hostname"],
        "mx.example.com"
    );
    assert_eq!(
        reports[1]["policies"][0]["policy"]["policy-type"],
        "no-policy-found"
    );
    // A log that is not one is an error naming the file.
    let day = postern_queue::tlsrpt::day_of(postern_queue::unix_now());
    fs::write(TlsRptRecorder::day_file(&data.join("tlsrpt"), day), "{").unwrap();
    let (code, out) = mta(&["--data-dir", data.to_str().unwrap(), "tls-report"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("not a TLS-RPT log"), "{out}");
}

/// `explain --live` against the local DNS of `scripts/dns-test-servers.sh`
/// (zone `sts.dane.test`, unsigned): the MX set and its DNSSEC status, and
/// the MTA-STS policy from the on-disk cache (seeded under the id DNS
/// publishes, so nothing is fetched): `good` is enforced (hosts verified,
/// REQUIRETLS can be met), `nomatch`'s policy leaves no host, `badtxt`
/// has no policy (REQUIRETLS cannot be met).
#[test]
fn explain_live_shows_the_mx_set_the_sts_policy_and_requiretls() {
    use postern_relay::mta_sts::{CachedPolicy, PolicyCache, StsPolicy};
    let Some(resolver) = std::env::var("POSTERN_DNS_RESOLVER")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        postern_testkit::missing("the DNS test servers (POSTERN_DNS_RESOLVER)");
        return;
    };
    let zone = std::env::var("POSTERN_STS_ZONE").unwrap_or_else(|_| "sts.dane.test".into());
    let dir = TempDir::new("explain-live");
    let pki = postern_testkit::dev_pki(&["mx.example"]);
    fs::write(dir.path().join("ca.pem"), &pki.ca_pem).unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("mta.toml");
    fs::write(
        &config,
        format!(
            "[server]\nhostname = \"relay.test\"\ndata_dir = \"data\"\n\
             [[listener]]\nname = \"mta\"\naddress = \"127.0.0.1:2525\"\nmode = \"plain\"\n\
             [dns]\nservers = [\"{resolver}\"]\n\
             [mta_sts]\ntrust_anchors = [\"ca.pem\"]\n"
        ),
    )
    .unwrap();
    let cache = PolicyCache::open(data.join("mta-sts")).unwrap();
    let now = postern_queue::unix_now();
    for (case, mx) in [
        ("good", format!("mx.good.{zone}")),
        ("nomatch", format!("*.{zone}")),
    ] {
        let text = format!("version: STSv1\nmode: enforce\nmx: {mx}\nmax_age: 86400\n");
        let policy = StsPolicy::parse(text.as_bytes()).unwrap();
        let id = format!("{case}1");
        cache
            .store(
                &format!("{case}.{zone}"),
                &CachedPolicy::new(&id, policy, now - 60),
            )
            .unwrap();
    }
    let explain = |domain: &str| {
        let to = format!("bob@{domain}");
        let (code, out) = mta(&[
            "--config",
            config.to_str().unwrap(),
            "explain",
            "--listener",
            "mta",
            "--auth",
            "alice",
            "--from",
            "alice@relay.test",
            "--to",
            &to,
            "--live",
        ]);
        assert_eq!(code, Some(0), "{out}");
        out
    };
    let out = explain(&format!("good.{zone}"));
    for needle in [
        "live plan:".to_owned(),
        format!("MX (insecure): 10 mx.good.{zone}"),
        "MTA-STS cache: id good1".to_owned(),
        format!(
            "host mx.good.{zone} [127.0.3.10:25]: TLS required, certificate verified (PKIX); TLS-RPT policy sts"
        ),
        format!(
            "MTA-STS policy: version: STSv1; mode: enforce; mx: mx.good.{zone}; max_age: 86400"
        ),
        "REQUIRETLS: can be met".to_owned(),
    ] {
        assert!(out.contains(&needle), "{needle:?} missing from\n{out}");
    }
    let out = explain(&format!("nomatch.{zone}"));
    assert!(out.contains("no host may be used now:"), "{out}");
    assert!(out.contains("(4.7.5)"), "{out}");
    // A signed zone: the MX RRset validates; its TLSA records are for the
    // test port (POSTERN_DANE_PORT), so on 25 DANE finds none.
    let out = explain("signed.dane.test");
    assert!(out.contains("MX (secure): 10 mx.signed.dane.test"), "{out}");
    if std::env::var("POSTERN_DANE_PORT").as_deref() == Ok("25") {
        assert!(out.contains("DANE, TLSA: 3 1 1"), "{out}");
    } else {
        assert!(out.contains("DANE not applied: no TLSA records"), "{out}");
    }
    let out = explain(&format!("badtxt.{zone}"));
    assert!(out.contains("MTA-STS cache: nothing cached"), "{out}");
    assert!(
        out.contains("certificate not verified; TLS-RPT policy no-policy-found"),
        "{out}"
    );
    assert!(out.contains("REQUIRETLS: cannot be met"), "{out}");
}
