//! MTA-STS end to end (issue 14): `Relay::deliver` with an
//! [`StsResolver`] against real parts:
//! - the local DNS of `scripts/dns-test-servers.sh` (zone `sts.dane.test`,
//!   unsigned, so DANE does not apply and MTA-STS decides), through the
//!   validating Unbound;
//! - Debian's nginx, started here on a high loopback port with a temporary
//!   configuration, serving the policies under a test CA made with rcgen
//!   (the policy host of `badcert` presents a certificate of another CA);
//! - an aiosmtpd peer with STARTTLS for every MX host (all at 127.0.3.10,
//!   one certificate naming them all).
//!
//! The cases are postfix-mta-sts-resolver's:
//!
//! | case | expected |
//! |---|---|
//! | good policy | delivered to a matching MX, certificate verified |
//! | bad TXT record (and two TXT records) | no policy |
//! | bad policy file | no policy |
//! | bad certificate on the policy host | no policy |
//! | testing mode | delivered, not enforced |
//! | none | no policy |
//! | policy changed with the same id | old policy kept until max_age |
//! | policy changed with a new id | refreshed |
//! | fetch fails with a cached policy | the cached policy enforced |
//! | MX not matching an enforce policy | not used |
//! | restart with a cached policy | still enforced before any fetch |
//!
//! and the fetch's own rules: a redirect, a media type other than
//! text/plain, a body over the bound and a server that never answers are
//! all failures.
//!
//! Without the DNS environment, nginx or aiosmtpd every test is SKIPPED
//! loudly; with POSTERN_REQUIRE_PEERS=1 it fails instead.

#![cfg(all(feature = "hickory", feature = "mta-sts-fetch"))]
mod sts_fixture;

use std::sync::Arc;
use std::time::Duration;

use postern_relay::mta_sts::{
    FetchError, FetchSettings, PolicyFetcher, PolicySource, StsMode, StsPolicy, StsResolver,
};
use postern_relay::tlsrpt::{PolicyType, ResultType, TlsSession};
use postern_relay::{Anchors, HostTls, MessageResult, RelayError, Resolver, StaticResolver};
use postern_testkit::dev_pki;
use sts_fixture::*;

fn error(result: &MessageResult) -> &RelayError {
    result.recipients[0]
        .outcome
        .as_ref()
        .expect_err("not delivered")
}

/// Delivered over TLS that was not verified: no policy applied.
fn assert_delivered_without_policy(fx: &Fixture, sts: &Arc<StsResolver>, case: &str) {
    let result = fx.deliver(sts, case);
    assert!(result.all_delivered(), "{case}: {result:?}");
    let tls = result.tls.as_ref().expect("opportunistic TLS");
    assert!(
        !tls.verified,
        "{case}: no policy, so no verification: {tls}"
    );
    assert_eq!(fx.delivered(case), 1, "{case}");
}

#[test]
fn good_policy_delivers_to_the_matching_mx_verified_and_caches_it_on_disk() {
    let Some(fx) = Fixture::start() else { return };
    let sts = fx.sts();
    let result = fx.deliver(&sts, "good");
    assert!(result.all_delivered(), "{result:?}");
    let tls = result.tls.as_ref().expect("TLS");
    assert!(
        tls.verified,
        "enforce: the MX certificate is verified: {tls}"
    );
    assert_eq!(tls.server_name, format!("mx.{}", fx.domain("good")));
    assert_eq!(fx.delivered("good"), 1);
    // TLS-RPT: one successful session under the policy, its lines and
    // its mx patterns as RFC 8460 §4.4 writes them.
    let [session] = fx.take_sessions().try_into().expect("one session");
    assert!(session.is_success(), "{session:?}");
    let mx = format!("mx.{}", fx.domain("good"));
    assert_eq!(session.policy.policy_type, PolicyType::Sts);
    assert_eq!(session.policy.policy_domain, fx.domain("good"));
    assert_eq!(session.policy.mx_host, std::slice::from_ref(&mx));
    assert_eq!(
        session.policy.policy_string,
        [
            "version: STSv1",
            "mode: enforce",
            &format!("mx: {mx}"),
            "max_age: 86400"
        ]
    );
    // Cached under the TXT id (a record split into two strings), on disk.
    let cached = fx.cache().load(&fx.domain("good")).expect("cached on disk");
    assert_eq!(cached.id, "good1");
    assert_eq!(cached.policy.mode(), StsMode::Enforce);
    // The second message uses the cache: no second fetch.
    assert!(fx.deliver(&sts, "good").all_delivered());
    assert_eq!(fx.fetches("good"), 1);
}

