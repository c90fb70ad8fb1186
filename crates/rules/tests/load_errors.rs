//! Load-time validation: each mistake gives a typed error naming the file,
//! line, rule and field.

use postern_rules::{LoadError, LoadErrorKind, PatternError, RuleErrorKind, RuleSet, ValueError};

fn err(src: &str) -> LoadError {
    RuleSet::from_toml_str(src, "rules.toml").expect_err("should not load")
}

fn rule_kind(e: &LoadError) -> &RuleErrorKind {
    match &*e.kind {
        LoadErrorKind::Rule(k) => k,
        other => panic!("not a rule error: {other:?} ({e})"),
    }
}

const HEAD: &str =
    "[[rule]]\nname = \"ok\"\nactions = [{ stop = true }]\n\n[[rule]]\nname = \"bad\"\n";

#[test]
fn bad_regex_names_rule_field_and_line() {
    let e = err(&format!(
        "{HEAD}conditions = [{{ helo = {{ regex = \"mx(\" }} }}]\nactions = [{{ stop = true }}]\n"
    ));
    assert!(matches!(
        rule_kind(&e),
        RuleErrorKind::Pattern(PatternError::Regex(_))
    ));
    assert_eq!(
        (e.line, e.index, e.name.as_deref()),
        (7, Some(1), Some("bad"))
    );
    assert_eq!(e.field.as_deref(), Some("conditions[0].helo.regex"));
    assert!(e.to_string().starts_with("rules.toml:7:"), "{e}");
    assert!(
        e.to_string()
            .contains("rule #2 \"bad\", conditions[0].helo.regex: invalid regular expression"),
        "{e}"
    );
}

#[test]
fn bad_cidr() {
    let e = err(&format!(
        "{HEAD}conditions = [{{ remote_ip = {{ in = [\"10.0.0.0/8\", \"10.0.0/33\"] }} }}]\nactions = [{{ stop = true }}]\n"
    ));
    assert_eq!(
        rule_kind(&e),
        &RuleErrorKind::Pattern(PatternError::Cidr("10.0.0/33".into()))
    );
    assert_eq!(e.field.as_deref(), Some("conditions[0].remote_ip.in"));
    assert_eq!(e.line, 7);
}

#[test]
fn reply_code_classes() {
    let e = err(&format!(
        "{HEAD}actions = [{{ reject = {{ code = 451, text = \"x\" }} }}]\n"
    ));
    assert_eq!(
        rule_kind(&e),
        &RuleErrorKind::Value(ValueError::ReplyCodeClass {
            code: 451,
            expected_class: 5
        })
    );
    assert_eq!(e.field.as_deref(), Some("actions[0].reject"));
    let e = err(&format!(
        "{HEAD}actions = [{{ tempfail = {{ code = 550, text = \"x\" }} }}]\n"
    ));
    assert_eq!(
        rule_kind(&e),
        &RuleErrorKind::Value(ValueError::ReplyCodeClass {
            code: 550,
            expected_class: 4
        })
    );
    let e = err(&format!(
        "{HEAD}actions = [{{ tempfail = {{ enhanced = \"5.7.1\", text = \"x\" }} }}]\n"
    ));
    assert!(matches!(
        rule_kind(&e),
        RuleErrorKind::Value(ValueError::EnhancedCode {
            expected_class: 4,
            ..
        })
    ));
}

#[test]
fn unknown_tls_versions_and_mechanisms() {
    let e = err(&format!(
        "{HEAD}actions = [{{ relay_tls_versions = [\"TLSv1.2\", \"TLSv1.4\"] }}]\n"
    ));
    assert_eq!(
        rule_kind(&e),
        &RuleErrorKind::Pattern(PatternError::UnknownTlsVersion("TLSv1.4".into()))
    );
    assert_eq!(e.field.as_deref(), Some("actions[0].relay_tls_versions[1]"));
    let e = err(&format!(
        "{HEAD}conditions = [{{ tls_version = {{ at_least = \"TLS2\" }} }}]\nactions = [{{ stop = true }}]\n"
    ));
    assert_eq!(
        rule_kind(&e),
        &RuleErrorKind::Pattern(PatternError::UnknownTlsVersion("TLS2".into()))
    );
    let e = err(&format!(
        "{HEAD}actions = [{{ tls_auth = [\"PLAIN\", \"LOGON\"] }}]\n"
    ));
    assert_eq!(
        rule_kind(&e),
        &RuleErrorKind::Pattern(PatternError::UnknownMechanism("LOGON".into()))
    );
    assert_eq!(e.field.as_deref(), Some("actions[0].tls_auth[1]"));
    let e = err(&format!("{HEAD}actions = [{{ plain_auth = \"on\" }}]\n"));
    assert_eq!(
        rule_kind(&e),
        &RuleErrorKind::Pattern(PatternError::BadAuthSetting("on".into()))
    );
    let e = err(&format!(
        "{HEAD}actions = [{{ relay_tls = \"starttls\" }}]\n"
    ));
    assert_eq!(
        rule_kind(&e),
        &RuleErrorKind::Pattern(PatternError::UnknownRelayTlsMode("starttls".into()))
    );
}

