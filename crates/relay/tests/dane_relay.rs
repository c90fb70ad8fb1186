//! DANE end to end (issue 13): `Relay::deliver` with a [`DnssecResolver`]
//! against the signed test zones of `scripts/dns-test-servers.sh` and
//! aiosmtpd peers on the loopback addresses the zones point at, in both
//! DNSSEC modes:
//! - `resolver`: Unbound validates, the relay trusts its AD bit;
//! - `validate`: Unbound is out of the path, the relay queries NSD
//!   directly and validates from the zone's trust anchor itself.
//!
//! | case | expected |
//! |---|---|
//! | signed zone, matching TLSA (DANE-EE, DANE-TA) | delivered, DANE-authenticated |
//! | signed zone, mismatching TLSA | deferred, nothing sent |
//! | bogus signatures | deferred, no connection |
//! | unsigned zone | the fallback (opportunistic) |
//! | TLSA SERVFAIL (bad TLSA signature) | deferred, no connection |
//! | signed MX, unsigned address record | no DANE: the fallback |
//! | validated TLSA records, none usable | TLS required, not authenticated |
//! | `dane-only` vs a peer without STARTTLS | nothing sent |
//! | `dane-only` vs an unsigned zone | nothing sent, no connection |
//!
//! Each case also checks the TLS-RPT session it reports (RFC 8460 §4.3.2.1):
//! a success under the TLSA policy naming its records; `tlsa-invalid` for a
//! mismatch and for records all unusable (delivered all the same);
//! `dnssec-invalid` for bogus data the relay validated itself; and
//! `dane-required` for `dane-only` without DANE.
//!
//! Without the DNS environment every test is SKIPPED loudly; with
//! POSTERN_REQUIRE_PEERS=1 it fails instead.

#![cfg(all(feature = "hickory", any(feature = "aws-lc-rs", feature = "ring")))]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use postern_proto::{ForwardPath, Host, Mailbox, ReversePath};
use postern_relay::dane::TlsaRecord;
use postern_relay::tlsrpt::{PolicyType, ResultType, TlsSession};
use postern_relay::{
    DaneRefusal, DnssecConfig, DnssecMode, DnssecResolver, Message, MessageResult, Relay,
    RelayError, Route, SessionConfig, Target, Timeouts, TlsMode, TlsPolicy,
};
use postern_testkit::{ChildGuard, missing, python_with, wait_for_port};

/// The peers listen on fixed addresses and ports: one case at a time.
static SERIAL: Mutex<()> = Mutex::new(());

struct Env {
    resolver: SocketAddr,
    auth: SocketAddr,
    anchor_key: PathBuf,
    zone: String,
    port: u16,
    cert: PathBuf,
    key: PathBuf,
    tlsa_good: TlsaRecord,
    tlsa_ca: TlsaRecord,
    python: PathBuf,
}