#[test]
fn bad_txt_records_bad_policy_files_bad_certificates_and_none_mean_no_policy() {
    let Some(fx) = Fixture::start() else { return };
    let sts = fx.sts();
    // Each serves (or would serve) an enforce policy no MX matches: were
    // it applied, nothing would be delivered.
    for case in ["badtxt", "twotxt", "badfile", "badcert", "none"] {
        assert_delivered_without_policy(&fx, &sts, case);
        let lookup = runtime().block_on(sts.lookup(&fx.domain(case)));
        assert!(lookup.policy.is_none(), "{case}: {lookup:?}");
        // TLS-RPT: the session counts under no-policy-found; a policy
        // that was announced but could not be had is a failure of its own
        // (RFC 8460 §4.3.2).
        let sessions = fx.take_sessions();
        let (none, sts_failures): (Vec<&TlsSession>, Vec<&TlsSession>) = sessions
            .iter()
            .partition(|s| s.policy.policy_type == PolicyType::NoPolicyFound);
        assert!(
            none.len() == 1 && none[0].is_success(),
            "{case}: {sessions:?}"
        );
        let expected = match case {
            "badfile" => Some(ResultType::StsPolicyInvalid),
            "badcert" => Some(ResultType::StsWebpkiInvalid),
            _ => None,
        };
        let found: Vec<_> = sts_failures
            .iter()
            .map(|s| s.failure.as_ref().unwrap().result_type)
            .collect();
        assert_eq!(found, Vec::from_iter(expected), "{case}: {sessions:?}");
    }
    // The bad TXT records are never fetched for.
    assert_eq!(fx.fetches("badtxt") + fx.fetches("twotxt"), 0);
    // The certificate of another CA fails the handshake.
    let e = runtime()
        .block_on(fx.fetcher().fetch(&fx.domain("badcert")))
        .unwrap_err();
    assert!(matches!(e, FetchError::Tls { .. }), "{e:?}");
    let e = runtime()
        .block_on(fx.fetcher().fetch(&fx.domain("badfile")))
        .unwrap_err();
    assert!(matches!(e, FetchError::Policy { .. }), "{e:?}");
}

#[test]
fn testing_mode_delivers_to_a_host_the_policy_does_not_name() {
    let Some(fx) = Fixture::start() else { return };
    let sts = fx.sts();
    let lookup = runtime().block_on(sts.lookup(&fx.domain("testing")));
    assert_eq!(lookup.mode(), Some(StsMode::Testing), "{lookup:?}");
    let result = fx.deliver(&sts, "testing");
    assert!(result.all_delivered(), "{result:?}");
    assert_eq!(fx.delivered("testing"), 1);
    // Delivered, and reported: the host is not in the policy.
    let [session] = fx.take_sessions().try_into().expect("one session");
    let failure = session.failure.expect("a failure is reported");
    assert_eq!(failure.result_type, ResultType::ValidationFailure);
    assert_eq!(
        failure.failure_reason_code.as_deref(),
        Some("mx-not-in-policy")
    );
    assert_eq!(
        failure.receiving_mx_hostname,
        Some(format!("mx.{}", fx.domain("testing")))
    );
}

#[test]
fn testing_mode_reports_a_certificate_failure_without_enforcing_it() {
    let Some(fx) = Fixture::start() else { return };
    // testbad's policy (testing) names its MX, whose certificate does not
    // name it: enforce would refuse the host; testing delivers, unverified,
    // and reports certificate-host-mismatch.
    let result = fx.deliver(&fx.sts(), "testbad");
    assert!(result.all_delivered(), "{result:?}");
    assert!(result.tls.as_ref().is_some_and(|t| !t.verified));
    assert_eq!(fx.delivered("testbad"), 1);
    let [session] = fx.take_sessions().try_into().expect("one session");
    assert_eq!(session.policy.policy_type, PolicyType::Sts);
    let failure = session
        .failure
        .expect("the certificate failure is reported");
    assert_eq!(failure.result_type, ResultType::CertificateHostMismatch);
    assert_eq!(failure.receiving_ip, Some(MX_ADDR.parse().unwrap()));
    // The session's own source address (RFC 8460 §4.4 sending-mta-ip).
    assert!(
        failure.sending_mta_ip.is_some_and(|ip| ip.is_loopback()),
        "{failure:?}"
    );
}

#[test]
fn an_mx_not_matching_an_enforced_policy_is_not_used() {
    let Some(fx) = Fixture::start() else { return };
    let before = fx.ehlos();
    let result = fx.deliver(&fx.sts(), "nomatch");
    let e = error(&result);
    assert!(
        matches!(e, RelayError::StsNoMatchingMx { domain } if *domain == fx.domain("nomatch")),
        "{e:?}"
    );
    assert!(e.is_transient());
    assert_eq!(e.status().to_string(), "4.7.5");
    assert_eq!(
        fx.ehlos(),
        before,
        "no connection to a host the policy excludes"
    );
    // The host the policy excludes is reported, without a session.
    let [session] = fx.take_sessions().try_into().expect("one entry");
    let failure = session.failure.expect("a failure");
    assert_eq!(failure.result_type, ResultType::ValidationFailure);
    assert_eq!(
        failure.failure_reason_code.as_deref(),
        Some("mx-not-in-policy")
    );
}

