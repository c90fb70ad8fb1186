//! Explain: what the rule set does to given facts, and why.

use std::collections::HashMap;
use std::fmt;

use postern_proto::TlsVersionSet;

use crate::action::{Destination, RelayAuth, Setting, TrustAnchors};
use crate::auth::AuthOffer;
use crate::eval::{Observer, run};
use crate::facts::Facts;
use crate::model::{MatchMode, RuleSet};
use crate::plan::{Outcome, VerdictKind};
use crate::stage::Stage;
use crate::tls::RelayTlsMode;

/// What the rule set does to an envelope: every stage walked, every rule
/// visited with each condition's value and result, the actions applied or
/// overridden, the verdict and the effective plans.
///
/// `Display` renders it for an operator; with the `serde` feature it
/// serialises (e.g. to JSON for tooling).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Trace {
    /// The stages evaluated, in order. The walk ends at the first stage that
    /// refuses (reject or tempfail): a refused client gets no further.
    pub stages: Vec<StageTrace>,
    /// The overall result.
    pub verdict: TraceVerdict,
    /// The inbound auth policy, from the last of HELO/AUTH evaluated.
    pub auth: Option<AuthTrace>,
    /// The outbound plan, when the recipient got through RCPT.
    pub relay: Option<RelayTrace>,
    /// Headers added at DATA, as `Name: value`.
    pub headers: Vec<String>,
}

/// One stage of a [`Trace`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct StageTrace {
    /// The stage.
    pub stage: Stage,
    /// Its decision.
    pub decision: VerdictKind,
    /// The deciding rule.
    pub rule: Option<String>,
    /// The reply, for reject and tempfail.
    pub reply: Option<ReplyTrace>,
    /// The rule whose `stop` ended the stage without a decision.
    pub stopped_by: Option<String>,
    /// The rules that apply at this stage, in order.
    pub rules: Vec<RuleTrace>,
}

/// A reply, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ReplyTrace {
    /// The reply code.
    pub code: u16,
    /// The enhanced status code.
    pub enhanced: Option<String>,
    /// The text.
    pub text: String,
}

impl fmt::Display for ReplyTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = &self.enhanced {
            write!(f, " {e}")?;
        }
        write!(f, " {}", self.text)
    }
}

/// One rule at one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RuleTrace {
    /// Zero-based position in the rule set (displayed one-based, `#1`).
    pub index: usize,
    /// The rule's name.
    pub name: String,
    /// How its conditions combine.
    pub mode: MatchMode,
    /// Whether evaluation reached the rule (an earlier rule may have ended
    /// the stage).
    pub visited: bool,
    /// Whether it matched; false when not visited.
    pub matched: bool,
    /// Each condition with the fact's value and the result.
    pub conditions: Vec<ConditionTrace>,
    /// Each action and what became of it.
    pub actions: Vec<ActionTrace>,
}

/// One condition's evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ConditionTrace {
    /// The condition as written, e.g. `recipient_domain is "mydomain.com"`.
    pub condition: String,
    /// The fact's value; `None` when unknown.
    pub value: Option<String>,
    /// The result; `None` when unknown (which does not match).
    pub result: Option<bool>,
}

/// One action and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ActionTrace {
    /// The action as written.
    pub action: String,
    /// Applied, overridden or not applied.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub status: ActionStatus,
}

/// What became of an action.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case", tag = "status"))]
#[non_exhaustive]
pub enum ActionStatus {
    /// It took effect.
    Applied,
    /// It was applied, then a later rule set the same setting.
    Overridden {
        /// The overriding rule.
        by: String,
    },
    /// The rule did not match or was not visited.
    NotApplied,
}

/// The overall result of a [`Trace`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct TraceVerdict {
    /// Reject or tempfail at the refusing stage; otherwise accept (by a
    /// rule or because no rule objected).
    pub decision: VerdictKind,
    /// The refusing stage, or the last stage walked.
    pub stage: Option<Stage>,
    /// The refusing rule, or the rule that accepted the last stage.
    pub rule: Option<String>,
    /// The reply, for refusals.
    pub reply: Option<ReplyTrace>,
}

/// The effective inbound auth policy with the rules that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct AuthTrace {
    /// The stage it was taken from.
    pub stage: Stage,
    /// AUTH on plaintext connections.
    pub plain: AuthOffer,
    /// The rule that set it; `None` for the default (off).
    pub plain_rule: Option<String>,
    /// AUTH on TLS connections.
    pub tls: AuthOffer,
    /// The rule that set it; `None` for the default (off).
    pub tls_rule: Option<String>,
}

