//! Sane generated certificates in the MTA (the 90-day validity, the
//! owner-only key and the regeneration under 30 days left or after an
//! older version's decades-long certificate are tested in
//! `postern_listener::self_signed`): `check` warns about any configured certificate that expires
//! within 30 days and fails on an expired one; the running binary serves
//! the 90-day certificate.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{Ports, Server, TempDir, bin, config_text_with_tls, run};
use postern_listener::Validity;
use postern_listener::self_signed::generate_self_signed_valid as generate_valid;

const DAY: Duration = Duration::from_secs(86_400);

fn names() -> Vec<String> {
    vec!["mx.test".to_owned(), "localhost".to_owned()]
}

fn check(dir: &Path, tls: &str) -> (Option<i32>, String) {
    let config = dir.join("postern.toml");
    let text = config_text_with_tls(Ports::free(), &dir.join("data"), "", tls);
    fs::write(&config, text).unwrap();
    run(
        Command::new(bin()).args(["check", "--config", config.to_str().unwrap()]),
        Duration::from_secs(60),
    )
}

fn files_expiring_in(dir: &Path, days: i64) -> String {
    let now = SystemTime::now();
    let after = if days >= 0 {
        now + DAY * u32::try_from(days).unwrap()
    } else {
        now - DAY * u32::try_from(-days).unwrap()
    };
    let (cert, key) = generate_valid(&names(), now - 100 * DAY, after).unwrap();
    let (c, k) = (
        dir.join(format!("c{days}.pem")),
        dir.join(format!("k{days}.pem")),
    );
    fs::write(&c, cert).unwrap();
    fs::write(&k, key).unwrap();
    format!(
        "certificate = \"{}\"\nkey = \"{}\"",
        c.display(),
        k.display()
    )
}

#[test]
fn check_warns_about_a_certificate_that_expires_soon_and_fails_on_an_expired_one() {
    let dir = TempDir::new("check-expiry");
    let (code, out) = check(dir.path(), &files_expiring_in(dir.path(), 200));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("(199 days left)") || out.contains("(200 days left)"),
        "{out}"
    );
    assert!(!out.contains("expires in"), "{out}");

    let (code, out) = check(dir.path(), &files_expiring_in(dir.path(), 10));
    assert_eq!(code, Some(0), "a warning, not an error:\n{out}");
    assert!(
        out.contains("warning: certificate ") && out.contains(" expires in 9 days, at "),
        "{out}"
    );

    let (code, out) = check(dir.path(), &files_expiring_in(dir.path(), -1));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(" expired at "), "{out}");
}

#[test]
fn check_describes_the_self_signed_certificate_before_and_after_the_first_start() {
    let dir = TempDir::new("check-selfsigned");
    let (code, out) = check(dir.path(), "certificate = \"self-signed\"");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("self-signed, valid 90 days, made again at start when fewer than 30 are left")
            && out.contains("generated at the next start (none yet)"),
        "{out}"
    );
    // After a start, check reads the certificate on disk; 20 days left is
    // both a warning and a regeneration at the next start.
    let tls = dir.path().join("data/tls");
    let now = SystemTime::now();
    let (cert, key) = generate_valid(&names(), now - 70 * DAY, now + 20 * DAY).unwrap();
    fs::create_dir_all(&tls).unwrap();
    fs::write(tls.join("self-signed.pem"), cert).unwrap();
    fs::write(tls.join("self-signed.key"), key).unwrap();
    let (_, out) = check(dir.path(), "certificate = \"self-signed\"");
    assert!(
        out.contains("generated at the next start (19 days left)"),
        "{out}"
    );
}

#[test]
fn the_running_binary_serves_a_90_day_certificate() {
    let Some(openssl) = postern_testkit::peer("openssl") else {
        return;
    };
    let dir = TempDir::new("selfsigned-served");
    let server = Server::start(dir.path(), "");
    let (_, out) = run(
        Command::new(&openssl)
            .args(["s_client", "-connect"])
            .arg(format!("127.0.0.1:{}", server.ports.submissions))
            .args(["-servername", "mx.test", "-showcerts"])
            .stdin(std::process::Stdio::null()),
        Duration::from_secs(30),
    );
    let start = out.find("-----BEGIN CERTIFICATE-----").expect(&out);
    let v = Validity::from_pem(&out.as_bytes()[start..]).unwrap();
    assert!(v.lifetime() <= 91 * DAY, "{v}");
    assert!(v.remaining(SystemTime::now()) > 89 * DAY, "{v}");
}
