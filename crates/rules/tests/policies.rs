//! Runs every `tests/policies/*.cases.toml` file against the rules file it
//! names, and checks that failures are reported with a readable diff.

use std::fs;
use std::path::Path;

use postern_rules::{PolicySuite, RuleSet};

fn load_pair(dir: &Path, cases_file: &Path) -> (PolicySuite, RuleSet) {
    let name = cases_file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let src = fs::read_to_string(cases_file).unwrap();
    let suite = PolicySuite::from_toml_str(&src, &name).unwrap_or_else(|e| panic!("{e}"));
    let rules_name = suite
        .rules
        .clone()
        .unwrap_or_else(|| panic!("{name} names no rules file"));
    let rules_src = fs::read_to_string(dir.join(&rules_name)).unwrap();
    let rules = RuleSet::from_toml_str(&rules_src, &rules_name).unwrap_or_else(|e| panic!("{e}"));
    (suite, rules)
}

#[test]
fn every_policy_file_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policies");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".cases.toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no policy files in {}", dir.display());
    let mut total = 0;
    for file in &files {
        let (suite, rules) = load_pair(&dir, file);
        let report = suite.run(&rules);
        assert!(report.passed(), "{report}");
        total += report.cases.len();
    }
    assert!(total >= 9, "only {total} policy cases ran");
}

const RULES: &str = r#"
[[rule]]
name = "allow_only_tls_for_mydomain_com"
conditions = [{ tls = false }, { recipient_domain = { is = "mydomain.com" } }]
actions = [{ reject = { text = "Accepting only secure delivery (STARTTLS) for mydomain.com" } }]
"#;

#[test]
fn a_failing_case_shows_expected_and_actual_and_the_trace() {
    let cases = r#"
[[case]]
name = "wrongly expects acceptance"
facts.connection = { tls = false }
facts.recipient = { address = "bob@mydomain.com" }
expect = { decision = "accept", code = 550 }
"#;
    let rules = RuleSet::from_toml_str(RULES, "rules.toml").unwrap();
    let suite = PolicySuite::from_toml_str(cases, "cases.toml").unwrap();
    let report = suite.run(&rules);
    assert!(!report.passed());
    assert_eq!(report.failures().count(), 1);
    let text = report.to_string();
    assert!(
        text.contains("policy tests cases.toml: 1 cases, 1 failing"),
        "{text}"
    );
    assert!(text.contains("FAIL  wrongly expects acceptance"), "{text}");
    assert!(
        text.contains("    - decision = \"accept\"\n    + decision = \"reject\""),
        "{text}"
    );
    assert!(text.contains("      code = 550"), "{text}");
    assert!(text.contains("stage rcpt: reject 550 5.7.1"), "{text}");
}

#[test]
fn plans_not_reached_are_reported_as_such() {
    let cases = r#"
[[case]]
name = "refused before any plan"
until = "connect"
facts.connection = { tls = false }
expect = { auth = { plain = "off" }, relay = { route = "mx" } }
"#;
    let rules = RuleSet::from_toml_str(RULES, "rules.toml").unwrap();
    let report = PolicySuite::from_toml_str(cases, "cases.toml")
        .unwrap()
        .run(&rules);
    let text = report.to_string();
    assert!(text.contains("+ auth.plain = (not reached)"), "{text}");
    assert!(text.contains("+ relay.route = (not reached)"), "{text}");
}

#[test]
fn case_files_are_validated_with_locations() {
    let bad_key = "[[case]]\nname = \"x\"\nexpect = { decison = \"accept\" }\n";
    let e = PolicySuite::from_toml_str(bad_key, "c.toml").unwrap_err();
    assert_eq!((e.line, e.index, e.item), (3, Some(0), "case"));
    assert_eq!(e.field.as_deref(), Some("expect.decison"));
    assert!(e.to_string().starts_with("c.toml:3:"), "{e}");

    let bad_mech = "[[case]]\nname = \"x\"\nexpect = { auth = { tls = [\"PLAIN\", \"LOGON\"] } }\n";
    let e = PolicySuite::from_toml_str(bad_mech, "c.toml").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("expect.auth.tls"));
    assert!(e.to_string().contains("LOGON"), "{e}");

    let bad_fact =
        "[[case]]\nname = \"x\"\nfacts.connection = { tls_version = \"TLSv9\" }\nexpect = {}\n";
    let e = PolicySuite::from_toml_str(bad_fact, "c.toml").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("facts.connection.tls_version"));
    assert_eq!(e.name.as_deref(), Some("x"));
}