/// The effective outbound plan with the rules that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RelayTrace {
    /// Where the mail goes.
    pub route: Destination,
    /// The rule that set the route.
    pub route_rule: Option<String>,
    /// The TLS mode.
    pub tls: RelayTlsMode,
    /// The rule that set the mode.
    pub tls_rule: Option<String>,
    /// The versions that will be used: the requested ones the stack speaks.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::names::version_set"))]
    pub versions: TlsVersionSet,
    /// The versions the rules asked for.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::names::version_set"))]
    pub requested_versions: TlsVersionSet,
    /// The rule that set the versions.
    pub versions_rule: Option<String>,
    /// The trust anchors.
    pub trust_anchors: TrustAnchors,
    /// The rule that set them.
    pub trust_anchors_rule: Option<String>,
    /// The smart-host credentials (user and password file, never the
    /// password).
    pub auth: Option<RelayAuth>,
    /// The rule that set them.
    pub auth_rule: Option<String>,
    /// Why the plan cannot be carried out, if so.
    pub problem: Option<String>,
}

#[derive(Default)]
struct Recorder {
    rules: Vec<RuleRec>,
}

struct RuleRec {
    index: usize,
    conditions: Vec<Option<bool>>,
    matched: bool,
    applied: usize,
}

impl Recorder {
    fn rec(&mut self, rule: usize) -> &mut RuleRec {
        if self.rules.last().is_none_or(|r| r.index != rule) {
            self.rules.push(RuleRec {
                index: rule,
                conditions: Vec::new(),
                matched: false,
                applied: 0,
            });
        }
        self.rules.last_mut().expect("just pushed")
    }
}

impl Observer for Recorder {
    const EXHAUSTIVE: bool = true;

    fn condition(&mut self, rule: usize, _index: usize, result: Option<bool>) {
        self.rec(rule).conditions.push(result);
    }

    fn rule(&mut self, rule: usize, matched: bool) {
        self.rec(rule).matched = matched;
    }

    fn action(&mut self, rule: usize, index: usize) {
        self.rec(rule).applied = index + 1;
    }
}

