//! The tokio driver against scripted peers (tokio listeners in the test):
//! response injection, timeouts, MX fallback, pre-connect policy errors.

// These tests need the driver; the sans-IO core is tested without it
// (`cargo test -p postern-relay --no-default-features`).
#![cfg(feature = "tokio")]

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postern_proto::{ForwardPath, Host, Mailbox, ReversePath, TlsVersion};
use postern_relay::{
    Connection, Connector, Message, Phase, Relay, RelayError, Route, SessionConfig, StaticResolver,
    Target, Timeouts, TlsMode, TlsPolicy, TlsRequirement,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(postern_relay::default_provider())
}

fn session() -> SessionConfig {
    let mut c = SessionConfig::new(Host::parse("client.example").unwrap().into_owned());
    c.timeouts = Timeouts::uniform(Duration::from_secs(5));
    c
}

fn message() -> Message {
    Message::new(
        ReversePath::Mailbox(Mailbox::parse("alice@example.org").unwrap().into_owned()),
        [ForwardPath::Mailbox(
            Mailbox::parse("bob@example.net").unwrap().into_owned(),
        )],
        &b"Subject: t\r\n\r\nhello\r\n"[..],
    )
}

/// A small SMTP server: greets with `greeting`, offers `ehlo` extensions,
/// accepts everything, and records the command lines it received.
async fn serve_smtp(
    listener: TcpListener,
    greeting: &'static str,
    ehlo: &'static str,
    log: Arc<Mutex<Vec<String>>>,
) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            return;
        };
        let log = log.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = sock.into_split();
            let mut rd = BufReader::new(rd);
            wr.write_all(greeting.as_bytes()).await.unwrap();
            if !greeting.starts_with("220") {
                return;
            }
            let mut in_data = false;
            let mut line = String::new();
            loop {
                line.clear();
                if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if in_data {
                    if line == ".\r\n" {
                        in_data = false;
                        wr.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
                    }
                    continue;
                }
                log.lock().unwrap().push(line.trim_end().to_owned());
                let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                let reply: &str = match verb.as_str() {
                    "EHLO" => ehlo,
                    "DATA" => {
                        in_data = true;
                        "354 go\r\n"
                    }
                    "QUIT" => {
                        let _ = wr.write_all(b"221 bye\r\n").await;
                        return;
                    }
                    _ => "250 ok\r\n",
                };
                wr.write_all(reply.as_bytes()).await.unwrap();
            }
        });
    }
}

#[tokio::test]
async fn bytes_after_starttls_220_abort_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        sock.write_all(b"220 mx ESMTP\r\n").await.unwrap();
        let mut rd = BufReader::new(&mut sock);
        let mut line = String::new();
        rd.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("EHLO"));
        rd.get_mut()
            .write_all(b"250-mx\r\n250 STARTTLS\r\n")
            .await
            .unwrap();
        line.clear();
        rd.read_line(&mut line).await.unwrap();
        assert_eq!(line, "STARTTLS\r\n");
        // The attack: a reply that a careless client would read inside TLS.
        rd.get_mut()
            .write_all(b"220 go ahead\r\n250-mx\r\n250 AUTH PLAIN\r\n")
            .await
            .unwrap();
        // Whatever the client sends now: it must be nothing (no ClientHello,
        // no MAIL) before it closes.
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut rest)).await;
        rest
    });
    let connector = Connector::new(&TlsPolicy::new(TlsMode::Required), ring()).unwrap();
    let err = Connection::open(addr, "localhost", Arc::new(session()), &connector)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RelayError::ResponseInjection { .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(
        peer.await.unwrap(),
        b"",
        "the client sent nothing after the 220"
    );
}

#[tokio::test]
async fn greeting_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _peer = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(sock);
    });
    let mut s = session();
    s.timeouts = Timeouts::uniform(Duration::from_millis(200));
    let connector = Connector::new(&TlsPolicy::new(TlsMode::None), ring()).unwrap();
    let started = std::time::Instant::now();
    let err = Connection::open(addr, "localhost", Arc::new(s), &connector)
        .await
        .unwrap_err();
    assert_eq!(err, RelayError::Timeout(Phase::Greeting));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn mail_timeout_fails_the_message_transiently() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _peer = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        sock.write_all(b"220 mx\r\n").await.unwrap();
        let mut buf = [0u8; 512];
        let _ = sock.read(&mut buf).await.unwrap();
        sock.write_all(b"250 mx\r\n").await.unwrap();
        let _ = sock.read(&mut buf).await.unwrap(); // MAIL, never answered
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let mut s = session();
    s.timeouts.mail = Duration::from_millis(200);
    let connector = Connector::new(&TlsPolicy::new(TlsMode::None), ring()).unwrap();
    let mut conn = Connection::open(addr, "localhost", Arc::new(s), &connector)
        .await
        .unwrap();
    let r = conn.send(message()).await;
    assert_eq!(
        r.recipients[0].outcome,
        Err(RelayError::Timeout(Phase::Mail))
    );
    assert!(r.recipients[0].is_transient());
    assert!(!conn.is_usable());
}

