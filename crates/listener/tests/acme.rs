//! `postern_listener::acme` against Debian's pebble (an RFC 8555 test CA)
//! on loopback high ports ([`postern_testkit::Pebble`]): issuance into
//! owner-only files, a renewal on the same account, a failed challenge
//! (the CA's reason, the files untouched), and the [`Renewer`] retrying
//! while the CA is down, then swapping the issued certificate into a
//! running listener. A missing pebble prints SKIPPED, or fails with
//! POSTERN_REQUIRE_PEERS=1.

#![cfg(feature = "acme")]

mod common;

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use postern_listener::acme::{
    AcmeConfig, AcmeError, AcmeFiles, AcmeState, Renewer, obtain, renew_at,
};
use postern_listener::{CertSpec, Mode, TlsSettings, Validity};
use postern_testkit::{Pebble, dev_pki, free_port};

const DOMAIN: &str = "mx.acme.test";

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "postern-listener-acme-{tag}-{}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(pebble: &Pebble, challenge_port: u16) -> AcmeConfig {
    AcmeConfig::new(vec![DOMAIN.to_owned()], pebble.directory())
        .with_contact(vec![format!("mailto:postmaster@{DOMAIN}")])
        .with_ca_file(Some(pebble.ca_file()))
        .with_challenge_address(SocketAddr::from(([127, 0, 0, 1], challenge_port)))
        .with_retry(Duration::from_secs(1))
}

fn placeholder() -> std::io::Result<(String, String)> {
    let pki = dev_pki(&[DOMAIN]);
    Ok((pki.cert_pem, pki.key_pem))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn issuance_into_owner_only_files_then_renewal_on_the_same_account() {
    let dir = temp("issue");
    let http = free_port();
    let Some(pebble) = Pebble::start(&dir, http, 30) else {
        return;
    };
    let files = AcmeFiles::in_dir(dir.join("acme/default"));
    assert!(files.prepare(placeholder).unwrap());
    assert_eq!(files.state(), AcmeState::Placeholder);
    let rt = runtime();
    let cfg = config(&pebble, http);

    let v = rt.block_on(obtain(&cfg, &files)).unwrap();
    assert!(v.lifetime() <= Duration::from_secs(31), "{v}");
    assert_eq!(
        files.state(),
        AcmeState::Issued {
            validity: v,
            renew_at: renew_at(&v)
        }
    );
    assert_eq!(
        Validity::from_pem(&fs::read(&files.cert).unwrap()).unwrap(),
        v
    );
    assert!(!files.placeholder.exists());
    assert_eq!(mode(&files.dir), 0o700);
    for f in [&files.account, &files.key, &files.cert] {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }

    // A renewal: a new certificate and key, the stored account reused.
    let (cert, key, account) = (
        fs::read(&files.cert).unwrap(),
        fs::read(&files.key).unwrap(),
        fs::read(&files.account).unwrap(),
    );
    rt.block_on(obtain(&cfg, &files)).unwrap();
    assert_ne!(fs::read(&files.cert).unwrap(), cert);
    assert_ne!(fs::read(&files.key).unwrap(), key);
    assert_eq!(fs::read(&files.account).unwrap(), account);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_challenge_names_the_domain_and_the_cas_reason_and_keeps_the_files() {
    let dir = temp("fail");
    // Pebble validates on one port, the responder listens on another.
    let Some(pebble) = Pebble::start(&dir, free_port(), 30) else {
        return;
    };
    let files = AcmeFiles::in_dir(dir.join("acme/default"));
    files.prepare(placeholder).unwrap();
    let before = fs::read(&files.cert).unwrap();
    let e = runtime()
        .block_on(obtain(&config(&pebble, free_port()), &files))
        .unwrap_err();
    let AcmeError::Challenge { domain, detail } = &e else {
        panic!("{e:?}");
    };
    assert_eq!(domain, DOMAIN);
    assert!(
        detail.to_ascii_lowercase().contains("connection refused"),
        "{e}"
    );
    assert!(
        e.to_string().starts_with(&format!(
            "the CA could not validate {DOMAIN} over http-01: "
        )),
        "{e}"
    );
    assert_eq!(fs::read(&files.cert).unwrap(), before);
    assert_eq!(files.state(), AcmeState::Placeholder);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn the_renewer_retries_while_the_ca_is_down_then_swaps_the_certificate_in() {
    let dir = temp("renewer");
    let http = free_port();
    let Some(mut pebble) = Pebble::start(&dir, http, 30) else {
        return;
    };
    pebble.down();
    let files = AcmeFiles::in_dir(dir.join("acme/default"));
    files.prepare(placeholder).unwrap();
    let settings = TlsSettings::new(vec![CertSpec::files(&[DOMAIN], &files.cert, &files.key)]);
    let srv = Running::start(vec![listener("smtps", Mode::Implicit, Some(settings))]);
    let addr = srv.addr("smtps");
    let served = || {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut tls = tls_connect(tcp, DOMAIN, client_config(None)).unwrap();
        assert!(read_reply(&mut tls).starts_with("220"));
        served_cert(&tls)
    };
    let placeholder_der = der(&fs::read_to_string(&files.cert).unwrap());
    assert_eq!(served(), placeholder_der);

    let rt = runtime();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let renewer = Renewer::new(
        "default",
        config(&pebble, http),
        files.clone(),
        vec!["smtps".to_owned()],
    );
    let task = rt.spawn(renewer.run(srv.server.clone(), stopped));
    // The CA is down: attempts fail, the placeholder keeps serving.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(files.state(), AcmeState::Placeholder);
    assert_eq!(served(), placeholder_der);

    // The CA is back: the next retry (backoff 1, 2, 4 s) issues, and the
    // listener serves the new certificate without a restart.
    pebble.up();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(files.state(), AcmeState::Issued { .. }) {
        assert!(
            Instant::now() < deadline,
            "no issuance after the CA came back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let issued = der(&fs::read_to_string(&files.cert).unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while served() != issued {
        assert!(
            Instant::now() < deadline,
            "the issued certificate is not served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.send(true).unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the renewer stops on shutdown")
            .unwrap();
    });
    let _ = fs::remove_dir_all(&dir);
}