impl RuleSet {
    /// Evaluates one stage like [`RuleSet::evaluate`] and records why.
    pub fn explain_stage<'r>(&'r self, stage: Stage, facts: &Facts) -> (Outcome<'r>, StageTrace) {
        let mut rec = Recorder::default();
        let outcome = run(self, stage, facts, &mut rec);
        let mut visited: HashMap<usize, RuleRec> =
            rec.rules.into_iter().map(|r| (r.index, r)).collect();
        let mut rules = Vec::new();
        for &i in self.at_stage(stage) {
            let i = i as usize;
            let rule = &self.rules()[i];
            let r = visited.remove(&i);
            let conditions = rule
                .conditions()
                .iter()
                .enumerate()
                .map(|(c, cond)| ConditionTrace {
                    condition: cond.to_string(),
                    value: cond.test.value(facts),
                    result: r
                        .as_ref()
                        .and_then(|r| r.conditions.get(c).copied().flatten()),
                })
                .collect();
            let applied = r.as_ref().map_or(0, |r| r.applied);
            let actions = rule
                .actions()
                .iter()
                .enumerate()
                .map(|(a, action)| ActionTrace {
                    action: action.to_string(),
                    status: if a < applied {
                        ActionStatus::Applied
                    } else {
                        ActionStatus::NotApplied
                    },
                })
                .collect();
            rules.push(RuleTrace {
                index: i,
                name: rule.name().to_owned(),
                mode: rule.mode(),
                visited: r.is_some(),
                matched: r.as_ref().is_some_and(|r| r.matched),
                conditions,
                actions,
            });
        }
        // A setting applied earlier and set again later is overridden.
        let mut last: HashMap<Setting, (usize, usize)> = HashMap::new();
        for ri in 0..rules.len() {
            let rule = &self.rules()[rules[ri].index];
            for (ai, action) in rule.actions().iter().enumerate() {
                if rules[ri].actions[ai].status != ActionStatus::Applied {
                    continue;
                }
                if let Some(setting) = action.setting()
                    && let Some((pr, pa)) = last.insert(setting, (ri, ai))
                {
                    rules[pr].actions[pa].status = ActionStatus::Overridden {
                        by: rule.name().to_owned(),
                    };
                }
            }
        }
        let trace = StageTrace {
            stage,
            decision: outcome.verdict.kind(),
            rule: outcome.verdict.rule().map(|r| r.name().to_owned()),
            reply: outcome.verdict.reply().map(|r| ReplyTrace {
                code: r.code().get(),
                enhanced: r.enhanced().map(|e| e.to_string()),
                text: r.lines().join(" "),
            }),
            stopped_by: outcome.stopped_by.map(|r| r.name().to_owned()),
            rules,
        };
        (outcome, trace)
    }

    /// Walks every stage, connect to data, with the same facts.
    pub fn explain(&self, facts: &Facts) -> Trace {
        self.explain_until(Stage::Data, facts)
    }

    /// Walks the stages from connect up to and including `last`.
    pub fn explain_until(&self, last: Stage, facts: &Facts) -> Trace {
        let mut stages = Vec::new();
        let mut auth = None;
        let mut relay = None;
        let mut headers = Vec::new();
        for stage in Stage::ALL.into_iter().filter(|s| *s <= last) {
            let (outcome, trace) = self.explain_stage(stage, facts);
            let refused = outcome.verdict.is_refusal();
            if matches!(stage, Stage::Helo | Stage::Auth) {
                auth = Some(AuthTrace {
                    stage,
                    plain: outcome.auth.plain,
                    plain_rule: self.setter(&trace, Setting::PlainAuth),
                    tls: outcome.auth.tls,
                    tls_rule: self.setter(&trace, Setting::TlsAuth),
                });
            }
            if stage == Stage::Rcpt && !refused {
                let plan = outcome.relay;
                relay = Some(RelayTrace {
                    route: plan.route.clone(),
                    route_rule: self.setter(&trace, Setting::RelayRoute),
                    tls: plan.tls,
                    tls_rule: self.setter(&trace, Setting::RelayTls),
                    versions: plan.versions(),
                    requested_versions: plan.requested_versions,
                    versions_rule: self.setter(&trace, Setting::RelayTlsVersions),
                    trust_anchors: plan.trust_anchors.clone(),
                    trust_anchors_rule: self.setter(&trace, Setting::RelayTrustAnchors),
                    auth: plan.auth.cloned(),
                    auth_rule: self.setter(&trace, Setting::RelayAuth),
                    problem: plan.problem().map(|p| p.to_string()),
                });
            }
            if stage == Stage::Data && !refused {
                headers = outcome.headers.iter().map(|h| h.to_string()).collect();
            }
            stages.push(trace);
            if refused {
                break;
            }
        }
        let verdict = match stages.last() {
            Some(s) if matches!(s.decision, VerdictKind::Reject | VerdictKind::Tempfail) => {
                TraceVerdict {
                    decision: s.decision,
                    stage: Some(s.stage),
                    rule: s.rule.clone(),
                    reply: s.reply.clone(),
                }
            }
            last => TraceVerdict {
                decision: VerdictKind::Accept,
                stage: last.map(|s| s.stage),
                rule: last.and_then(|s| s.rule.clone()),
                reply: None,
            },
        };
        Trace {
            stages,
            verdict,
            auth,
            relay,
            headers,
        }
    }
}

impl RuleSet {
    /// The rule whose applied action for `setting` is in effect at the end
    /// of the stage.
    fn setter(&self, trace: &StageTrace, setting: Setting) -> Option<String> {
        trace
            .rules
            .iter()
            .rev()
            .find(|r| {
                self.rules()[r.index]
                    .actions()
                    .iter()
                    .zip(&r.actions)
                    .any(|(a, t)| t.status == ActionStatus::Applied && a.setting() == Some(setting))
            })
            .map(|r| r.name.clone())
    }
}

