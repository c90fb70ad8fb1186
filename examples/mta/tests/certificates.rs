//! Sane generated certificates: the self-signed development certificate is
//! valid 90 days, its key is owner-only, it is made again at start when
//! fewer than 30 days are left (or an older version made it valid for
//! decades); `check` warns about any configured certificate that expires
//! within 30 days and fails on an expired one; the running binary serves
//! the 90-day certificate.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{Ports, Server, TempDir, bin, config_text_with_tls, run};
use postern_listener::Validity;
use postern_mta::tls::{
    SELF_SIGNED_RENEW_BEFORE, SELF_SIGNED_VALIDITY, ensure_self_signed_at, generate_valid,
};

const DAY: Duration = Duration::from_secs(86_400);

fn validity(path: &Path) -> Validity {
    Validity::from_pem(&fs::read(path).unwrap()).unwrap()
}

fn names() -> Vec<String> {
    vec!["mx.test".to_owned(), "localhost".to_owned()]
}

#[test]
fn the_self_signed_certificate_is_valid_90_days_with_an_owner_only_key() {
    let dir = TempDir::new("selfsigned-90");
    let now = SystemTime::now();
    let files = ensure_self_signed_at(dir.path(), &names(), now).unwrap();
    let v = validity(&files.cert);
    assert_eq!(SELF_SIGNED_VALIDITY, 90 * DAY);
    let lifetime = v.lifetime();
    // Backdated one hour for clients whose clock is behind.
    assert!(
        lifetime >= 90 * DAY && lifetime <= 90 * DAY + Duration::from_secs(3601),
        "{v}"
    );
    assert!(v.not_before <= now && !v.is_expired(now), "{v}");
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&files.key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key mode {mode:o}");
}

#[test]
fn it_is_kept_while_more_than_30_days_are_left_and_made_again_after() {
    let dir = TempDir::new("selfsigned-renew");
    let now = SystemTime::now();
    let files = ensure_self_signed_at(dir.path(), &names(), now).unwrap();
    let first = fs::read(&files.cert).unwrap();
    let first_key = fs::read(&files.key).unwrap();

    // 59 days on: 31 left, kept.
    ensure_self_signed_at(dir.path(), &names(), now + 59 * DAY).unwrap();
    assert_eq!(fs::read(&files.cert).unwrap(), first);

    // 61 days on: 29 left (< 30), a new certificate and a new key.
    let later = now + 61 * DAY;
    assert!(validity(&files.cert).remaining(later) < SELF_SIGNED_RENEW_BEFORE);
    ensure_self_signed_at(dir.path(), &names(), later).unwrap();
    assert_ne!(fs::read(&files.cert).unwrap(), first);
    assert_ne!(fs::read(&files.key).unwrap(), first_key);
    let v = validity(&files.cert);
    assert!(v.remaining(later) > 89 * DAY, "{v}");

    // An expired one is made again too.
    let much_later = later + 200 * DAY;
    ensure_self_signed_at(dir.path(), &names(), much_later).unwrap();
    assert!(!validity(&files.cert).is_expired(much_later));
}

#[test]
fn a_decades_long_certificate_from_an_older_version_is_replaced() {
    let dir = TempDir::new("selfsigned-old");
    let now = SystemTime::now();
    // What earlier versions generated: rcgen's default, 1975 to 4096.
    let (cert, key) = generate_valid(
        &names(),
        SystemTime::UNIX_EPOCH + 5 * 365 * DAY,
        now + 2000 * 365 * DAY,
    )
    .unwrap();
    fs::write(dir.path().join("self-signed.pem"), cert).unwrap();
    fs::write(dir.path().join("self-signed.key"), key).unwrap();
    let files = ensure_self_signed_at(dir.path(), &names(), now).unwrap();
    assert!(validity(&files.cert).lifetime() <= 91 * DAY);
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
