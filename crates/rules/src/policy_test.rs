//! Policy tests as data: cases of facts with the expected decision and
//! plans, run against a rule set, reported with a diff on failure.

use std::fmt;

use serde::Deserialize;

use postern_proto::{TlsVersion, TlsVersionSet};

use crate::action::{Destination, TrustAnchors};
use crate::auth::{AuthOffer, MechanismSet};
use crate::explain::Trace;
use crate::facts::Facts;
use crate::load::{Document, LoadError, LoadErrorKind, Seg};
use crate::model::RuleSet;
use crate::names::KeywordOrList;
use crate::plan::VerdictKind;
use crate::stage::Stage;
use crate::tls::RelayTlsMode;

/// A file of policy-test cases.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PolicySuite {
    /// The file name given to the loader.
    pub file: String,
    /// The rules file the cases are written for, as given by the top-level
    /// `rules` key (resolved by the caller: this crate does no IO).
    pub rules: Option<String>,
    /// The cases, in order.
    pub cases: Vec<PolicyCase>,
}

/// One case: facts, how far to walk, and what to expect.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PolicyCase {
    /// The case's name.
    pub name: String,
    /// The last stage to walk (default: data).
    pub until: Stage,
    /// The facts.
    pub facts: Facts,
    /// What must hold; keys left out are not checked.
    pub expect: Expectation,
}