fn source(rule: &Option<String>) -> String {
    match rule {
        Some(r) => format!("rule {r}"),
        None => "default".to_owned(),
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.stages {
            s.fmt(f)?;
        }
        let v = &self.verdict;
        match (v.decision, &v.reply) {
            (VerdictKind::Reject | VerdictKind::Tempfail, Some(reply)) => writeln!(
                f,
                "verdict: {} at {} by rule {}: {reply}",
                v.decision,
                v.stage.map_or("?", Stage::name),
                v.rule.as_deref().unwrap_or("?"),
            )?,
            _ => match &v.rule {
                Some(r) => writeln!(f, "verdict: accept (rule {r})")?,
                None => writeln!(f, "verdict: accept (no rule objected)")?,
            },
        }
        match &self.auth {
            Some(a) => {
                writeln!(f, "inbound auth (as decided at {}):", a.stage)?;
                writeln!(
                    f,
                    "  plaintext connections: {} [{}]",
                    a.plain,
                    source(&a.plain_rule)
                )?;
                writeln!(
                    f,
                    "  TLS connections:       {} [{}]",
                    a.tls,
                    source(&a.tls_rule)
                )?;
            }
            None => writeln!(f, "inbound auth: not reached")?,
        }
        match &self.relay {
            Some(r) => {
                writeln!(f, "outbound relay:")?;
                writeln!(
                    f,
                    "  route:         {} [{}]",
                    r.route,
                    source(&r.route_rule)
                )?;
                writeln!(f, "  TLS mode:      {} [{}]", r.tls, source(&r.tls_rule))?;
                match r.tls {
                    RelayTlsMode::Dane => writeln!(
                        f,
                        "  DANE:          authenticated by TLSA records where the MX, address and TLSA records are DNSSEC-signed; otherwise opportunistic STARTTLS; a failed TLSA lookup or bogus DNSSEC defers (RFC 7672)"
                    )?,
                    RelayTlsMode::DaneOnly => writeln!(
                        f,
                        "  DANE:          required: deferred unless the next hop is authenticated by DNSSEC-validated TLSA records (RFC 7672)"
                    )?,
                    RelayTlsMode::MtaSts => writeln!(
                        f,
                        "  MTA-STS:       an enforced policy allows only its MX hosts, with the certificate verified for the MX name; without a policy, opportunistic STARTTLS; DANE wins where signed (RFC 8461)"
                    )?,
                    _ => {}
                }
                if r.versions == r.requested_versions {
                    writeln!(
                        f,
                        "  TLS versions:  {} [{}]",
                        r.versions,
                        source(&r.versions_rule)
                    )?;
                } else {
                    writeln!(
                        f,
                        "  TLS versions:  {} (asked for {}; the others cannot be negotiated) [{}]",
                        r.versions,
                        r.requested_versions,
                        source(&r.versions_rule)
                    )?;
                }
                writeln!(
                    f,
                    "  trust anchors: {} [{}]",
                    r.trust_anchors,
                    source(&r.trust_anchors_rule)
                )?;
                match &r.auth {
                    // Credentials only ever go to a smart host.
                    Some(a) if matches!(r.route, Destination::SmartHost { .. }) => writeln!(
                        f,
                        "  credentials:   user {:?}, password in {} (sent over TLS only) [{}]",
                        a.user(),
                        a.password_file(),
                        source(&r.auth_rule)
                    )?,
                    Some(_) => writeln!(
                        f,
                        "  credentials:   none (relay_auth is set [{}] but the route is not a smart host)",
                        source(&r.auth_rule)
                    )?,
                    None => {}
                }
                if let Some(p) = &r.problem {
                    writeln!(f, "  PROBLEM: {p}")?;
                }
            }
            None => writeln!(f, "outbound relay: not reached")?,
        }
        for h in &self.headers {
            writeln!(f, "add header: {h}")?;
        }
        Ok(())
    }
}

impl fmt::Display for StageTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stage {}: {}", self.stage, self.decision)?;
        if let Some(reply) = &self.reply {
            write!(f, " {reply}")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, " [rule {rule}]")?;
        }
        if let Some(rule) = &self.stopped_by {
            write!(f, " (stopped by rule {rule})")?;
        }
        writeln!(f)?;
        if self.rules.is_empty() {
            writeln!(f, "  no rule applies at this stage")?;
        }
        for r in &self.rules {
            r.fmt(f)?;
        }
        Ok(())
    }
}

impl fmt::Display for RuleTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "  #{} {}: ", self.index + 1, self.name)?;
        if !self.visited {
            return writeln!(f, "not visited (the stage had already ended)");
        }
        let how = if self.conditions.is_empty() {
            "no conditions".to_owned()
        } else {
            format!("match {}", self.mode)
        };
        writeln!(
            f,
            "{} ({how})",
            if self.matched { "matched" } else { "no match" }
        )?;
        for c in &self.conditions {
            let result = match c.result {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown",
            };
            let value = c.value.as_deref().unwrap_or("unknown");
            writeln!(f, "      {result:<8} {}   (value: {value})", c.condition)?;
        }
        if self.matched {
            for a in &self.actions {
                match &a.status {
                    ActionStatus::Applied => writeln!(f, "      applied  {}", a.action)?,
                    ActionStatus::Overridden { by } => {
                        writeln!(f, "      overridden by rule {by}: {}", a.action)?
                    }
                    ActionStatus::NotApplied => writeln!(f, "      skipped  {}", a.action)?,
                }
            }
        }
        Ok(())
    }
}