fn env() -> Option<Env> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(resolver) = var("POSTERN_DNS_RESOLVER") else {
        missing(
            "the DNS test servers (POSTERN_DNS_RESOLVER unset: eval \"$(scripts/dns-test-servers.sh)\")",
        );
        return None;
    };
    let get = |name: &str| {
        var(name).unwrap_or_else(|| panic!("{name} unset, but POSTERN_DNS_RESOLVER is set"))
    };
    let python = python_with("aiosmtpd")?;
    Some(Env {
        resolver: resolver.parse().expect("POSTERN_DNS_RESOLVER is ADDR:PORT"),
        auth: get("POSTERN_DNS_AUTH")
            .parse()
            .expect("POSTERN_DNS_AUTH is ADDR:PORT"),
        anchor_key: get("POSTERN_DNS_TRUST_ANCHOR_KEY").into(),
        zone: get("POSTERN_DANE_ZONE"),
        port: get("POSTERN_DANE_PORT").parse().expect("a port"),
        cert: get("POSTERN_DANE_CERT").into(),
        key: get("POSTERN_DANE_KEY").into(),
        tlsa_good: get("POSTERN_DANE_TLSA_GOOD")
            .parse()
            .expect("a TLSA record"),
        tlsa_ca: get("POSTERN_DANE_TLSA_CA").parse().expect("a TLSA record"),
        python,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Resolver,
    Validate,
}

/// An aiosmtpd peer and its log.
struct Peer {
    _child: ChildGuard,
    log: PathBuf,
}

impl Peer {
    fn start(env: &Env, ip: &str, mode: &str) -> Peer {
        let addr = SocketAddr::new(ip.parse().unwrap(), env.port);
        let dir = std::env::temp_dir().join(format!("postern-dane-relay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("{ip}.jsonl"));
        let _ = std::fs::remove_file(&log);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/smtpd.py");
        let child = ChildGuard::spawn(
            Command::new(&env.python)
                .arg(script)
                .args([
                    "--addr",
                    ip,
                    "--port",
                    &env.port.to_string(),
                    "--mode",
                    mode,
                ])
                .arg("--cert")
                .arg(&env.cert)
                .arg("--key")
                .arg(&env.key)
                .arg("--log")
                .arg(&log)
                .stdin(Stdio::null())
                .stderr(std::fs::File::create(log.with_extension("stderr")).unwrap()),
        );
        assert!(
            wait_for_port(addr, Duration::from_secs(15)),
            "aiosmtpd on {addr} did not start"
        );
        Peer { _child: child, log }
    }

    fn events(&self, kind: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("\"event\": \"{kind}\"")))
            .count()
    }
}

fn relay(env: &Env, mode: Mode) -> Relay {
    let config = match mode {
        Mode::Resolver => DnssecConfig::new([env.resolver]),
        Mode::Validate => DnssecConfig::new([env.auth]).with_mode(DnssecMode::Validate {
            trust_anchor: Some(env.anchor_key.clone()),
        }),
    }
    .with_timeouts(Duration::from_secs(2), Duration::from_secs(8));
    let resolver = Arc::new(DnssecResolver::new(config).expect("resolver"));
    let mut session = SessionConfig::new(Host::parse("relay.test").unwrap().into_owned());
    session.timeouts = Timeouts::uniform(Duration::from_secs(10));
    let provider = Arc::new(postern_relay::default_provider());
    Relay::new(session, provider, resolver.clone()).with_dane_resolver(resolver)
}

fn deliver(env: &Env, mode: Mode, domain: &str, tls: TlsMode) -> MessageResult {
    deliver_reporting(env, mode, domain, tls).0
}

/// [`deliver`], with the TLS-RPT sessions (RFC 8460) the delivery tried.
fn deliver_reporting(
    env: &Env,
    mode: Mode,
    domain: &str,
    tls: TlsMode,
) -> (MessageResult, Vec<TlsSession>) {
    let domain = format!("{domain}.{}", env.zone);
    let message = Message::new(
        ReversePath::Mailbox(Mailbox::parse("alice@relay.test").unwrap().into_owned()),
        [ForwardPath::Mailbox(
            Mailbox::parse(&format!("bob@{domain}"))
                .unwrap()
                .into_owned(),
        )],
        &b"Subject: DANE\r\n\r\nhello\r\n"[..],
    );
    let route = Route::new(Target::mx(domain, env.port), TlsPolicy::new(tls));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut delivery = runtime.block_on(relay(env, mode).deliver_reporting(&route, vec![message]));
    let result = delivery.results.pop().expect("one result");
    (result, delivery.tls_sessions)
}

/// A failure's result type and reason code.
type Reported = Option<(ResultType, Option<String>)>;

/// The one TLS-RPT session of a delivery: its policy type, its policy
/// strings, and its result type with reason code (`None`: success).
fn only_session(sessions: Vec<TlsSession>) -> (PolicyType, Vec<String>, Reported) {
    let [session] = sessions.try_into().expect("one TLS-RPT session");
    let failure = session
        .failure
        .map(|f| (f.result_type, f.failure_reason_code));
    (
        session.policy.policy_type,
        session.policy.policy_string.clone(),
        failure,
    )
}

fn error(result: &MessageResult) -> &RelayError {
    result.recipients[0]
        .outcome
        .as_ref()
        .expect_err("not delivered")
}

/// Runs `case` in both modes, one case at a time.
fn both_modes(case: impl Fn(&Env, Mode)) {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    for mode in [Mode::Resolver, Mode::Validate] {
        case(&env, mode);
    }
}

#[test]
fn signed_matching_tlsa_delivers_dane_authenticated() {
    both_modes(|env, mode| {
        for (domain, ip, record) in [
            ("signed", "127.0.1.1", &env.tlsa_good),
            ("ta.signed", "127.0.1.2", &env.tlsa_ca),
        ] {
            let peer = Peer::start(env, ip, "starttls");
            let (result, sessions) = deliver_reporting(env, mode, domain, TlsMode::dane());
            assert!(result.all_delivered(), "{mode:?} {domain}: {result:?}");
            // TLS-RPT: a success under the TLSA policy, its records named.
            let (kind, strings, failure) = only_session(sessions);
            assert_eq!(
                (kind, failure),
                (PolicyType::Tlsa, None),
                "{mode:?} {domain}"
            );
            assert_eq!(strings, [record.to_string()], "{mode:?} {domain}");
            let tls = result.tls.as_ref().expect("TLS");
            let matched = tls.dane.as_ref().expect("DANE-authenticated");
            assert_eq!(matched.record(), record, "{mode:?} {domain}");
            assert!(tls.to_string().contains("(DANE: "), "{tls}");
            assert_eq!(peer.events("DATA"), 1);
        }
    });
}

#[test]
fn signed_mismatching_tlsa_defers_with_nothing_sent() {
    both_modes(|env, mode| {
        let peer = Peer::start(env, "127.0.1.3", "starttls");
        let (result, sessions) = deliver_reporting(env, mode, "mismatch.signed", TlsMode::dane());
        let (kind, _, failure) = only_session(sessions);
        assert_eq!(kind, PolicyType::Tlsa);
        assert_eq!(
            failure,
            Some((
                ResultType::TlsaInvalid,
                Some("no-matching-tlsa-record".into())
            )),
            "{mode:?}"
        );
        let e = error(&result);
        assert!(e.is_transient(), "{mode:?}: {e:?}");
        assert!(
            matches!(e, RelayError::TlsHandshake(r) if r.contains("DANE authentication failed")),
            "{mode:?}: {e:?}"
        );
        assert_eq!(peer.events("MAIL"), 0, "{mode:?}: nothing may be sent");
    });
}

#[test]
fn bogus_zone_defers_without_connecting() {
    both_modes(|env, mode| {
        let peer = Peer::start(env, "127.0.1.4", "starttls");
        let (result, sessions) = deliver_reporting(env, mode, "bogus", TlsMode::dane());
        let e = error(&result);
        assert!(e.is_transient(), "{mode:?}: {e:?}");
        // Behind the validating resolver bogus data is SERVFAIL; the
        // in-process validator names it, and TLS-RPT reports it.
        match mode {
            Mode::Resolver => {
                assert!(matches!(e, RelayError::Resolve(_)), "{e:?}");
                assert!(sessions.is_empty(), "{sessions:?}");
            }
            Mode::Validate => {
                assert!(
                    matches!(e, RelayError::Dane(DaneRefusal::Dnssec { .. })),
                    "{e:?}"
                );
                let (kind, _, failure) = only_session(sessions);
                assert_eq!(kind, PolicyType::Tlsa);
                assert_eq!(failure, Some((ResultType::DnssecInvalid, None)));
            }
        }
        assert_eq!(peer.events("EHLO"), 0, "{mode:?}: no connection");
    });
}

#[test]
fn unsigned_zone_gets_the_fallback() {
    both_modes(|env, mode| {
        let peer = Peer::start(env, "127.0.1.5", "starttls");
        let result = deliver(env, mode, "unsigned", TlsMode::dane());
        assert!(result.all_delivered(), "{mode:?}: {result:?}");
        let tls = result.tls.as_ref().expect("opportunistic TLS");
        assert_eq!((tls.dane.as_ref(), tls.verified), (None, false), "{tls}");
        assert_eq!(peer.events("DATA"), 1);

        // dane-only: nothing goes to an unsigned destination.
        let (result, sessions) = deliver_reporting(env, mode, "unsigned", TlsMode::DaneOnly);
        let (kind, _, failure) = only_session(sessions);
        assert_eq!(kind, PolicyType::Tlsa);
        assert_eq!(failure, Some((ResultType::DaneRequired, None)), "{mode:?}");
        let e = error(&result);
        assert!(
            matches!(e, RelayError::Dane(DaneRefusal::NotAuthenticated { .. })),
            "{mode:?}: {e:?}"
        );
        assert!(e.is_transient());
        assert_eq!(peer.events("DATA"), 1, "nothing more was sent");
    });
}

#[test]
fn tlsa_servfail_defers_without_connecting() {
    both_modes(|env, mode| {
        let peer = Peer::start(env, "127.0.1.6", "starttls");
        let result = deliver(env, mode, "servfail", TlsMode::dane());
        let e = error(&result);
        assert!(e.is_transient(), "{mode:?}: {e:?}");
        assert!(
            matches!(
                e,
                RelayError::Dane(DaneRefusal::TlsaLookup { .. } | DaneRefusal::Dnssec { .. })
            ),
            "{mode:?}: {e:?}"
        );
        assert_eq!(peer.events("EHLO"), 0, "{mode:?}: no connection");
    });
}

#[test]
fn signed_mx_with_unsigned_address_gets_no_dane() {
    both_modes(|env, mode| {
        // insecure-host.signed's MX is mx.unsigned, at 127.0.1.5.
        let peer = Peer::start(env, "127.0.1.5", "starttls");
        let result = deliver(env, mode, "insecure-host.signed", TlsMode::dane());
        assert!(result.all_delivered(), "{mode:?}: {result:?}");
        let tls = result.tls.as_ref().expect("opportunistic TLS");
        assert_eq!(tls.dane, None, "{mode:?}: {tls}");
        assert_eq!(peer.events("DATA"), 1);
    });
}

#[test]
fn unusable_tlsa_records_require_tls_without_authentication() {
    both_modes(|env, mode| {
        {
            let peer = Peer::start(env, "127.0.1.7", "starttls");
            let (result, sessions) =
                deliver_reporting(env, mode, "unusable.signed", TlsMode::dane());
            assert!(result.all_delivered(), "{mode:?}: {result:?}");
            // TLS-RPT: tlsa-invalid under the TLSA policy, though delivered.
            let (kind, strings, failure) = only_session(sessions);
            assert_eq!(kind, PolicyType::Tlsa);
            assert!(!strings.is_empty());
            assert_eq!(
                failure,
                Some((
                    ResultType::TlsaInvalid,
                    Some("all-tlsa-records-unusable".into())
                )),
                "{mode:?}"
            );
            let tls = result.tls.as_ref().expect("TLS");
            assert_eq!((tls.dane.as_ref(), tls.verified), (None, false), "{tls}");
            assert_eq!(peer.events("DATA"), 1);
        }
        // The same host without STARTTLS: no plaintext delivery, and
        // starttls-not-supported reported.
        let peer = Peer::start(env, "127.0.1.7", "plain");
        let (result, sessions) = deliver_reporting(env, mode, "unusable.signed", TlsMode::dane());
        assert!(error(&result).is_transient(), "{mode:?}: {result:?}");
        let (kind, _, failure) = only_session(sessions);
        assert_eq!(kind, PolicyType::Tlsa);
        assert_eq!(
            failure,
            Some((ResultType::StarttlsNotSupported, None)),
            "{mode:?}"
        );
        assert_eq!(peer.events("MAIL"), 0, "{mode:?}: nothing may be sent");
    });
}

#[test]
fn dane_only_against_a_peer_without_starttls_sends_nothing() {
    both_modes(|env, mode| {
        let peer = Peer::start(env, "127.0.1.1", "plain");
        let result = deliver(env, mode, "signed", TlsMode::DaneOnly);
        let e = error(&result);
        assert!(e.is_transient(), "{mode:?}: {e:?}");
        assert_eq!(peer.events("MAIL"), 0, "{mode:?}: nothing may be sent");
        // The plain `dane` mode too: a signed host with usable TLSA records
        // never gets mail in plaintext.
        let result = deliver(env, mode, "signed", TlsMode::dane());
        assert!(error(&result).is_transient(), "{mode:?}");
        assert_eq!(peer.events("MAIL"), 0, "{mode:?}: nothing may be sent");
    });
}

/// The relay's IP for a name, so the test's assumptions about the zones
/// are checked where they fail first.
#[test]
fn zones_point_at_the_peers() {
    let Some(env) = env() else { return };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let resolver = DnssecResolver::new(DnssecConfig::new([env.resolver])).unwrap();
    let ips = runtime
        .block_on(postern_relay::DaneResolver::ips_dnssec(
            &resolver,
            &format!("mx.signed.{}", env.zone),
        ))
        .unwrap();
    assert_eq!(ips.records, [IpAddr::from([127, 0, 1, 1])]);
    assert!(ips.status.is_secure(), "{ips:?}");
}

/// The QTYPE of a DNS query: after the 12-octet header, the QNAME's
/// labels, then two octets.
fn qtype(query: &[u8]) -> Option<u16> {
    let mut i = 12;
    loop {
        let len = usize::from(*query.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        i += len;
    }
    Some(u16::from_be_bytes([*query.get(i)?, *query.get(i + 1)?]))
}

/// A UDP proxy in front of NSD that drops every DNSKEY query, as a
/// nameserver that times out on them: validation cannot finish, which is
/// indeterminate (defer), never bogus (hickory-dns #3932, #3964).
#[test]
fn dnskey_timeouts_are_indeterminate_not_bogus() {
    let Some(env) = env() else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let proxy = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = proxy.local_addr().unwrap();
        let upstream = env.auth;
        let relay_task = {
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    let Ok((n, client)) = proxy.recv_from(&mut buf).await else {
                        return;
                    };
                    let query = buf[..n].to_vec();
                    if qtype(&query) == Some(48) {
                        continue; // DNSKEY: no answer
                    }
                    let proxy = proxy.clone();
                    tokio::spawn(async move {
                        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                        socket.send_to(&query, upstream).await.unwrap();
                        let mut answer = vec![0u8; 4096];
                        if let Ok(Ok(n)) =
                            tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut answer))
                                .await
                        {
                            let _ = proxy.send_to(&answer[..n], client).await;
                        }
                    });
                }
            })
        };
        let config = DnssecConfig::new([addr])
            .with_mode(DnssecMode::Validate {
                trust_anchor: Some(env.anchor_key.clone()),
            })
            .with_timeouts(Duration::from_millis(300), Duration::from_secs(4));
        let resolver = DnssecResolver::new(config).unwrap();
        let answer =
            postern_relay::DaneResolver::mx_dnssec(&resolver, &format!("signed.{}", env.zone))
                .await;
        match &answer {
            Err(e) => assert!(e.to_string().contains("lookup failed"), "{e}"),
            Ok(a) => assert_eq!(
                a.status,
                postern_relay::DnssecStatus::Indeterminate,
                "{a:?}"
            ),
        }
        relay_task.abort();
    });
}