#[test]
fn nonsense_stage_combinations() {
    let e = err(&format!(
        "{HEAD}conditions = [{{ recipient_domain = {{ is = \"x.example\" }} }}]\nactions = [{{ plain_auth = \"off\" }}]\n"
    ));
    assert!(matches!(rule_kind(&e), RuleErrorKind::NoCommonStage { .. }));
    assert_eq!(e.field.as_deref(), Some("conditions[0].recipient_domain"));
    assert!(e.to_string().contains("known only from rcpt on"), "{e}");
    let e = err(&format!(
        "{HEAD}actions = [{{ relay_tls = \"required\" }}, {{ add_header = {{ name = \"X\", value = \"y\" }} }}]\n"
    ));
    assert!(matches!(rule_kind(&e), RuleErrorKind::NoCommonStage { .. }));
    assert_eq!(e.field.as_deref(), Some("actions[1].add_header"));
    let e = err(&format!(
        "{HEAD}stages = [\"connect\"]\nactions = [{{ tls_auth = \"off\" }}]\n"
    ));
    assert!(matches!(
        rule_kind(&e),
        RuleErrorKind::StagesNotApplicable { .. }
    ));
    let e = err(&format!(
        "{HEAD}stages = [\"quit\"]\nactions = [{{ stop = true }}]\n"
    ));
    assert_eq!(
        rule_kind(&e),
        &RuleErrorKind::Pattern(PatternError::UnknownStage("quit".into()))
    );
}

#[test]
fn structural_mistakes() {
    let e = err(&format!("{HEAD}actions = []\n"));
    assert_eq!(rule_kind(&e), &RuleErrorKind::NoActions);
    let e = err(&format!(
        "{HEAD}actions = [{{ accept = true }}, {{ relay_tls = \"required\" }}]\n"
    ));
    assert_eq!(
        rule_kind(&e),
        &RuleErrorKind::ActionAfterEnd { ending: "accept" }
    );
    let e = err(&format!("{HEAD}actions = [{{ stop = false }}]\n"));
    assert_eq!(
        rule_kind(&e),
        &RuleErrorKind::Pattern(PatternError::FalseFlag)
    );
    let e = err(
        "[[rule]]\nname = \"a\"\nactions = [{ stop = true }]\n[[rule]]\nname = \"a\"\nactions = [{ stop = true }]\n",
    );
    assert_eq!(rule_kind(&e), &RuleErrorKind::DuplicateName { first: 0 });
    assert_eq!((e.index, e.line), (Some(1), 5));
    let e = err(&format!(
        "{HEAD}actions = [{{ relay_host = \"bad host:25\" }}]\n"
    ));
    assert!(matches!(
        rule_kind(&e),
        RuleErrorKind::Value(ValueError::RelayHost(_))
    ));
    let e = err(&format!(
        "{HEAD}actions = [{{ add_header = {{ name = \"X\", value = \"a\\r\\nBcc: x\" }} }}]\n"
    ));
    assert!(matches!(
        rule_kind(&e),
        RuleErrorKind::Value(ValueError::Header(_))
    ));
    let e = err(&format!(
        "{HEAD}conditions = [{{ sender = {{ wildcard = \"\" }} }}]\nactions = [{{ stop = true }}]\n"
    ));
    assert_eq!(
        rule_kind(&e),
        &RuleErrorKind::Pattern(PatternError::EmptyWildcard)
    );
    let e = err(&format!(
        "{HEAD}conditions = [{{ body = {{ is = \"9BIT\" }} }}]\nactions = [{{ stop = true }}]\n"
    ));
    assert_eq!(
        rule_kind(&e),
        &RuleErrorKind::Pattern(PatternError::UnknownBodyType("9BIT".into()))
    );
}

#[test]
fn shape_errors_name_the_field() {
    let e = err(&format!(
        "{HEAD}conditions = [{{ recipient_domian = {{ is = \"x\" }} }}]\nactions = [{{ stop = true }}]\n"
    ));
    assert!(matches!(*e.kind, LoadErrorKind::Shape(_)));
    assert_eq!(
        (e.line, e.index, e.field.as_deref()),
        (7, Some(1), Some("conditions[0]"))
    );
    assert!(
        e.to_string().contains("unknown variant `recipient_domian`"),
        "{e}"
    );
    let e = err(&format!("{HEAD}actoins = [{{ stop = true }}]\n"));
    assert_eq!(e.field.as_deref(), Some("actoins"));
    assert!(e.to_string().contains("unknown field `actoins`"), "{e}");
    let e = err(&format!(
        "{HEAD}conditions = [{{ tls = \"yes\" }}]\nactions = [{{ stop = true }}]\n"
    ));
    assert_eq!(e.field.as_deref(), Some("conditions[0].tls"));
    assert!(e.to_string().contains("expected a boolean"), "{e}");
    let e = err(&format!(
        "{HEAD}conditions = [{{ tls = false, relaying = true }}]\nactions = [{{ stop = true }}]\n"
    ));
    assert!(
        e.to_string().contains("its own { key = value } table"),
        "{e}"
    );
    let e = err("[[rule]]\nname = \"a\nactions = []\n");
    assert!(matches!(*e.kind, LoadErrorKind::Syntax(_)));
    assert_eq!(e.line, 2);
}

#[test]
fn relay_auth_needs_a_user_and_a_password_file() {
    let e = err(&format!(
        "{HEAD}actions = [{{ relay_auth = {{ user = \"\", password_file = \"pw\" }} }}]\n"
    ));
    assert!(matches!(
        rule_kind(&e),
        RuleErrorKind::Value(ValueError::RelayAuth(_))
    ));
    assert_eq!(e.field.as_deref(), Some("actions[0].relay_auth"));
    assert_eq!(e.line, 7);
    // The password itself has no place in the rules.
    let e = err(&format!(
        "{HEAD}actions = [{{ relay_auth = {{ user = \"u\", password = \"s3cret\" }} }}]\n"
    ));
    assert!(matches!(*e.kind, LoadErrorKind::Shape(_)), "{e}");
    assert!(e.to_string().contains("unknown field `password`"), "{e}");
}
