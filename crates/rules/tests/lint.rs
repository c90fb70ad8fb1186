//! Every lint finding kind, each from a rule file that triggers it, and
//! the near misses that must not trigger it.

use postern_proto::{Mechanism, TlsVersion, TlsVersionSet};
use postern_rules::{FindingKind, MechanismSet, RelayTlsMode, RuleSet, Setting, Severity};

fn lint(src: &str) -> Vec<(String, FindingKind)> {
    RuleSet::from_toml_str(src, "lint.toml")
        .unwrap_or_else(|e| panic!("{e}"))
        .lint()
        .into_iter()
        .map(|f| (f.rule, f.kind))
        .collect()
}

fn codes(src: &str) -> Vec<&'static str> {
    RuleSet::from_toml_str(src, "lint.toml")
        .unwrap()
        .lint()
        .iter()
        .map(|f| f.kind.code())
        .collect()
}

#[test]
fn shadowed_by_an_earlier_catch_all_that_ends_the_stage() {
    let src = r#"
[[rule]]
name = "maintenance"
actions = [{ tempfail = { text = "Down for maintenance" } }]
[[rule]]
name = "never"
conditions = [{ recipient_domain = { is = "a.example" } }]
actions = [{ reject = { text = "no" } }]
"#;
    assert_eq!(
        lint(src),
        [(
            "never".to_owned(),
            FindingKind::Shadowed {
                by: "maintenance".into()
            }
        )]
    );
    // A catch-all that ends only some of the later rule's stages does not
    // shadow it.
    let partial = r#"
[[rule]]
name = "stop_at_rcpt"
stages = ["rcpt"]
actions = [{ stop = true }]
[[rule]]
name = "later"
conditions = [{ recipient_domain = { is = "a.example" } }]
actions = [{ reject = { text = "no" } }]
"#;
    assert!(lint(partial).is_empty(), "{:?}", lint(partial));
    // A catch-all that only sets things does not end the stage.
    let setting = r#"
[[rule]]
name = "tls_everywhere"
actions = [{ relay_tls = "required" }]
[[rule]]
name = "later"
conditions = [{ relaying = true }]
actions = [{ relay_tls = "verified" }]
"#;
    assert!(lint(setting).is_empty(), "{:?}", lint(setting));
}

#[test]
fn overridden_by_a_later_rule_that_always_matches_too() {
    let src = r#"
[[rule]]
name = "first"
conditions = [{ relaying = true }]
actions = [{ relay_tls = "verified" }]
[[rule]]
name = "second"
actions = [{ relay_tls = "required" }]
"#;
    assert_eq!(
        lint(src),
        [(
            "first".to_owned(),
            FindingKind::Overridden {
                setting: Setting::RelayTls,
                by: "second".into()
            }
        )]
    );
    let same_conditions = r#"
[[rule]]
name = "a"
conditions = [{ recipient_domain = { is = "x.example" } }]
actions = [{ relay_host = "a.example:25" }]
[[rule]]
name = "b"
conditions = [{ recipient_domain = { is = "x.example" } }]
actions = [{ relay_host = "b.example:25" }]
"#;
    assert_eq!(codes(same_conditions), ["overridden"]);
    let twice = r#"
[[rule]]
name = "twice"
actions = [{ plain_auth = "off" }, { plain_auth = "off" }]
"#;
    assert_eq!(
        lint(twice),
        [(
            "twice".to_owned(),
            FindingKind::Overridden {
                setting: Setting::PlainAuth,
                by: "twice".into()
            }
        )]
    );
    // Default first, specific later: the normal pattern, not a finding.
    let default_then_specific = r#"
[[rule]]
name = "default"
actions = [{ relay_tls = "opportunistic" }]
[[rule]]
name = "specific"
conditions = [{ recipient_domain = { is = "bank.example" } }]
actions = [{ relay_tls = "verified" }]
"#;
    assert!(lint(default_then_specific).is_empty());
}

#[test]
fn auth_on_plaintext_and_cleartext_passwords() {
    let src = r#"
[[rule]]
name = "plain_auth_on"
actions = [{ plain_auth = ["PLAIN", "CRAM-MD5"] }]
"#;
    let found = RuleSet::from_toml_str(src, "x").unwrap().lint();
    assert_eq!(found.len(), 2);
    assert_eq!(
        found[0].kind,
        FindingKind::CleartextPasswordWithoutTls {
            mechanisms: MechanismSet::of(&[Mechanism::Plain]).unwrap()
        }
    );
    assert_eq!(found[0].severity(), Severity::Error);
    assert_eq!(
        found[1].kind,
        FindingKind::AuthOnPlaintext {
            mechanisms: MechanismSet::of(&[Mechanism::CramMd5]).unwrap()
        }
    );
    assert_eq!(found[1].severity(), Severity::Warning);
    assert!(found[0].message().contains("PLAIN"));
    // The same mechanisms on TLS connections are what the guide recommends.
    assert!(
        lint("[[rule]]\nname = \"t\"\nactions = [{ tls_auth = [\"PLAIN\", \"LOGIN\"] }]\n")
            .is_empty()
    );
    let login = "[[rule]]\nname = \"l\"\nactions = [{ plain_auth = [\"LOGIN\"] }]\n";
    assert_eq!(codes(login), ["cleartext-password-without-tls"]);
}

