//! The guide's scenarios as Rust tests: load, evaluate, explain and lint.

use postern_proto::{ForwardPath, Mailbox, Mechanism, ReversePath, TlsVersion, TlsVersionSet};
use postern_rules::{
    AuthOffer, Destination, Facts, FindingKind, MechanismSet, RelayTlsMode, RuleSet, Severity,
    Stage, VerdictKind,
};

fn sender(address: &str) -> ReversePath<'_> {
    if address.is_empty() {
        ReversePath::Null
    } else {
        ReversePath::Mailbox(Mailbox::parse(address).expect("valid sender"))
    }
}

fn rcpt(address: &str) -> ForwardPath<'_> {
    ForwardPath::Mailbox(Mailbox::parse(address).expect("valid recipient"))
}

const GUIDE: &str = include_str!("policies/guide.rules.toml");

fn guide() -> RuleSet {
    RuleSet::from_toml_str(GUIDE, "guide.rules.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn plain_login() -> AuthOffer {
    AuthOffer::On(MechanismSet::of(&[Mechanism::Plain, Mechanism::Login]).unwrap())
}

#[test]
fn auth_rules_disable_plaintext_and_enable_tls_auth() {
    let rules = guide();
    for stage in [Stage::Helo, Stage::Auth] {
        let out = rules.evaluate(stage, &Facts::new().tls(false));
        assert_eq!(out.auth.plain, AuthOffer::Off);
        assert_eq!(out.auth.tls, plain_login());
        assert_eq!(out.auth.for_connection(false), AuthOffer::Off);
        assert_eq!(out.auth.for_connection(true), plain_login());
        assert_eq!(out.verdict.kind(), VerdictKind::Continue);
    }
}

#[test]
fn the_auth_rules_apply_only_where_auth_is_decided() {
    let rules = guide();
    let auth_rules = ["disableAUTH_on_non_SSL", "enableAUTH_on_SSL"];
    for name in auth_rules {
        let stages: Vec<Stage> = rules.rule(name).unwrap().stages().iter().collect();
        assert_eq!(stages, [Stage::Helo, Stage::Auth], "{name}");
    }
    let stages: Vec<Stage> = rules
        .rule("allow_only_tls_for_mydomain_com")
        .unwrap()
        .stages()
        .iter()
        .collect();
    assert_eq!(stages, [Stage::Rcpt, Stage::Data]);
}

#[test]
fn require_tls_for_mydomain_rejects_plaintext_only() {
    let rules = guide();
    let plain = Facts::new().tls(false).recipient(rcpt("bob@mydomain.com"));
    let out = rules.evaluate(Stage::Rcpt, &plain);
    let reply = out.verdict.reply().expect("rejected");
    assert_eq!(out.verdict.kind(), VerdictKind::Reject);
    assert_eq!(
        out.verdict.rule().unwrap().name(),
        "allow_only_tls_for_mydomain_com"
    );
    assert_eq!(reply.code().get(), 550);
    assert_eq!(reply.enhanced().unwrap().to_string(), "5.7.1");
    assert_eq!(
        reply.lines()[0],
        "Accepting only secure delivery (STARTTLS) for mydomain.com"
    );

    let tls = Facts::new().tls(true).recipient(rcpt("bob@mydomain.com"));
    assert_eq!(
        rules.evaluate(Stage::Rcpt, &tls).verdict.kind(),
        VerdictKind::Continue
    );
    let other = Facts::new().tls(false).recipient(rcpt("bob@other.org"));
    assert_eq!(
        rules.evaluate(Stage::Rcpt, &other).verdict.kind(),
        VerdictKind::Continue
    );
    // TLS unknown: the rule must not fire on a fact nobody established.
    let unknown = Facts::new().recipient(rcpt("bob@mydomain.com"));
    assert_eq!(
        rules.evaluate(Stage::Rcpt, &unknown).verdict.kind(),
        VerdictKind::Continue
    );
}

#[test]
fn relay_rule_routes_example_com_with_tls12_only() {
    let rules = guide();
    let facts = Facts::new()
        .tls(true)
        .recipient(rcpt("dave@example.com"))
        .relaying(true);
    let out = rules.evaluate(Stage::Rcpt, &facts);
    assert_eq!(
        *out.relay.route,
        Destination::SmartHost {
            host: "smtp.example.net".into(),
            port: 465
        }
    );
    assert_eq!(out.relay.tls, RelayTlsMode::Implicit);
    assert_eq!(
        out.relay.requested_versions,
        TlsVersionSet::of(&[TlsVersion::Tls11, TlsVersion::Tls12])
    );
    assert_eq!(
        out.relay.versions(),
        TlsVersionSet::of(&[TlsVersion::Tls12])
    );
    assert_eq!(out.relay.problem(), None);

    let elsewhere = Facts::new()
        .recipient(rcpt("x@elsewhere.example"))
        .relaying(true);
    let out = rules.evaluate(Stage::Rcpt, &elsewhere);
    assert_eq!(*out.relay.route, Destination::Mx);
    assert_eq!(out.relay.tls, RelayTlsMode::Opportunistic);
    assert_eq!(out.relay.versions(), TlsVersionSet::CURRENT);
}

#[test]
fn lint_flags_tls11_in_the_guide_and_nothing_else() {
    let findings = guide().lint();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f.rule, "use_only_tls11_and_12_when_relaying");
    assert_eq!(f.severity(), Severity::Warning);
    assert_eq!(
        f.kind,
        FindingKind::UnsupportedTlsVersions {
            unsupported: TlsVersionSet::of(&[TlsVersion::Tls11]),
            effective: TlsVersionSet::of(&[TlsVersion::Tls12]),
        }
    );
    assert!(f.to_string().contains("TLSv1.1"), "{f}");
    assert!(f.to_string().contains("effective set is TLSv1.2"), "{f}");
}