#[test]
fn a_policy_changed_under_the_same_id_is_not_refetched_until_refresh() {
    let Some(fx) = Fixture::start() else { return };
    // Cached an hour ago under the id DNS still shows; the server now has
    // a policy naming no MX of ours. The cached one applies.
    let cached = enforce(&format!("mx.{}", fx.domain("same")));
    fx.seed("same", "same1", &cached, 3600);
    let result = fx.deliver(&fx.sts(), "same");
    assert!(result.all_delivered(), "{result:?}");
    assert!(result.tls.as_ref().is_some_and(|t| t.verified));
    assert_eq!(fx.fetches("same"), 0);
    let kept = fx.cache().load(&fx.domain("same")).unwrap();
    assert_eq!(kept.policy, StsPolicy::parse(cached.as_bytes()).unwrap());

    // Close to expiry (max_age one day, fetched 23.5 hours ago), the
    // policy is refreshed: the new one is fetched and enforced.
    fx.seed("same", "same1", &cached, 86_400 - 1800);
    let result = fx.deliver(&fx.sts(), "same");
    assert!(
        matches!(error(&result), RelayError::StsNoMatchingMx { .. }),
        "{result:?}"
    );
    assert_eq!(fx.fetches("same"), 1);
}

#[test]
fn a_new_id_refreshes_the_policy() {
    let Some(fx) = Fixture::start() else { return };
    // The cached policy (old id) names no MX of ours; DNS has a new id,
    // the server the new policy naming mx.newid.
    fx.seed("newid", "old0", &enforce("nowhere.example"), 60);
    let result = fx.deliver(&fx.sts(), "newid");
    assert!(result.all_delivered(), "{result:?}");
    assert_eq!(fx.fetches("newid"), 1);
    let entry = fx.cache().load(&fx.domain("newid")).unwrap();
    assert_eq!(entry.id, "newid1");
    assert!(
        entry
            .policy
            .allows_mx(&format!("mx.{}", fx.domain("newid")))
    );
}

#[test]
fn a_failed_fetch_keeps_enforcing_the_cached_policy() {
    let Some(fx) = Fixture::start() else { return };
    // A new id triggers a fetch; the server answers 503. The cached
    // enforce policy (no MX of ours) still applies: nothing is delivered.
    fx.seed("fetchfail", "old0", &enforce("nowhere.example"), 60);
    let sts = fx.sts();
    let lookup = runtime().block_on(sts.lookup(&fx.domain("fetchfail")));
    assert!(
        matches!(&lookup.source, PolicySource::CacheAfterFailedFetch(e) if matches!(**e, FetchError::Status { status: 503, .. })),
        "{lookup:?}"
    );
    let before = fx.ehlos();
    let result = fx.deliver(&sts, "fetchfail");
    assert!(
        matches!(error(&result), RelayError::StsNoMatchingMx { .. }),
        "{result:?}"
    );
    assert_eq!(fx.ehlos(), before);
    // Reported: the fetch failed (under the cached policy) and its
    // excluded MX host.
    let types: Vec<_> = fx
        .take_sessions()
        .iter()
        .map(|s| s.failure.as_ref().unwrap().result_type)
        .collect();
    assert_eq!(
        types,
        [
            ResultType::StsPolicyFetchError,
            ResultType::ValidationFailure
        ]
    );
    // The entry is kept as it was (still the old id, to be retried).
    assert_eq!(fx.cache().load(&fx.domain("fetchfail")).unwrap().id, "old0");

    // Past its max_age, a cached policy no longer applies: no policy.
    fx.seed("fetchfail", "old0", &enforce("nowhere.example"), 86_401);
    assert_delivered_without_policy(&fx, &fx.sts(), "fetchfail");
}

#[test]
fn after_a_restart_the_cached_policy_is_enforced_before_any_fetch() {
    let Some(mut fx) = Fixture::start() else {
        return;
    };
    assert!(fx.deliver(&fx.sts(), "restart").all_delivered());
    assert_eq!(fx.fetches("restart"), 1);
    // The policy host goes away; a new resolver (a restarted MTA) reads
    // the cache from disk and enforces it: verified TLS to the matching
    // MX, without a fetch.
    fx.nginx.take();
    let sts = fx.sts();
    assert!(sts.cached(&fx.domain("restart")).is_some());
    let result = fx.deliver(&sts, "restart");
    assert!(result.all_delivered(), "{result:?}");
    assert!(
        result.tls.as_ref().is_some_and(|t| t.verified),
        "{result:?}"
    );
    assert_eq!(fx.delivered("restart"), 2);
}

