//! The tokio side over real loopback sockets with Rust clients: sessions,
//! STARTTLS in place and its injection guard, implicit TLS, SNI, limits,
//! timeouts, graceful shutdown, certificate reload, client certificates.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use postern_listener::{CertSpec, ClientAuth, Mode, PemSource, TlsSettings};

fn tls_settings(pki: &Pki, names: &[&str]) -> TlsSettings {
    TlsSettings::new(vec![pki.spec(names)])
}

#[test]
fn plain_session_delivers_a_message_and_offers_no_starttls() {
    let srv = Running::start(vec![listener("plain", Mode::Plain, None)]);
    let mut c = Client::connect(srv.addr("plain"));
    assert!(c.reply().starts_with("220 mx.test ESMTP"));
    let ehlo = c.cmd("EHLO client.test");
    assert!(ehlo.starts_with("250-mx.test"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(c.cmd("MAIL FROM:<a@test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<b@test>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    assert!(c.cmd("Subject: x\r\n\r\nhello\r\n.").starts_with("250"));
    assert!(c.cmd("QUIT").starts_with("221"));
    assert!(c.closed());
    let log = srv.log();
    assert_eq!(log.bodies, [b"Subject: x\r\n\r\nhello\r\n".to_vec()]);
    assert!(
        log.events.iter().any(|e| e == "Hello client.test tls=none"),
        "{:?}",
        log.events
    );
}

#[test]
fn starttls_upgrades_in_place_and_drops_injected_commands() {
    let pki = Pki::new("inject", &["mx.test"]);
    let srv = Running::start(vec![listener(
        "smtp",
        Mode::StartTls { required: true },
        Some(tls_settings(&pki, &["mx.test"])),
    )]);
    let mut c = Client::connect(srv.addr("smtp"));
    c.reply();
    let ehlo = c.cmd("EHLO client.test");
    assert!(
        ehlo.contains("250-STARTTLS") || ehlo.contains("250 STARTTLS"),
        "{ehlo}"
    );
    assert!(!ehlo.contains("AUTH"), "no AUTH on plaintext: {ehlo}");
    // Required: MAIL before TLS is refused.
    assert!(
        c.cmd("MAIL FROM:<a@test>").starts_with("530"),
        "TLS required"
    );
    // The injection: both lines in ONE write.
    c.send("STARTTLS\r\nEHLO injected\r\n");
    let r = c.reply();
    assert!(r.starts_with("220"), "{r}");
    let tcp = c.tcp.try_clone().unwrap();
    let mut tls = tls_connect(tcp, "mx.test", client_config(None)).unwrap();
    // No unprompted reply may arrive inside TLS.
    tls.sock
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut b = [0u8; 256];
    match tls.read(&mut b) {
        Ok(n) => panic!(
            "unprompted data inside TLS: {:?}",
            String::from_utf8_lossy(&b[..n])
        ),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
    }
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let ehlo = tls_cmd(&mut tls, "EHLO client.test");
    assert!(!ehlo.contains("STARTTLS"), "not offered again: {ehlo}");
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(tls_cmd(&mut tls, "MAIL FROM:<a@test>").starts_with("250"));
    assert!(tls_cmd(&mut tls, "RCPT TO:<b@test>").starts_with("250"));
    assert!(tls_cmd(&mut tls, "DATA").starts_with("354"));
    assert!(tls_cmd(&mut tls, "hi\r\n.").starts_with("250"));
    assert!(tls_cmd(&mut tls, "QUIT").starts_with("221"));
    let log = srv.log();
    assert!(
        !log.events.iter().any(|e| e.contains("injected")),
        "{:?}",
        log.events
    );
    assert!(
        log.events.iter().any(|e| e == "StartTls { discarded: 15 }"),
        "{:?}",
        log.events
    );
    assert!(
        log.events
            .iter()
            .any(|e| e == "Hello client.test tls=TLSv1.3")
    );
    assert!(log.tls_seen[0].as_deref().unwrap().starts_with("TLS13_"));
}

#[test]
fn implicit_tls_greets_after_handshake_and_plaintext_clients_get_a_clean_close() {
    let pki = Pki::new("implicit", &["mx.test"]);
    let srv = Running::start(vec![listener(
        "smtps",
        Mode::Implicit,
        Some(tls_settings(&pki, &["mx.test"])),
    )]);
    let addr = srv.addr("smtps");

    // A plaintext client: no greeting, the connection just ends.
    let mut plain = Client::connect(addr);
    plain.send("EHLO client.test\r\n");
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut b = [0u8; 512];
    let end = loop {
        match plain.tcp.read(&mut b) {
            Ok(0) => break Ok(()),
            Err(e) => break Err(e),
            Ok(n) => seen.extend_from_slice(&b[..n]),
        }
    };
    // A clean close: FIN, not a reset or a hang.
    assert!(end.is_ok(), "{end:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!String::from_utf8_lossy(&seen).contains("220"), "{seen:?}");

    // The listener still serves TLS clients.
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = tls_connect(tcp, "mx.test", client_config(None)).unwrap();
    assert!(read_reply(&mut tls).starts_with("220 mx.test"));
    let ehlo = tls_cmd(&mut tls, "EHLO client.test");
    assert!(
        !ehlo.contains("STARTTLS") && ehlo.contains("AUTH PLAIN LOGIN"),
        "{ehlo}"
    );
    assert!(tls_cmd(&mut tls, "QUIT").starts_with("221"));
}

#[test]
fn sni_selects_certificate_and_no_sni_gets_the_default() {
    let a = Pki::new("sni-a", &["a.test"]);
    let b = Pki::new("sni-b", &["b.test"]);
    let settings = TlsSettings::new(vec![
        b.spec(&["b.test", "*.wild.test"]),
        a.spec(&["a.test"]).as_default(),
    ]);
    let srv = Running::start(vec![listener("smtps", Mode::Implicit, Some(settings))]);
    let addr = srv.addr("smtps");
    let served = |name: &str| {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let tls = tls_connect(tcp, name, client_config(None)).unwrap();
        served_cert(&tls)
    };
    // An IP address as server name: rustls sends no SNI.
    assert_eq!(served("127.0.0.1"), der(&a.pki.cert_pem));
    assert_eq!(served("b.test"), der(&b.pki.cert_pem));
    assert_eq!(served("B.TEST"), der(&b.pki.cert_pem));
    assert_eq!(served("x.wild.test"), der(&b.pki.cert_pem));
    assert_eq!(served("unknown.test"), der(&a.pki.cert_pem));
}

#[test]
fn per_ip_and_global_limits_send_421_to_the_excess() {
    let mut per_ip = listener("per-ip", Mode::Plain, None);
    per_ip.limits.per_ip = 2;
    let mut global = listener("global", Mode::Plain, None);
    global.limits.global = 2;
    let srv = Running::start(vec![per_ip, global]);
    for (name, code) in [("per-ip", "421 4.7.0"), ("global", "421 4.3.2")] {
        let addr = srv.addr(name);
        let mut first = Client::connect(addr);
        assert!(first.reply().starts_with("220"));
        let mut second = Client::connect(addr);
        assert!(second.reply().starts_with("220"));
        let mut third = Client::connect(addr);
        let r = third.reply();
        assert!(r.starts_with(code), "{name}: {r}");
        assert!(third.closed());
        // A slot frees when a connection ends.
        assert!(first.cmd("QUIT").starts_with("221"));
        assert!(first.closed());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut again = Client::connect(addr);
            let r = again.reply();
            if r.starts_with("220") {
                break;
            }
            assert!(Instant::now() < deadline, "{name}: slot never freed: {r}");
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(second);
    }
}

#[test]
fn tls_handshake_timeout_closes_silent_clients() {
    let pki = Pki::new("hs-timeout", &["mx.test"]);
    let mut implicit = listener(
        "smtps",
        Mode::Implicit,
        Some(tls_settings(&pki, &["mx.test"])),
    );
    implicit.limits.handshake_timeout = Duration::from_millis(500);
    let mut starttls = listener(
        "smtp",
        Mode::StartTls { required: false },
        Some(tls_settings(&pki, &["mx.test"])),
    );
    starttls.limits.handshake_timeout = Duration::from_millis(500);
    let srv = Running::start(vec![implicit, starttls]);

    let started = Instant::now();
    let mut c = Client::connect(srv.addr("smtps"));
    assert!(c.closed(), "implicit: silent client closed");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );

    let mut c = Client::connect(srv.addr("smtp"));
    c.reply();
    c.cmd("EHLO client.test");
    assert!(c.cmd("STARTTLS").starts_with("220"));
    let started = Instant::now();
    assert!(c.closed(), "STARTTLS without handshake closed");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn command_timeout_sends_421() {
    let mut l = listener("plain", Mode::Plain, None);
    l.limits.command_timeout = Duration::from_millis(400);
    let srv = Running::start(vec![l]);
    let mut c = Client::connect(srv.addr("plain"));
    c.reply();
    let started = Instant::now();
    let r = c.reply();
    assert!(r.starts_with("421 4.4.2"), "{r}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(c.closed());
}

/// Slowloris: one octet every 150 ms never completes a command; the
/// command timeout is a deadline from the last reply, so trickled octets do
/// not extend it (they did when it was a per-read timeout).
#[test]
fn command_timeout_is_not_extended_by_trickled_octets() {
    let mut l = listener("plain", Mode::Plain, None);
    l.limits.command_timeout = Duration::from_millis(600);
    let srv = Running::start(vec![l]);
    let mut c = Client::connect(srv.addr("plain"));
    c.reply();
    let started = Instant::now();
    let mut sock = c.tcp.try_clone().unwrap();
    let dripper = std::thread::spawn(move || {
        for b in b"NOOP NOOP NOOP NOOP NOOP NOOP".iter() {
            if sock.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    });
    let r = c.reply();
    let waited = started.elapsed();
    assert!(r.starts_with("421 4.4.2"), "{r}");
    assert!(waited >= Duration::from_millis(500), "{waited:?}");
    assert!(waited < Duration::from_millis(2500), "{waited:?}");
    dripper.join().unwrap();
    // A complete command resets the deadline: a client that answers in
    // time is never cut off.
    let mut ok = Client::connect(srv.addr("plain"));
    ok.reply();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(300));
        assert!(ok.cmd("NOOP").starts_with("250"));
    }
}

#[test]
fn graceful_shutdown_closes_idle_and_finishes_transactions() {
    let recorder = Recorder {
        message_delay: Duration::from_millis(800),
        ..Recorder::default()
    };
    let mut srv = Running::start_with(vec![listener("plain", Mode::Plain, None)], recorder);
    let addr = srv.addr("plain");
    let mut idle = Client::connect(addr);
    idle.reply();
    idle.cmd("EHLO idle.test");
    let mut busy = Client::connect(addr);
    busy.reply();
    busy.cmd("EHLO busy.test");
    assert!(busy.cmd("MAIL FROM:<a@test>").starts_with("250"));
    // A third client whose message is being made durable during shutdown.
    let mut syncing = Client::connect(addr);
    syncing.reply();
    syncing.cmd("EHLO sync.test");
    syncing.cmd("MAIL FROM:<a@test>");
    syncing.cmd("RCPT TO:<b@test>");
    syncing.cmd("DATA");
    syncing.send("slow fsync\r\n.\r\n");
    std::thread::sleep(Duration::from_millis(200));

    let server = srv.server.clone();
    let stopper = std::thread::spawn(move || server.shutdown());
    stopper.join().unwrap();

    let r = idle.reply();
    assert!(r.starts_with("421 4.3.2"), "idle: {r}");
    assert!(idle.closed());
    // The message in flight is acknowledged after the handler's fsync.
    assert!(syncing.reply().starts_with("250"));
    // The open transaction may finish.
    assert!(busy.cmd("RCPT TO:<b@test>").starts_with("250"));
    assert!(busy.cmd("DATA").starts_with("354"));
    assert!(busy.cmd("done\r\n.").starts_with("250"));
    // Then the next command gets 421.
    assert!(busy.cmd("MAIL FROM:<a@test>").starts_with("421 4.3.2"));
    // No new connections.
    std::thread::sleep(Duration::from_millis(200));
    let refused = TcpStream::connect(addr).map(|mut t| {
        t.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut b = [0u8; 16];
        t.read(&mut b).unwrap_or(0)
    });
    assert!(
        matches!(refused, Err(_) | Ok(0)),
        "still accepting: {refused:?}"
    );
    drop(syncing);
    assert!(
        srv.stop(Duration::from_secs(5)),
        "run() returned after the last connection"
    );
    assert_eq!(srv.log().bodies.len(), 2);
}

#[test]
fn shutdown_grace_bounds_a_stalled_transaction() {
    let mut l = listener("plain", Mode::Plain, None);
    l.limits.shutdown_grace = Duration::from_millis(500);
    let mut srv = Running::start(vec![l]);
    let mut c = Client::connect(srv.addr("plain"));
    c.reply();
    c.cmd("EHLO stall.test");
    assert!(c.cmd("MAIL FROM:<a@test>").starts_with("250"));
    let started = Instant::now();
    srv.server.shutdown();
    // The client says nothing more: after the grace, 421 and close.
    let r = c.reply();
    assert!(r.starts_with("421 4.4.2"), "{r}");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert!(srv.stop(Duration::from_secs(5)));
    assert!(
        srv.log()
            .events
            .iter()
            .any(|e| e == "TransactionAborted { reason: Closed }")
    );
}

#[test]
fn certificate_reload_swaps_atomically_and_keeps_old_on_error() {
    let a = Pki::new("reload-a", &["mx.test"]);
    let b = Pki::new("reload-b", &["mx.test"]);
    let dir = std::env::temp_dir().join(format!("postern-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &a.pki.cert_pem).unwrap();
    std::fs::write(&key, &a.pki.key_pem).unwrap();
    let settings = TlsSettings::new(vec![CertSpec::files(&["mx.test"], &cert, &key)]);
    let srv = Running::start(vec![listener("smtps", Mode::Implicit, Some(settings))]);
    let addr = srv.addr("smtps");
    let served = || {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut tls = tls_connect(tcp, "mx.test", client_config(None)).unwrap();
        assert!(read_reply(&mut tls).starts_with("220"));
        served_cert(&tls)
    };
    assert_eq!(served(), der(&a.pki.cert_pem));

    // Files changed on disk, reload re-reads them (the SIGHUP path).
    std::fs::write(&cert, &b.pki.cert_pem).unwrap();
    std::fs::write(&key, &b.pki.key_pem).unwrap();
    srv.server.reload_certificates("smtps", None).unwrap();
    assert_eq!(served(), der(&b.pki.cert_pem));

    // A broken new certificate (key of another cert): refused, old serves.
    let broken = CertSpec::pem(&["mx.test"], a.pki.cert_pem.clone(), b.pki.key_pem.clone());
    let e = srv
        .server
        .reload_certificates("smtps", Some(vec![broken]))
        .unwrap_err();
    assert!(e.to_string().contains("previous ones keep serving"), "{e}");
    assert!(e.to_string().contains("does not fit"), "{e}");
    assert_eq!(served(), der(&b.pki.cert_pem));

    // Explicit new set.
    srv.server
        .reload_certificates("smtps", Some(vec![a.spec(&["mx.test"])]))
        .unwrap();
    assert_eq!(served(), der(&a.pki.cert_pem));

    assert!(srv.server.reload_certificates("nope", None).is_err());
}

#[test]
fn client_certificates_are_verified_when_required() {
    let server_pki = Pki::new("mtls-server", &["mx.test"]);
    let client_pki = postern_testkit::dev_pki(&["client.test"]);
    let mut settings = tls_settings(&server_pki, &["mx.test"]);
    settings.client_auth = ClientAuth::Required {
        roots: PemSource::Inline(client_pki.ca_pem.clone()),
    };
    let srv = Running::start(vec![listener("smtps", Mode::Implicit, Some(settings))]);
    let addr = srv.addr("smtps");

    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let anonymous = tls_connect(tcp, "mx.test", client_config(None)).and_then(|mut t| {
        // TLS 1.3: the refusal comes with the first read.
        let r = read_reply(&mut t);
        if r.is_empty() {
            Err(std::io::Error::other("closed"))
        } else {
            Ok(r)
        }
    });
    assert!(anonymous.is_err(), "anonymous client served: {anonymous:?}");

    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = tls_connect(tcp, "mx.test", client_config(Some(&client_pki))).unwrap();
    assert!(read_reply(&mut tls).starts_with("220"));
    tls_cmd(&mut tls, "EHLO client.test");
    tls_cmd(&mut tls, "MAIL FROM:<a@test>");
    tls_cmd(&mut tls, "RCPT TO:<b@test>");
    tls_cmd(&mut tls, "DATA");
    assert!(tls_cmd(&mut tls, "x\r\n.").starts_with("250"));
    tls.write_all(b"QUIT\r\n").unwrap();
    assert_eq!(srv.log().bodies.len(), 1);
}

#[test]
fn server_cipher_preference_decides_when_asked() {
    let pki = Pki::new("prefer", &["mx.test"]);
    let list = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256";
    let mk = |name: &str, prefer: bool| {
        let settings = tls_settings(&pki, &["mx.test"])
            .with_versions(["TLSv1.2"])
            .with_ciphers(list)
            .with_prefer_server_ciphers(prefer);
        listener(name, Mode::Implicit, Some(settings))
    };
    let srv = Running::start(vec![mk("server-order", true), mk("client-order", false)]);
    // The client prefers AES128.
    let p = provider();
    let mut client_provider = (*p).clone();
    client_provider.cipher_suites = [
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ]
    .iter()
    .map(|c| *p.cipher_suites.iter().find(|s| s.suite() == *c).unwrap())
    .collect();
    let config = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(client_provider))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(AnyCert(provider())))
            .with_no_client_auth(),
    );
    let negotiated = |name: &str| {
        let tcp = TcpStream::connect(srv.addr(name)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let tls = tls_connect(tcp, "mx.test", config.clone()).unwrap();
        tls.conn.negotiated_cipher_suite().unwrap().suite()
    };
    assert_eq!(
        negotiated("server-order"),
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    );
    assert_eq!(
        negotiated("client-order"),
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    );
}

#[test]
fn reject_mode_refuses_pipelined_starttls() {
    let pki = Pki::new("reject", &["mx.test"]);
    let mut l = listener(
        "smtp",
        Mode::StartTls { required: false },
        Some(tls_settings(&pki, &["mx.test"])),
    );
    let mut session = (*l.session).clone();
    session.after_starttls = postern_session::AfterStartTls::Reject;
    l = l.with_session(session);
    let srv = Running::start(vec![l]);
    let mut c = Client::connect(srv.addr("smtp"));
    c.reply();
    c.cmd("EHLO client.test");
    c.send("STARTTLS\r\nEHLO injected\r\n");
    let r = c.reply();
    assert!(r.starts_with("554 5.5.0"), "{r}");
    assert!(c.closed());
    assert!(!srv.log().events.iter().any(|e| e.contains("injected")));
}

#[test]
fn bind_errors_name_the_listener_and_field() {
    let bind = |l: postern_listener::ListenerConfig| {
        postern_listener::Server::bind(
            vec![l],
            std::sync::Arc::new(Recorder::default()),
            provider(),
        )
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    let e = bind(listener("sub", Mode::StartTls { required: true }, None));
    assert_eq!(
        e,
        "listener sub: tls: mode starttls (required) needs TLS settings"
    );
    let mut l = listener("mx", Mode::Plain, None);
    l.limits.per_ip = 0;
    assert_eq!(bind(l), "listener mx: limits.per_ip: must be at least 1");
    let pki = Pki::new("bind-err", &["mx.test"]);
    let mut settings = tls_settings(&pki, &["mx.test"]);
    settings.versions = vec!["SSLv3".into()];
    let e = bind(listener("smtps", Mode::Implicit, Some(settings)));
    assert!(
        e.starts_with("listener smtps: TLS policy:\nerror: tls.versions: SSLv3 not supported"),
        "{e}"
    );

    // A plain listener has no certificates to reload.
    let srv = Running::start(vec![listener("plain", Mode::Plain, None)]);
    assert_eq!(
        srv.server.reload_certificates("plain", None).unwrap_err(),
        postern_listener::ReloadError::NoTls("plain".into())
    );
    assert_eq!(srv.server.active_connections("plain"), Some(0));
}

#[test]
fn ipv6_loopback_listener() {
    let mut l = listener("v6", Mode::Plain, None);
    l.addr = "[::1]:0".parse().unwrap();
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: ipv6_loopback_listener: no ::1 on this machine");
        return;
    }
    let srv = Running::start(vec![l]);
    let mut c = Client::connect(srv.addr("v6"));
    assert!(c.reply().starts_with("220 mx.test"));
    assert!(c.cmd("QUIT").starts_with("221"));
}