#[test]
fn enable_before_disable_is_harmless_but_order_is_kept() {
    // The guide insists on the order; with separate settings per transport
    // either order yields the same plan, and explain shows both applied.
    let swapped = GUIDE.replacen("disableAUTH_on_non_SSL", "TMP", 1);
    let swapped = swapped.replacen("enableAUTH_on_SSL", "disableAUTH_on_non_SSL", 1);
    let swapped = swapped.replacen("TMP", "enableAUTH_on_SSL", 1);
    let rules = RuleSet::from_toml_str(&swapped, "swapped.toml").unwrap();
    let out = rules.evaluate(Stage::Helo, &Facts::new().tls(false));
    assert_eq!(out.auth.plain, AuthOffer::Off);
    assert_eq!(out.auth.tls, plain_login());
}

#[test]
fn explain_reads_like_the_guide() {
    let rules = guide();
    let facts = Facts::new()
        .tls(false)
        .local_port(25)
        .helo("mx.remote.example")
        .sender(sender("alice@remote.example"))
        .recipient(rcpt("bob@mydomain.com"))
        .local_recipient(true);
    let trace = rules.explain(&facts);
    let text = trace.to_string();
    let expected = [
        "stage connect: continue\n  no rule applies at this stage\n",
        "stage helo: continue\n  #1 disableAUTH_on_non_SSL: matched (no conditions)\n      applied  plain_auth = off\n",
        "  #2 enableAUTH_on_SSL: matched (no conditions)\n      applied  tls_auth = on (PLAIN LOGIN)\n",
        "stage rcpt: reject 550 5.7.1 Accepting only secure delivery (STARTTLS) for mydomain.com [rule allow_only_tls_for_mydomain_com]\n",
        "  #3 allow_only_tls_for_mydomain_com: matched (match all)\n      yes      tls is false   (value: false)\n      yes      recipient_domain is \"mydomain.com\"   (value: mydomain.com)\n",
        "  #4 use_only_tls11_and_12_when_relaying: not visited (the stage had already ended)\n",
        "verdict: reject at rcpt by rule allow_only_tls_for_mydomain_com: 550 5.7.1 Accepting only secure delivery (STARTTLS) for mydomain.com\n",
        "  plaintext connections: off [rule disableAUTH_on_non_SSL]\n  TLS connections:       on (PLAIN LOGIN) [rule enableAUTH_on_SSL]\n",
        "outbound relay: not reached\n",
    ];
    for part in expected {
        assert!(text.contains(part), "missing:\n{part}\nin:\n{text}");
    }
    assert_eq!(
        trace.stages.last().unwrap().stage,
        Stage::Rcpt,
        "data is never reached"
    );

    let relayed = Facts::new()
        .tls(true)
        .recipient(rcpt("dave@example.com"))
        .relaying(true);
    let text = rules.explain(&relayed).to_string();
    for part in [
        "  route:         smtp.example.net:465 [rule use_only_tls11_and_12_when_relaying]\n",
        "  TLS mode:      implicit [rule use_only_tls11_and_12_when_relaying]\n",
        "  TLS versions:  TLSv1.2 (asked for TLSv1.1, TLSv1.2; the others cannot be negotiated) [rule use_only_tls11_and_12_when_relaying]\n",
        "  trust anchors: system [default]\n",
        "verdict: accept (no rule objected)\n",
    ] {
        assert!(text.contains(part), "missing:\n{part}\nin:\n{text}");
    }
}

#[test]
fn explain_serialises_to_json() {
    let rules = guide();
    let facts = Facts::new()
        .tls(true)
        .recipient(rcpt("dave@example.com"))
        .relaying(true);
    let json = serde_json::to_value(rules.explain(&facts)).unwrap();
    assert_eq!(json["verdict"]["decision"], "accept");
    assert_eq!(json["relay"]["route"], "smtp.example.net:465");
    assert_eq!(json["relay"]["tls"], "implicit");
    assert_eq!(json["relay"]["versions"], serde_json::json!(["TLSv1.2"]));
    assert_eq!(
        json["relay"]["requested_versions"],
        serde_json::json!(["TLSv1.1", "TLSv1.2"])
    );
    assert_eq!(json["auth"]["tls"], serde_json::json!(["PLAIN", "LOGIN"]));
    assert_eq!(json["auth"]["plain"], "off");
    let rcpt = &json["stages"][4];
    assert_eq!(rcpt["stage"], "rcpt");
    assert_eq!(rcpt["rules"][1]["conditions"][1]["result"], true);
    assert_eq!(rcpt["rules"][1]["actions"][0]["status"], "applied");
    let findings = serde_json::to_value(rules.lint()).unwrap();
    assert_eq!(findings[0]["code"], "unsupported-tls-versions");
    assert_eq!(findings[0]["severity"], "warning");
}

#[test]
#[ignore = "prints a trace for eyeballing"]
fn print_trace() {
    let rules = guide();
    let facts = Facts::new()
        .tls(false)
        .local_port(25)
        .helo("mx.remote.example")
        .sender(sender("alice@remote.example"))
        .recipient(rcpt("bob@mydomain.com"))
        .local_recipient(true);
    println!("{}", rules.explain(&facts));
    let facts = Facts::new()
        .tls(true)
        .recipient(rcpt("dave@example.com"))
        .relaying(true);
    println!("{}", rules.explain(&facts));
}