#[test]
fn relay_versions_the_stack_cannot_provide() {
    let src = r#"
[[rule]]
name = "old_and_new"
actions = [{ relay_tls = "verified" }, { relay_tls_versions = ["TLSv1.0", "TLSv1.3"] }]
[[rule]]
name = "only_old"
conditions = [{ relaying = true }]
actions = [{ relay_tls = "required" }, { relay_tls_versions = ["SSLv3", "TLSv1.1"] }]
"#;
    let found = RuleSet::from_toml_str(src, "x").unwrap().lint();
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(
        found[0].kind,
        FindingKind::UnsupportedTlsVersions {
            unsupported: TlsVersionSet::of(&[TlsVersion::Tls10]),
            effective: TlsVersionSet::of(&[TlsVersion::Tls13]),
        }
    );
    assert_eq!(found[0].severity(), Severity::Warning);
    assert_eq!(
        found[1].kind,
        FindingKind::NoUsableTlsVersion {
            requested: TlsVersionSet::of(&[TlsVersion::Ssl3, TlsVersion::Tls11]),
        }
    );
    assert_eq!(found[1].severity(), Severity::Error);
}

#[test]
fn require_tls_for_all_mail_on_port_25() {
    let everyone = r#"
[[rule]]
name = "tls_or_nothing"
conditions = [{ tls = false }]
actions = [{ reject = { code = 530, enhanced = "5.7.0", text = "Must issue a STARTTLS command first" } }]
"#;
    assert_eq!(
        lint(everyone),
        [(
            "tls_or_nothing".to_owned(),
            FindingKind::RequireTlsOnPublicMx
        )]
    );
    let port_25 = r#"
[[rule]]
name = "mx_tls_or_nothing"
conditions = [{ not = { tls = true } }, { local_port = { is = 25 } }]
actions = [{ reject = { text = "TLS required" } }]
"#;
    assert_eq!(codes(port_25), ["require-tls-on-public-mx"]);
    // Submission may require TLS, and one domain may (the guide's rule).
    let submission = r#"
[[rule]]
name = "submission_tls"
conditions = [{ tls = false }, { local_port = { is = 587 } }]
actions = [{ reject = { text = "TLS required" } }]
[[rule]]
name = "one_domain"
conditions = [{ tls = false }, { recipient_domain = { is = "mydomain.com" } }]
actions = [{ reject = { text = "TLS required" } }]
"#;
    assert!(lint(submission).is_empty(), "{:?}", lint(submission));
}

#[test]
fn tempfail_where_reject_was_meant() {
    let src = r#"
[[rule]]
name = "soft_tls"
conditions = [{ tls = false }, { recipient_domain = { is = "mydomain.com" } }]
actions = [{ tempfail = { text = "Accepting only secure delivery" } }]
"#;
    let found = RuleSet::from_toml_str(src, "x").unwrap().lint();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, FindingKind::TempfailOnPermanentCondition);
    assert_eq!(found[0].severity(), Severity::Note);
    // An unconditional tempfail (maintenance) is what tempfail is for.
    let maintenance = "[[rule]]\nname = \"m\"\nactions = [{ tempfail = { text = \"later\" } }]\n";
    assert!(lint(maintenance).is_empty());
}

#[test]
fn implicit_tls_port_mismatch() {
    // The guide's rule as often transcribed: "SSL on" with STARTTLS to 465.
    let starttls_to_465 = r#"
[[rule]]
name = "use_only_tls11_and_12_when_relaying"
conditions = [{ relaying = true }, { recipient_domain = { is = "example.com" } }]
actions = [{ relay_host = "smtp.example.net:465" }, { relay_tls = "required" }, { relay_tls_versions = ["TLSv1.1", "TLSv1.2"] }]
"#;
    let found = lint(starttls_to_465);
    assert!(found.contains(&(
        "use_only_tls11_and_12_when_relaying".to_owned(),
        FindingKind::ImplicitTlsPortMismatch {
            port: 465,
            mode: RelayTlsMode::Required
        }
    )));
    assert_eq!(
        codes(starttls_to_465),
        ["unsupported-tls-versions", "implicit-tls-port-mismatch"]
    );
    let implicit_to_25 = r#"
[[rule]]
name = "implicit_25"
actions = [{ relay_host = "relay.example" }, { relay_tls = "implicit" }]
"#;
    let found = RuleSet::from_toml_str(implicit_to_25, "x").unwrap().lint();
    assert_eq!(
        found[0].kind,
        FindingKind::ImplicitTlsPortMismatch {
            port: 25,
            mode: RelayTlsMode::Implicit
        }
    );
    assert!(found[0].message().contains("use port 465"));
}