#[tokio::test]
async fn mx_hosts_in_preference_order_next_on_failure() {
    // Three MX hosts on one port and three loopback addresses: the best
    // greets with 421, the second refuses connections, the third delivers.
    let good = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = good.local_addr().unwrap().port();
    let busy = TcpListener::bind(("127.0.0.3", port)).await.unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let busy_log = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(serve_smtp(
        good,
        "220 mx3\r\n",
        "250-mx3\r\n250 PIPELINING\r\n",
        log.clone(),
    ));
    tokio::spawn(serve_smtp(busy, "421 4.3.2 busy\r\n", "", busy_log.clone()));
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let resolver = StaticResolver::new()
        .with_mx(
            "example.net",
            [
                (30, "mx3.example.net"),
                (10, "mx1.example.net"),
                (20, "mx2.example.net"),
            ],
        )
        .with_host("mx1.example.net", [ip("127.0.0.3")])
        .with_host("mx2.example.net", [ip("127.0.0.2")])
        .with_host("mx3.example.net", [ip("127.0.0.1")]);
    let relay = Relay::new(session(), ring(), Arc::new(resolver));
    let route = Route::new(
        Target::Mx {
            domain: "example.net".into(),
            port,
        },
        TlsPolicy::new(TlsMode::Opportunistic),
    );
    let results = relay.deliver(&route, vec![message(), message()]).await;
    assert_eq!(results.len(), 2);
    for r in &results {
        assert!(r.all_delivered(), "{r:?}");
        assert_eq!(
            r.server.as_deref(),
            Some(&*format!("mx3.example.net[127.0.0.1]:{port}"))
        );
        assert!(
            r.tls.is_none(),
            "mx3 offers no STARTTLS: opportunistic goes plaintext"
        );
    }
    let log = log.lock().unwrap().clone();
    // One connection, two transactions, one QUIT.
    assert_eq!(
        log.iter().filter(|l| l.starts_with("EHLO")).count(),
        1,
        "{log:?}"
    );
    assert_eq!(
        log.iter().filter(|l| l.starts_with("MAIL")).count(),
        2,
        "{log:?}"
    );
    assert_eq!(log.last().map(String::as_str), Some("QUIT"));
    assert!(busy_log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn unknown_domain_and_null_mx_are_permanent() {
    let resolver = StaticResolver::new().with_mx("null.example", [(0, ".")]);
    let relay = Relay::new(session(), ring(), Arc::new(resolver));
    for (domain, want) in [
        (
            "nowhere.example",
            RelayError::NoSuchDomain("nowhere.example".into()),
        ),
        ("null.example", RelayError::NullMx("null.example".into())),
    ] {
        let route = Route::new(
            Target::Mx {
                domain: domain.into(),
                port: 25,
            },
            TlsPolicy::new(TlsMode::Opportunistic),
        );
        let r = relay.deliver(&route, vec![message()]).await;
        assert_eq!(r[0].recipients[0].outcome, Err(want));
        assert!(r[0].recipients[0].is_permanent());
    }
}

#[tokio::test]
async fn unusable_version_set_fails_before_connecting() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let accepted = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_millis(500), listener.accept())
            .await
            .is_ok()
    });
    let relay = Relay::new(session(), ring(), Arc::new(StaticResolver::new()));
    let route = Route::new(
        Target::SmartHost {
            host: "127.0.0.1".into(),
            port: addr.port(),
            auth: None,
            allow_plaintext_auth: false,
        },
        TlsPolicy::new(TlsMode::Required).with_versions([TlsVersion::Tls10, TlsVersion::Tls11]),
    );
    let r = relay.deliver(&route, vec![message()]).await;
    assert!(matches!(
        r[0].recipients[0].outcome,
        Err(RelayError::NoUsableTlsVersion { .. })
    ));
    assert!(!accepted.await.unwrap(), "no connection was made");
}

#[tokio::test]
async fn credentials_never_go_to_mx_hosts() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(serve_smtp(
        listener,
        "220 mx\r\n",
        "250-mx\r\n250 AUTH PLAIN\r\n",
        log.clone(),
    ));
    let mut s = session();
    s.auth = Some(postern_relay::RelayCredentials::new("u", "p"));
    s.tls = TlsRequirement::Plain;
    s.allow_plaintext_auth = true;
    let resolver = StaticResolver::new().with_host("example.net", ["127.0.0.1".parse().unwrap()]);
    let relay = Relay::new(s, ring(), Arc::new(resolver));
    let route = Route::new(
        Target::Mx {
            domain: "example.net".into(),
            port,
        },
        TlsPolicy::new(TlsMode::None),
    );
    let r = relay.deliver(&route, vec![message()]).await;
    assert!(r[0].all_delivered(), "{r:?}");
    assert!(!log.lock().unwrap().iter().any(|l| l.starts_with("AUTH")));
}
