//! The evaluation semantics: order, stages, all/any, accumulation and
//! override, decisions and stop ending a stage.

use postern_proto::{ForwardPath, Mailbox, Mechanism, ReversePath};
use postern_rules::{
    Action, ActionStatus, AuthOffer, Condition, Facts, Header, MatchMode, MechanismSet,
    RelayTlsMode, Rule, RuleSet, Stage, StageSet, Test, TextMatch, VerdictKind,
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

fn load(src: &str) -> RuleSet {
    RuleSet::from_toml_str(src, "t.toml").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn later_settings_override_earlier_ones_and_explain_says_so() {
    let rules = load(
        r#"
[[rule]]
name = "default_tls"
actions = [{ relay_tls = "opportunistic" }, { relay_host = "smart.example:25" }]
[[rule]]
name = "bank"
conditions = [{ recipient_domain = { wildcard = "*.bank.example" } }]
actions = [{ relay_tls = "verified" }]
"#,
    );
    let facts = Facts::new()
        .recipient(rcpt("a@mail.bank.example"))
        .relaying(true);
    let out = rules.evaluate(Stage::Rcpt, &facts);
    assert_eq!(out.relay.tls, RelayTlsMode::Verified);
    // Settings not touched by the later rule accumulate from the earlier one.
    assert_eq!(out.relay.route.to_string(), "smart.example:25");
    let (_, trace) = rules.explain_stage(Stage::Rcpt, &facts);
    assert_eq!(
        trace.rules[0].actions[0].status,
        ActionStatus::Overridden { by: "bank".into() }
    );
    assert_eq!(trace.rules[0].actions[1].status, ActionStatus::Applied);
    assert_eq!(trace.rules[1].actions[0].status, ActionStatus::Applied);
    let text = rules.explain(&facts).to_string();
    assert!(
        text.contains("overridden by rule bank: relay_tls = opportunistic"),
        "{text}"
    );
    assert!(
        text.contains("TLS mode:      verified [rule bank]"),
        "{text}"
    );
}

#[test]
fn a_decision_ends_the_stage_but_keeps_earlier_settings() {
    let rules = load(
        r#"
[[rule]]
name = "route"
actions = [{ relay_host = "smart.example" }]
[[rule]]
name = "trusted"
conditions = [{ remote_ip = { in = ["10.0.0.0/8"] } }]
actions = [{ accept = true }]
[[rule]]
name = "deny_all_relaying"
conditions = [{ relaying = true }]
actions = [{ reject = { code = 554, enhanced = "5.7.1", text = "Relaying denied" } }]
"#,
    );
    let inside = Facts::new()
        .remote_ip("10.1.2.3".parse().unwrap())
        .recipient(rcpt("x@y.example"))
        .relaying(true);
    let out = rules.evaluate(Stage::Rcpt, &inside);
    assert_eq!(out.verdict.kind(), VerdictKind::Accept);
    assert_eq!(out.verdict.rule().unwrap().name(), "trusted");
    assert_eq!(out.relay.route.to_string(), "smart.example:25");
    let outside = Facts::new()
        .remote_ip("192.0.2.1".parse().unwrap())
        .recipient(rcpt("x@y.example"))
        .relaying(true);
    let out = rules.evaluate(Stage::Rcpt, &outside);
    assert_eq!(out.verdict.kind(), VerdictKind::Reject);
    assert_eq!(
        out.verdict.reply().unwrap().to_string(),
        "554 5.7.1 Relaying denied"
    );
    // Accepting at one stage says nothing about the next: each stage is
    // evaluated from the first rule again.
    let trace = rules.explain(&inside);
    assert_eq!(trace.verdict.decision, VerdictKind::Accept);
    assert_eq!(trace.stages.len(), 6);
}

#[test]
fn stop_ends_the_stage_without_a_decision() {
    let rules = load(
        r#"
[[rule]]
name = "internal_stop"
conditions = [{ authenticated = true }]
actions = [{ stop = true }]
[[rule]]
name = "size_cap"
conditions = [{ size = { over = 1000 } }]
actions = [{ reject = { code = 552, enhanced = "5.3.4", text = "Message too big" } }]
"#,
    );
    let user = Facts::new().user("alice").size(5000);
    let out = rules.evaluate(Stage::Mail, &user);
    assert_eq!(out.verdict.kind(), VerdictKind::Continue);
    assert_eq!(out.stopped_by.unwrap().name(), "internal_stop");
    let anon = Facts::new().authenticated(false).size(5000);
    assert_eq!(
        rules.evaluate(Stage::Mail, &anon).verdict.kind(),
        VerdictKind::Reject
    );
    let (_, trace) = rules.explain_stage(Stage::Mail, &user);
    assert_eq!(trace.stopped_by.as_deref(), Some("internal_stop"));
    assert!(!trace.rules[1].visited);
}

#[test]
fn all_and_any() {
    let src = |mode: &str| {
        format!(
            r#"
[[rule]]
name = "r"
match = "{mode}"
conditions = [{{ sender_domain = {{ is = "a.example" }} }}, {{ helo = {{ regex = "^mx[0-9]+\\." }} }}]
actions = [{{ reject = {{ text = "no" }} }}]
"#
        )
    };
    let all = load(&src("all"));
    let any = load(&src("any"));
    let one = Facts::new()
        .helo("mx1.b.example")
        .sender(sender("u@b.example"));
    let both = Facts::new()
        .helo("mx1.a.example")
        .sender(sender("u@a.example"));
    let neither = Facts::new().helo("client").sender(sender("u@b.example"));
    let refused = |r: &RuleSet, f: &Facts| r.evaluate(Stage::Mail, f).verdict.is_refusal();
    assert!(!refused(&all, &one) && refused(&all, &both) && !refused(&all, &neither));
    assert!(refused(&any, &one) && refused(&any, &both) && !refused(&any, &neither));
}

#[test]
fn rules_apply_only_at_their_stages() {
    let rules = load(
        r#"
[[rule]]
name = "blocklist"
conditions = [{ remote_ip = { in = ["192.0.2.0/24"] } }]
actions = [{ reject = { code = 554, text = "Go away" } }]
[[rule]]
name = "tag"
actions = [{ add_header = { name = "X-Postern-Policy", value = "checked" } }]
[[rule]]
name = "late"
stages = ["data"]
conditions = [{ smtputf8 = true }]
actions = [{ tempfail = { text = "Try later" } }]
"#,
    );
    let bad = Facts::new().remote_ip("192.0.2.9".parse().unwrap());
    let trace = rules.explain(&bad);
    assert_eq!(trace.verdict.stage, Some(Stage::Connect));
    assert_eq!(trace.stages.len(), 1);
    let good = Facts::new()
        .remote_ip("198.51.100.1".parse().unwrap())
        .smtputf8(false);
    let out = rules.evaluate(Stage::Data, &good);
    assert_eq!(out.headers.len(), 1);
    assert_eq!(out.headers[0].to_string(), "X-Postern-Policy: checked");
    assert!(rules.evaluate(Stage::Rcpt, &good).headers.is_empty());
    assert_eq!(
        rules.rule("late").unwrap().stages(),
        StageSet::only(Stage::Data)
    );
    assert_eq!(rules.explain(&good).headers, ["X-Postern-Policy: checked"]);
    let utf8 = Facts::new().smtputf8(true);
    assert_eq!(
        rules.evaluate(Stage::Mail, &utf8).verdict.kind(),
        VerdictKind::Continue
    );
    assert_eq!(
        rules.evaluate(Stage::Data, &utf8).verdict.kind(),
        VerdictKind::Tempfail
    );
}

#[test]
fn negation_and_unknown_facts() {
    let rules = load(
        r#"
[[rule]]
name = "not_local"
conditions = [{ not = { local_recipient = true } }]
actions = [{ reject = { text = "no" } }]
"#,
    );
    assert!(
        rules
            .evaluate(Stage::Rcpt, &Facts::new().local_recipient(false))
            .verdict
            .is_refusal()
    );
    assert!(
        !rules
            .evaluate(Stage::Rcpt, &Facts::new().local_recipient(true))
            .verdict
            .is_refusal()
    );
    // Unknown stays unknown under negation: no refusal on missing facts.
    assert!(
        !rules
            .evaluate(Stage::Rcpt, &Facts::new())
            .verdict
            .is_refusal()
    );
    let (_, trace) = rules.explain_stage(Stage::Rcpt, &Facts::new());
    assert_eq!(trace.rules[0].conditions[0].result, None);
    assert_eq!(trace.rules[0].conditions[0].value, None);
    assert!(
        rules
            .explain(&Facts::new())
            .to_string()
            .contains("unknown  not (local_recipient is true)   (value: unknown)")
    );
}

#[test]
fn an_unusable_version_set_is_a_plan_problem_not_a_wider_set() {
    let rules = load(
        r#"
[[rule]]
name = "ancient"
actions = [{ relay_tls = "required" }, { relay_tls_versions = ["SSLv3", "TLSv1.0"] }]
"#,
    );
    let out = rules.evaluate(Stage::Rcpt, &Facts::new().relaying(true));
    assert!(out.relay.versions().is_empty());
    assert!(out.relay.problem().is_some());
    let text = rules.explain(&Facts::new().relaying(true)).to_string();
    assert!(
        text.contains("PROBLEM: none of the requested TLS versions [SSLv3, TLSv1.0]"),
        "{text}"
    );
}

#[test]
fn the_programmatic_api_builds_the_same_rules() {
    let mechs = MechanismSet::of(&[Mechanism::Plain, Mechanism::Login]).unwrap();
    let rules = RuleSet::new(vec![
        Rule::new(
            "disableAUTH_on_non_SSL",
            MatchMode::All,
            vec![],
            vec![Action::PlainAuth(AuthOffer::Off)],
        )
        .unwrap(),
        Rule::new(
            "enableAUTH_on_SSL",
            MatchMode::All,
            vec![],
            vec![Action::TlsAuth(AuthOffer::On(mechs))],
        )
        .unwrap(),
        Rule::new(
            "allow_only_tls_for_mydomain_com",
            MatchMode::All,
            vec![
                Test::Tls(false).into(),
                Condition::new(Test::RecipientDomain(TextMatch::is("mydomain.com"))),
            ],
            vec![
                Action::reject(
                    550,
                    Some("5.7.1"),
                    "Accepting only secure delivery (STARTTLS) for mydomain.com",
                )
                .unwrap(),
            ],
        )
        .unwrap(),
        Rule::new(
            "tag",
            MatchMode::Any,
            vec![],
            vec![Action::AddHeader(Header::new("X-Tag", "1").unwrap())],
        )
        .unwrap(),
    ])
    .unwrap();
    let facts = Facts::new().tls(false).recipient(rcpt("bob@mydomain.com"));
    assert!(rules.evaluate(Stage::Rcpt, &facts).verdict.is_refusal());
    assert_eq!(
        rules.evaluate(Stage::Helo, &facts).auth.tls,
        AuthOffer::On(mechs)
    );
    assert_eq!(rules.len(), 4);
}

#[test]
fn dane_modes_load_and_explain() {
    let rules = load(
        r#"
[[rule]]
name = "dane_default"
actions = [{ relay_tls = "dane" }]
[[rule]]
name = "strict"
conditions = [{ recipient_domain = { is = "strict.example" } }]
actions = [{ relay_tls = "dane-only" }]
"#,
    );
    let facts = |to: &str| Facts::new().recipient(rcpt(to)).relaying(true);
    let out = rules.evaluate(Stage::Rcpt, &facts("a@other.example"));
    assert_eq!(out.relay.tls, RelayTlsMode::Dane);
    let text = rules.explain(&facts("a@other.example")).to_string();
    assert!(
        text.contains("TLS mode:      dane [rule dane_default]"),
        "{text}"
    );
    assert!(text.contains("otherwise opportunistic STARTTLS"), "{text}");
    let out = rules.evaluate(Stage::Rcpt, &facts("b@strict.example"));
    assert_eq!(out.relay.tls, RelayTlsMode::DaneOnly);
    let text = rules.explain(&facts("b@strict.example")).to_string();
    assert!(
        text.contains("TLS mode:      dane-only [rule strict]"),
        "{text}"
    );
    assert!(
        text.contains("deferred unless the next hop is authenticated"),
        "{text}"
    );
}

#[test]
fn relay_auth_is_carried_in_the_plan_and_explained_without_a_secret() {
    let rules = load(
        r#"
[[rule]]
name = "via_provider"
conditions = [{ relaying = true }]
actions = [
  { relay_host = "smtp.provider.example:587" },
  { relay_tls = "required" },
  { relay_auth = { user = "me@provider.example", password_file = "secrets/provider" } },
]
"#,
    );
    let facts = Facts::new().relaying(true);
    let out = rules.evaluate(Stage::Rcpt, &facts);
    let auth = out.relay.auth.expect("credentials in the plan");
    assert_eq!(auth.user(), "me@provider.example");
    assert_eq!(auth.password_file(), "secrets/provider");
    // Not relaying: no rule matched, no credentials.
    let out = rules.evaluate(Stage::Rcpt, &Facts::new().relaying(false));
    assert_eq!(out.relay.auth, None);
    let trace = rules.explain(&facts);
    let relay = trace.relay.as_ref().unwrap();
    assert_eq!(relay.auth_rule.as_deref(), Some("via_provider"));
    let text = trace.to_string();
    assert!(
        text.contains(r#"credentials:   user "me@provider.example", password in secrets/provider (sent over TLS only) [rule via_provider]"#),
        "{text}"
    );
}