#[test]
fn versions_without_required_tls() {
    let src = r#"
[[rule]]
name = "versions_only"
conditions = [{ recipient_domain = { is = "example.com" } }]
actions = [{ relay_tls_versions = ["TLSv1.3"] }]
"#;
    assert_eq!(
        lint(src),
        [(
            "versions_only".to_owned(),
            FindingKind::VersionsWithoutRequiredTls
        )]
    );
    let opportunistic = r#"
[[rule]]
name = "opp"
actions = [{ relay_tls = "opportunistic" }, { relay_tls_versions = ["TLSv1.3"] }]
"#;
    assert_eq!(codes(opportunistic), ["versions-without-required-tls"]);
}

#[test]
fn findings_display_with_severity_rule_and_message() {
    let src = "[[rule]]\nname = \"p\"\nactions = [{ plain_auth = [\"PLAIN\"] }]\n";
    let f = &RuleSet::from_toml_str(src, "x").unwrap().lint()[0];
    assert_eq!(
        f.to_string(),
        "error: rule #1 p: PLAIN on plaintext connections sends passwords in clear; move them to tls_auth"
    );
}

#[test]
fn dane_to_an_address_is_reported() {
    let src = r#"
[[rule]]
name = "dane_by_address"
actions = [{ relay_host = "[192.0.2.7]:25" }, { relay_tls = "dane-only" }]
"#;
    let found = RuleSet::from_toml_str(src, "x").unwrap().lint();
    assert_eq!(
        found[0].kind,
        FindingKind::DaneToAddress {
            host: "192.0.2.7".into(),
            mode: RelayTlsMode::DaneOnly
        }
    );
    assert_eq!(found[0].severity(), Severity::Error);
    assert!(
        found[0].message().contains("never be delivered"),
        "{}",
        found[0].message()
    );
    // By name, DANE applies (TLSA at _25._tcp.<host>): nothing to report.
    let named = r#"
[[rule]]
name = "dane_by_name"
actions = [{ relay_host = "relay.example" }, { relay_tls = "dane" }]
"#;
    assert_eq!(codes(named), Vec::<&str>::new());
}

#[test]
fn relay_auth_needs_required_tls_and_a_smart_host() {
    let head = "[[rule]]\nname = \"provider\"\nconditions = [{ relaying = true }]\n";
    let with = |actions: &str| format!("{head}actions = [{actions}]\n");
    let auth = r#"{ relay_auth = { user = "u", password_file = "pw" } }"#;
    let host = r#"{ relay_host = "smtp.example.net:587" }"#;
    // TLS required: nothing to say.
    let src = with(&format!(r#"{host}, {{ relay_tls = "required" }}, {auth}"#));
    assert!(lint(&src).is_empty(), "{:?}", lint(&src));
    // Opportunistic (the default): a warning.
    let found = lint(&with(&format!("{host}, {auth}")));
    assert_eq!(
        found,
        [(
            "provider".to_owned(),
            FindingKind::RelayAuthWithoutRequiredTls {
                mode: RelayTlsMode::Opportunistic
            }
        )]
    );
    assert_eq!(found[0].1.severity(), Severity::Warning);
    // relay_tls = none: credentials can never be sent, an error.
    let src = with(&format!(r#"{host}, {{ relay_tls = "none" }}, {auth}"#));
    let found = lint(&src);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1.severity(), Severity::Error);
    assert!(found[0].1.to_string().contains("only sent over TLS"));
    // No smart host anywhere: the credentials are never used.
    let src = with(&format!(r#"{{ relay_tls = "implicit" }}, {auth}"#));
    assert_eq!(codes(&src), ["relay-auth-without-smart-host"]);
    // A smart host set by another rule counts.
    let src = format!(
        "[[rule]]\nname = \"host\"\nactions = [{host}]\n{}",
        with(&format!(r#"{{ relay_tls = "required" }}, {auth}"#))
    );
    assert!(lint(&src).is_empty(), "{:?}", lint(&src));
}