/// Expected results. Every field is optional; only those given are checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Expectation {
    /// The verdict: accept, reject or tempfail.
    pub decision: Option<VerdictKind>,
    /// The refusing (or last) stage.
    pub stage: Option<Stage>,
    /// The deciding rule.
    pub rule: Option<String>,
    /// The reply code.
    pub code: Option<u16>,
    /// The enhanced status code.
    pub enhanced: Option<String>,
    /// The reply text.
    pub text: Option<String>,
    /// AUTH on plaintext connections.
    pub plain_auth: Option<AuthOffer>,
    /// AUTH on TLS connections.
    pub tls_auth: Option<AuthOffer>,
    /// Relay route.
    pub relay_route: Option<Destination>,
    /// Relay TLS mode.
    pub relay_tls: Option<RelayTlsMode>,
    /// Effective (usable) relay TLS versions.
    pub relay_versions: Option<TlsVersionSet>,
    /// Relay trust anchors.
    pub relay_trust_anchors: Option<TrustAnchors>,
    /// Whether the relay plan can be carried out.
    pub relay_deliverable: Option<bool>,
    /// Headers added, as `Name: value`.
    pub headers: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    #[serde(default)]
    rules: Option<String>,
    #[serde(default)]
    case: Vec<CaseFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    name: String,
    #[serde(default)]
    until: Option<Stage>,
    #[serde(default)]
    facts: Facts,
    expect: ExpectFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFile {
    #[serde(default)]
    decision: Option<VerdictKind>,
    #[serde(default)]
    stage: Option<Stage>,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    enhanced: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    auth: Option<AuthExpectFile>,
    #[serde(default)]
    relay: Option<RelayExpectFile>,
    #[serde(default)]
    headers: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthExpectFile {
    #[serde(default)]
    plain: Option<KeywordOrList>,
    #[serde(default)]
    tls: Option<KeywordOrList>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RelayExpectFile {
    #[serde(default)]
    route: Option<String>,
    #[serde(default)]
    tls: Option<RelayTlsMode>,
    #[serde(default)]
    versions: Option<Vec<TlsVersion>>,
    #[serde(default)]
    trust_anchors: Option<KeywordOrList>,
    #[serde(default)]
    deliverable: Option<bool>,
}

fn auth_expect(v: &KeywordOrList) -> Result<AuthOffer, String> {
    match v {
        KeywordOrList::Keyword(k) if k.eq_ignore_ascii_case("off") => Ok(AuthOffer::Off),
        KeywordOrList::Keyword(k) => {
            Err(format!("{k:?}: expected \"off\" or a list of mechanisms"))
        }
        KeywordOrList::List(l) => l
            .iter()
            .try_fold(MechanismSet::EMPTY, |set, n| {
                set.with_name(n)
                    .ok_or_else(|| format!("unknown AUTH mechanism {n:?}"))
            })
            .map(AuthOffer::On),
    }
}

impl PolicySuite {
    /// Loads a policy-test file. `file_name` is only used in messages.
    pub fn from_toml_str(src: &str, file_name: &str) -> Result<PolicySuite, LoadError> {
        let doc = Document::parse(src, file_name)?;
        let file: SuiteFile = doc.deserialize("case")?;
        let mut cases = Vec::new();
        for (i, c) in file.case.into_iter().enumerate() {
            let fail = |field: &str, msg: String| {
                let mut path = vec![
                    Seg::Key("case".into()),
                    Seg::Index(i),
                    Seg::Key("expect".into()),
                ];
                path.extend(field.split('.').map(|k| Seg::Key(k.to_owned())));
                let mut e = doc.error(&path, None, LoadErrorKind::Case(msg)).with_item(
                    Some(i),
                    Some(c.name.clone()),
                    Some(format!("expect.{field}")),
                );
                e.item = "case";
                e
            };
            let e = &c.expect;
            let auth = e.auth.as_ref();
            let relay = e.relay.as_ref();
            let expect = Expectation {
                decision: e.decision,
                stage: e.stage,
                rule: e.rule.clone(),
                code: e.code,
                enhanced: e.enhanced.clone(),
                text: e.text.clone(),
                plain_auth: auth
                    .and_then(|a| a.plain.as_ref())
                    .map(auth_expect)
                    .transpose()
                    .map_err(|m| fail("auth.plain", m))?,
                tls_auth: auth
                    .and_then(|a| a.tls.as_ref())
                    .map(auth_expect)
                    .transpose()
                    .map_err(|m| fail("auth.tls", m))?,
                relay_route: relay
                    .and_then(|r| r.route.as_deref())
                    .map(|r| {
                        if r.eq_ignore_ascii_case("mx") {
                            Ok(Destination::Mx)
                        } else {
                            Destination::smart_host(r).map_err(|e| e.to_string())
                        }
                    })
                    .transpose()
                    .map_err(|m| fail("relay.route", m))?,
                relay_tls: relay.and_then(|r| r.tls),
                relay_versions: relay
                    .and_then(|r| r.versions.as_deref())
                    .map(TlsVersionSet::of),
                relay_trust_anchors: relay
                    .and_then(|r| r.trust_anchors.as_ref())
                    .map(|t| match t {
                        KeywordOrList::Keyword(k) if k.eq_ignore_ascii_case("system") => {
                            Ok(TrustAnchors::System)
                        }
                        KeywordOrList::Keyword(k) => {
                            Err(format!("{k:?}: expected \"system\" or a list of files"))
                        }
                        KeywordOrList::List(l) => Ok(TrustAnchors::Files(l.clone())),
                    })
                    .transpose()
                    .map_err(|m| fail("relay.trust_anchors", m))?,
                relay_deliverable: relay.and_then(|r| r.deliverable),
                headers: e.headers.clone(),
            };
            cases.push(PolicyCase {
                name: c.name,
                until: c.until.unwrap_or(Stage::Data),
                facts: c.facts,
                expect,
            });
        }
        Ok(PolicySuite {
            file: file_name.to_owned(),
            rules: file.rules,
            cases,
        })
    }

    /// Runs every case against `rules`.
    pub fn run(&self, rules: &RuleSet) -> PolicyTestReport {
        PolicyTestReport {
            file: self.file.clone(),
            cases: self.cases.iter().map(|c| c.run(rules)).collect(),
        }
    }
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn list<T: fmt::Display>(items: impl Iterator<Item = T>) -> String {
    let items: Vec<String> = items.map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", items.join(", "))
}

fn auth_text(p: &AuthOffer) -> String {
    match p {
        AuthOffer::Off => quoted("off"),
        AuthOffer::On(set) => list(set.names()),
    }
}

fn anchors_text(t: &TrustAnchors) -> String {
    match t {
        TrustAnchors::System => quoted("system"),
        TrustAnchors::Files(f) => list(f.iter()),
    }
}

const NONE: &str = "(none)";
const NOT_REACHED: &str = "(not reached)";

impl PolicyCase {
    /// Runs the case: walks the stages and compares what was expected.
    pub fn run(&self, rules: &RuleSet) -> CaseReport {
        let trace = rules.explain_until(self.until, &self.facts);
        let e = &self.expect;
        let v = &trace.verdict;
        let reply = v.reply.as_ref();
        let auth = trace.auth.as_ref();
        let relay = trace.relay.as_ref();
        let opt = |s: Option<String>| s.unwrap_or_else(|| NONE.to_owned());
        let mut lines = Vec::new();
        let mut check = |key: &str, expected: Option<String>, actual: String| {
            if let Some(expected) = expected {
                if expected == actual {
                    lines.push(DiffLine::Same(format!("{key} = {actual}")));
                } else {
                    lines.push(DiffLine::Expected(format!("{key} = {expected}")));
                    lines.push(DiffLine::Actual(format!("{key} = {actual}")));
                }
            }
        };
        check(
            "decision",
            e.decision.map(|d| quoted(d.name())),
            quoted(v.decision.name()),
        );
        check(
            "stage",
            e.stage.map(|s| quoted(s.name())),
            opt(v.stage.map(|s| quoted(s.name()))),
        );
        check(
            "rule",
            e.rule.as_deref().map(quoted),
            opt(v.rule.as_deref().map(quoted)),
        );
        check(
            "code",
            e.code.map(|c| c.to_string()),
            opt(reply.map(|r| r.code.to_string())),
        );
        check(
            "enhanced",
            e.enhanced.as_deref().map(quoted),
            opt(reply.and_then(|r| r.enhanced.as_deref()).map(quoted)),
        );
        check(
            "text",
            e.text.as_deref().map(quoted),
            opt(reply.map(|r| quoted(&r.text))),
        );
        let reached = |s: Option<String>| s.unwrap_or_else(|| NOT_REACHED.to_owned());
        check(
            "auth.plain",
            e.plain_auth.as_ref().map(auth_text),
            reached(auth.map(|a| auth_text(&a.plain))),
        );
        check(
            "auth.tls",
            e.tls_auth.as_ref().map(auth_text),
            reached(auth.map(|a| auth_text(&a.tls))),
        );
        check(
            "relay.route",
            e.relay_route.as_ref().map(|r| quoted(&r.to_string())),
            reached(relay.map(|r| quoted(&r.route.to_string()))),
        );
        check(
            "relay.tls",
            e.relay_tls.map(|m| quoted(m.name())),
            reached(relay.map(|r| quoted(r.tls.name()))),
        );
        check(
            "relay.versions",
            e.relay_versions.map(|v| list(v.iter())),
            reached(relay.map(|r| list(r.versions.iter()))),
        );
        check(
            "relay.trust_anchors",
            e.relay_trust_anchors.as_ref().map(anchors_text),
            reached(relay.map(|r| anchors_text(&r.trust_anchors))),
        );
        check(
            "relay.deliverable",
            e.relay_deliverable.map(|d| d.to_string()),
            reached(relay.map(|r| r.problem.is_none().to_string())),
        );
        check(
            "headers",
            e.headers.as_ref().map(|h| list(h.iter())),
            list(trace.headers.iter()),
        );
        CaseReport {
            name: self.name.clone(),
            diff: lines,
            trace,
        }
    }
}

/// One line of a case's comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiffLine {
    /// Expected and actual agree.
    Same(String),
    /// What was expected (shown with `-`).
    Expected(String),
    /// What happened instead (shown with `+`).
    Actual(String),
}

/// The result of one case.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CaseReport {
    /// The case's name.
    pub name: String,
    /// Each checked key, expected against actual.
    pub diff: Vec<DiffLine>,
    /// The full trace, to show why.
    pub trace: Trace,
}

impl CaseReport {
    /// Whether every checked key matched.
    pub fn passed(&self) -> bool {
        self.diff.iter().all(|l| matches!(l, DiffLine::Same(_)))
    }
}

impl fmt::Display for CaseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed() {
            return writeln!(f, "ok    {}", self.name);
        }
        writeln!(f, "FAIL  {}", self.name)?;
        writeln!(f, "  expected (-) / actual (+):")?;
        for l in &self.diff {
            match l {
                DiffLine::Same(s) => writeln!(f, "      {s}")?,
                DiffLine::Expected(s) => writeln!(f, "    - {s}")?,
                DiffLine::Actual(s) => writeln!(f, "    + {s}")?,
            }
        }
        writeln!(f, "  trace:")?;
        for line in self.trace.to_string().lines() {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

/// The results of a suite.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PolicyTestReport {
    /// The suite's file name.
    pub file: String,
    /// One report per case, in order.
    pub cases: Vec<CaseReport>,
}

impl PolicyTestReport {
    /// Whether every case passed.
    pub fn passed(&self) -> bool {
        self.cases.iter().all(CaseReport::passed)
    }

    /// The failing cases.
    pub fn failures(&self) -> impl Iterator<Item = &CaseReport> {
        self.cases.iter().filter(|c| !c.passed())
    }
}

impl fmt::Display for PolicyTestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failing = self.failures().count();
        writeln!(
            f,
            "policy tests {}: {} cases, {} failing",
            self.file,
            self.cases.len(),
            failing
        )?;
        for c in &self.cases {
            c.fmt(f)?;
        }
        Ok(())
    }
}
