//! The evaluation engine, shared by [`RuleSet::evaluate`] and
//! [`RuleSet::explain`] so that what is explained is what runs.

use crate::action::Action;
use crate::facts::Facts;
use crate::model::{MatchMode, Rule, RuleSet};
use crate::plan::{Outcome, Verdict};
use crate::stage::Stage;

/// Receives what the engine does. The no-op implementation compiles away,
/// so plain evaluation pays nothing for explainability.
pub(crate) trait Observer {
    /// Whether every condition must be evaluated even once the result is
    /// known (explain shows each condition's result).
    const EXHAUSTIVE: bool;

    fn condition(&mut self, _rule: usize, _index: usize, _result: Option<bool>) {}
    fn rule(&mut self, _rule: usize, _matched: bool) {}
    fn action(&mut self, _rule: usize, _index: usize) {}
}

pub(crate) struct Silent;

impl Observer for Silent {
    const EXHAUSTIVE: bool = false;
}

fn matches_observed<O: Observer>(rule: &Rule, index: usize, facts: &Facts, obs: &mut O) -> bool {
    if !O::EXHAUSTIVE {
        return rule.matches(facts);
    }
    let mut all = true;
    let mut any = false;
    for (i, c) in rule.conditions().iter().enumerate() {
        let r = c.eval(facts);
        obs.condition(index, i, r);
        all &= r == Some(true);
        any |= r == Some(true);
    }
    rule.conditions().is_empty()
        || match rule.mode() {
            MatchMode::All => all,
            MatchMode::Any => any,
        }
}

pub(crate) fn run<'r, O: Observer>(
    set: &'r RuleSet,
    stage: Stage,
    facts: &Facts,
    obs: &mut O,
) -> Outcome<'r> {
    let mut out = Outcome::new(stage);
    let rules = set.rules();
    for &i in set.at_stage(stage) {
        let i = i as usize;
        let rule = &rules[i];
        let matched = matches_observed(rule, i, facts, obs);
        obs.rule(i, matched);
        if !matched {
            continue;
        }
        for (a, action) in rule.actions().iter().enumerate() {
            obs.action(i, a);
            match action {
                Action::PlainAuth(p) => out.auth.plain = *p,
                Action::TlsAuth(p) => out.auth.tls = *p,
                Action::RelayRoute(r) => out.relay.route = r,
                Action::RelayTls(m) => out.relay.tls = *m,
                Action::RelayTlsVersions(v) => out.relay.requested_versions = *v,
                Action::RelayTrustAnchors(t) => out.relay.trust_anchors = t,
                Action::RelayAuth(a) => out.relay.auth = Some(a),
                Action::AddHeader(h) => out.headers.push(h),
                // Ending actions are always last in a rule (checked when the
                // rule is built), so returning here skips nothing of it.
                Action::Accept => {
                    out.verdict = Verdict::Accept { rule };
                    return out;
                }
                Action::Reject(reply) => {
                    out.verdict = Verdict::Reject { rule, reply };
                    return out;
                }
                Action::Tempfail(reply) => {
                    out.verdict = Verdict::Tempfail { rule, reply };
                    return out;
                }
                Action::Stop => {
                    out.stopped_by = Some(rule);
                    return out;
                }
            }
        }
    }
    out
}

impl RuleSet {
    /// Evaluates the rules for one stage: the hot path, called per command
    /// and per recipient. Does not allocate (unless a header is added) and
    /// builds no trace; use [`RuleSet::explain`] to see why.
    pub fn evaluate<'r>(&'r self, stage: Stage, facts: &Facts) -> Outcome<'r> {
        run(self, stage, facts, &mut Silent)
    }
}