#[test]
fn redirects_other_media_types_and_large_bodies_are_refused() {
    let Some(fx) = Fixture::start() else { return };
    let fetch = |case: &str| runtime().block_on(fx.fetcher().fetch(&fx.domain(case)));
    assert!(fetch("good").is_ok());
    let e = fetch("redirect").unwrap_err();
    assert!(
        matches!(e, FetchError::Redirect { status: 301, .. }),
        "{e:?}"
    );
    let e = fetch("html").unwrap_err();
    assert!(
        matches!(&e, FetchError::ContentType { found: Some(t), .. } if t.starts_with("text/html")),
        "{e:?}"
    );
    let e = fetch("big").unwrap_err();
    assert!(matches!(e, FetchError::TooLarge { .. }), "{e:?}");
    // The redirect's target was never asked for by the redirect.
    assert_eq!(fx.fetches("good"), 1);
}

#[test]
fn a_policy_host_that_never_answers_times_out() {
    let rt = runtime();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts and holds the connection without a word.
        let held = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(socket);
        });
        let resolver: Arc<dyn Resolver> = Arc::new(
            StaticResolver::new().with_host("mta-sts.slow.example", ["127.0.0.1".parse().unwrap()]),
        );
        let pki = dev_pki(&["mta-sts.slow.example"]);
        let settings = FetchSettings::new(Anchors::from_pem(pki.ca_pem.as_bytes()).unwrap())
            .with_port(port)
            .with_timeout(Duration::from_millis(500));
        let fetcher = PolicyFetcher::new(settings, provider(), resolver).unwrap();
        let started = std::time::Instant::now();
        let e = fetcher.fetch("slow.example").await.unwrap_err();
        assert!(matches!(e, FetchError::Timeout { .. }), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
        held.abort();
    });
}

#[test]
fn a_domain_that_is_no_ascii_dns_name_is_refused_before_any_lookup() {
    // An empty resolver: a lookup would fail with NoSuchDomain instead.
    let resolver: Arc<dyn Resolver> = Arc::new(StaticResolver::new());
    let pki = dev_pki(&["mta-sts.example"]);
    let settings = FetchSettings::new(Anchors::from_pem(pki.ca_pem.as_bytes()).unwrap());
    let fetcher = PolicyFetcher::new(settings, provider(), resolver).unwrap();
    for domain in ["bücher.example", "bad_name..example"] {
        let e = runtime().block_on(fetcher.fetch(domain)).unwrap_err();
        assert!(
            matches!(e, FetchError::InvalidHost { .. }),
            "{domain}: {e:?}"
        );
    }
}

#[test]
fn explain_plans_as_delivery_would_and_sends_nothing() {
    let Some(fx) = Fixture::start() else { return };
    let sts = fx.sts();
    let before = fx.ehlos();
    let plan = |case: &str| {
        let (relay, route) = fx.relay(&sts, case);
        runtime().block_on(relay.explain(&route))
    };
    // Enforced: the matching MX, verified; REQUIRETLS could go.
    let good = plan("good");
    let hosts = good.hosts.as_ref().expect("a host");
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].tls, HostTls::Verified);
    assert_eq!(hosts[0].name, format!("mx.{}", fx.domain("good")));
    assert_eq!(
        hosts[0].policy.as_ref().unwrap().policy_type,
        PolicyType::Sts
    );
    assert!(good.requiretls_possible());
    assert!(
        matches!(&good.mx, Some(Ok(a)) if a.records.len() == 1),
        "{good}"
    );
    // Testing: a host the policy names is used and audited; one it does
    // not name is used as the route says, the mismatch noted.
    let testbad = plan("testbad");
    assert_eq!(testbad.hosts.as_ref().unwrap()[0].tls, HostTls::Audited);
    let testing = plan("testing");
    let host = &testing.hosts.as_ref().unwrap()[0];
    assert_eq!(host.tls, HostTls::Unverified);
    let note = host.note.as_ref().expect("mx-not-in-policy");
    assert_eq!(
        note.failure_reason_code.as_deref(),
        Some("mx-not-in-policy")
    );
    assert!(!testing.requiretls_possible());
    // No host left under enforce; the excluded host is a problem.
    let nomatch = plan("nomatch");
    assert!(matches!(
        nomatch.hosts,
        Err(RelayError::StsNoMatchingMx { .. })
    ));
    assert_eq!(nomatch.problems.len(), 1, "{nomatch}");
    assert!(
        nomatch.to_string().contains("no host may be used now"),
        "{nomatch}"
    );
    // No policy: unverified.
    let none = plan("badtxt");
    assert_eq!(none.hosts.as_ref().unwrap()[0].tls, HostTls::Unverified);
    assert_eq!(fx.ehlos(), before, "explain connects to no MX");
}
