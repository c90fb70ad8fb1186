//! Interop with real peers: openssl s_client, swaks, Python smtplib,
//! sslscan. A missing peer is a loud SKIPPED, or a failure with
//! POSTERN_REQUIRE_PEERS=1.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use postern_listener::{Mode, TlsSettings};
use postern_testkit::{peer, python_with};

const LIMIT: Duration = Duration::from_secs(30);

fn text(out: &std::process::Output) -> String {
    format!(
        "{}\n--stderr--\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn both(pki: &Pki, settings: Option<TlsSettings>) -> Running {
    let settings = settings.unwrap_or_else(|| TlsSettings::new(vec![pki.spec(&["mx.test"])]));
    Running::start(vec![
        listener(
            "smtp",
            Mode::StartTls { required: false },
            Some(settings.clone()),
        ),
        listener("smtps", Mode::Implicit, Some(settings)),
    ])
}

/// Lines for s_client, which turns LF into CRLF with `-crlf`.
const SMTP_LINES: &[u8] =
    b"EHLO peer.test\nMAIL FROM:<a@test>\nRCPT TO:<b@test>\nDATA\nSubject: s_client\n\nhello\n.\nQUIT\n";

#[test]
fn openssl_s_client_starttls_and_implicit() {
    let Some(openssl) = peer("openssl") else {
        return;
    };
    let pki = Pki::new("s_client", &["mx.test"]);
    let srv = both(&pki, None);
    for (name, starttls) in [("smtp", true), ("smtps", false)] {
        let addr = srv.addr(name).to_string();
        let mut cmd = Command::new(&openssl);
        cmd.args(["s_client", "-connect", &addr, "-servername", "mx.test"]);
        if starttls {
            cmd.args(["-starttls", "smtp"]);
        }
        cmd.args(["-crlf", "-nocommands", "-brief"]);
        let out = run_bounded(&mut cmd, SMTP_LINES, LIMIT);
        let t = text(&out);
        assert!(t.contains("Protocol version: TLSv1.3"), "{name}: {t}");
        assert!(t.contains("250 2.0.0"), "{name}: message accepted: {t}");
        assert!(t.contains("221 "), "{name}: {t}");
        if !starttls {
            assert!(t.contains("220 mx.test ESMTP"), "{name}: {t}");
        }
    }
    let log = srv.log();
    assert_eq!(log.bodies.len(), 2, "{:?}", log.events);
    assert!(
        log.bodies
            .iter()
            .all(|b| b == b"Subject: s_client\r\n\r\nhello\r\n")
    );
    assert!(log.tls_seen.iter().all(Option::is_some));
}

#[test]
fn openssl_without_sni_gets_the_default_certificate() {
    let Some(openssl) = peer("openssl") else {
        return;
    };
    let a = Pki::new("nosni-a", &["a.test"]);
    let b = Pki::new("nosni-b", &["b.test"]);
    let settings = TlsSettings::new(vec![b.spec(&["b.test"]), a.spec(&["a.test"]).as_default()]);
    let srv = Running::start(vec![listener("smtps", Mode::Implicit, Some(settings))]);
    let addr = srv.addr("smtps").to_string();
    let subject = |sni: Option<&str>| {
        let mut cmd = Command::new(&openssl);
        cmd.args(["s_client", "-connect", &addr, "-brief", "-nocommands"]);
        match sni {
            Some(n) => cmd.args(["-servername", n]),
            None => cmd.arg("-noservername"),
        };
        text(&run_bounded(&mut cmd, b"QUIT\r\n", LIMIT))
    };
    let t = subject(None);
    assert!(t.contains("CN = a.test") || t.contains("CN=a.test"), "{t}");
    let t = subject(Some("b.test"));
    assert!(t.contains("CN = b.test") || t.contains("CN=b.test"), "{t}");
}

#[test]
fn openssl_old_versions_and_cbc_only_offers_are_refused() {
    let Some(openssl) = peer("openssl") else {
        return;
    };
    let pki = Pki::new("refuse", &["mx.test"]);
    let srv = both(&pki, None);
    let addr = srv.addr("smtps").to_string();
    let attempt = |args: &[&str]| {
        let mut cmd = Command::new(&openssl);
        cmd.args([
            "s_client",
            "-connect",
            &addr,
            "-servername",
            "mx.test",
            "-brief",
            "-nocommands",
        ]);
        cmd.args(args);
        let out = run_bounded(&mut cmd, b"QUIT\r\n", LIMIT);
        (out.status.success(), text(&out))
    };
    // SECLEVEL=0 lets OpenSSL 3 offer the old versions at all, so the
    // refusal is the server's.
    for v in ["-tls1", "-tls1_1"] {
        let (ok, t) = attempt(&[v, "-cipher", "DEFAULT@SECLEVEL=0"]);
        assert!(!ok && !t.contains("220 "), "{v} accepted: {t}");
        assert!(
            t.contains("protocol version") || t.contains("alert"),
            "{v}: {t}"
        );
    }
    let (ok, t) = attempt(&[
        "-tls1_2",
        "-cipher",
        "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA",
    ]);
    assert!(!ok && !t.contains("220 "), "CBC-only accepted: {t}");
    assert!(t.contains("handshake failure"), "{t}");
    // Control: TLS 1.2 with an AEAD suite works.
    let (_, t) = attempt(&["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]);
    assert!(t.contains("220 mx.test"), "{t}");
}

fn sslscan_accepted(out: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = out
        .lines()
        .filter(|l| l.starts_with("Accepted") || l.starts_with("Preferred"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Preferred TLSv1.2  128 bits  ECDHE-ECDSA-AES128-GCM-SHA256 ...
            (f.len() >= 5).then(|| (f[1].to_owned(), f[4].to_owned()))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn sslscan_sees_exactly_the_restricted_policy() {
    let Some(sslscan) = peer("sslscan") else {
        return;
    };
    let pki = Pki::new("sslscan", &["mx.test"]);
    let settings = TlsSettings::new(vec![pki.spec(&["mx.test"])])
        .with_versions(["TLSv1.2"])
        .with_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384");
    let srv = both(&pki, Some(settings));
    let expected = vec![
        (
            "TLSv1.2".to_owned(),
            "ECDHE-ECDSA-AES128-GCM-SHA256".to_owned(),
        ),
        (
            "TLSv1.2".to_owned(),
            "ECDHE-ECDSA-AES256-GCM-SHA384".to_owned(),
        ),
    ];
    for (name, starttls) in [("smtps", false), ("smtp", true)] {
        let addr = srv.addr(name).to_string();
        let mut cmd = Command::new(&sslscan);
        cmd.args([
            "--no-colour",
            "--no-heartbleed",
            "--no-compression",
            "--no-fallback",
        ]);
        if starttls {
            cmd.arg("--starttls-smtp");
        }
        cmd.arg(&addr);
        let out = run_bounded(&mut cmd, b"", Duration::from_secs(120));
        let t = text(&out);
        assert_eq!(sslscan_accepted(&t), expected, "{name}:\n{t}");
        for v in ["SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.3"] {
            assert!(
                t.lines()
                    .any(|l| l.starts_with(v) && l.contains("disabled")),
                "{name}: {v} not reported disabled:\n{t}"
            );
        }
    }
}

#[test]
fn swaks_starttls_and_implicit() {
    let Some(swaks) = peer("swaks") else { return };
    let pki = Pki::new("swaks", &["mx.test"]);
    let srv = both(&pki, None);
    for (name, flag) in [("smtp", "--tls"), ("smtps", "--tlsc")] {
        let addr = srv.addr(name).to_string();
        let out = run_bounded(
            Command::new(&swaks).args([
                "--server",
                &addr,
                flag,
                "--from",
                "a@test",
                "--to",
                "b@test",
                "--ehlo",
                "swaks.test",
                "--body",
                "swaks body",
                "--timeout",
                "10",
            ]),
            b"",
            LIMIT,
        );
        let t = text(&out);
        assert!(out.status.success(), "{name}: {t}");
        assert!(
            t.contains("<~  250 2.0.0") || t.contains("<~ 250 2.0.0"),
            "{name}: {t}"
        );
        if flag == "--tls" {
            assert!(
                t.contains("STARTTLS") && t.contains("TLS started"),
                "{name}: {t}"
            );
        }
    }
    let log = srv.log();
    assert_eq!(log.bodies.len(), 2);
    assert!(log.tls_seen.iter().all(Option::is_some));
    assert!(
        log.bodies
            .iter()
            .all(|b| String::from_utf8_lossy(b).contains("swaks body"))
    );
}

#[test]
fn python_smtplib_starttls_and_smtp_ssl() {
    let Some(python) = python_with("smtplib") else {
        return;
    };
    let pki = Pki::new("python", &["mx.test"]);
    let srv = both(&pki, None);
    let script = r#"
import smtplib, ssl, sys
host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# The chain is verified against the dev CA; the name is not (127.0.0.1).
ctx = ssl.create_default_context(cafile=sys.argv[4])
ctx.check_hostname = False
if mode == "starttls":
    s = smtplib.SMTP(host, port, local_hostname="py.test", timeout=10)
    s.ehlo()
    assert s.has_extn("starttls")
    s.starttls(context=ctx)
else:
    s = smtplib.SMTP_SSL(host, port, local_hostname="py.test", context=ctx, timeout=10)
s.ehlo()
assert not s.has_extn("starttls")
print("version", s.sock.version())
s.sendmail("a@test", ["b@test"], "Subject: py\r\n\r\nfrom python " + mode + "\r\n")
s.quit()
print("OK")
"#;
    for (name, mode) in [("smtp", "starttls"), ("smtps", "implicit")] {
        let addr = srv.addr(name);
        let out = run_bounded(
            Command::new(&python).args([
                "-c",
                script,
                "127.0.0.1",
                &addr.port().to_string(),
                mode,
                pki.ca().to_str().unwrap(),
            ]),
            b"",
            LIMIT,
        );
        let t = text(&out);
        assert!(out.status.success() && t.contains("OK"), "{name}: {t}");
        assert!(t.contains("version TLSv1.3"), "{name}: {t}");
    }
    let log = srv.log();
    assert_eq!(log.bodies.len(), 2, "{:?}", log.events);
    assert!(String::from_utf8_lossy(&log.bodies[0]).contains("from python starttls"));
    assert!(String::from_utf8_lossy(&log.bodies[1]).contains("from python implicit"));
}
