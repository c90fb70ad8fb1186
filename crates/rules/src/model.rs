//! Rules and rule sets, validated when built.

use std::collections::HashMap;
use std::fmt;

use crate::action::{Action, RelayAuth};
use crate::condition::Condition;
use crate::error::{RuleError, RuleErrorKind};
use crate::stage::{Stage, StageSet};

/// How a rule combines its conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum MatchMode {
    /// Every condition must hold (the default).
    #[default]
    All,
    /// At least one condition must hold.
    Any,
}

impl fmt::Display for MatchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchMode::All => "all",
            MatchMode::Any => "any",
        })
    }
}

/// A named rule: conditions, a match mode and actions.
///
/// A rule without conditions matches everything, whatever its mode, as in
/// the guide ("leave empty: the rule will match any email message").
#[derive(Debug, Clone)]
pub struct Rule {
    name: String,
    mode: MatchMode,
    conditions: Vec<Condition>,
    actions: Vec<Action>,
    stages: StageSet,
}

impl Rule {
    /// Builds a rule that applies at every stage its conditions and actions
    /// allow.
    pub fn new(
        name: &str,
        mode: MatchMode,
        conditions: Vec<Condition>,
        actions: Vec<Action>,
    ) -> Result<Rule, RuleError> {
        Rule::with_stages(name, mode, conditions, actions, None)
    }

    /// Builds a rule restricted to `stages`, which must be stages at which
    /// its conditions are known and its actions make sense.
    pub fn with_stages(
        name: &str,
        mode: MatchMode,
        conditions: Vec<Condition>,
        actions: Vec<Action>,
        stages: Option<StageSet>,
    ) -> Result<Rule, RuleError> {
        let err = |field: String, kind| RuleError::new(name, field, kind);
        if name.trim().is_empty() {
            return Err(err(String::new(), RuleErrorKind::EmptyName));
        }
        if actions.is_empty() {
            return Err(err("actions".into(), RuleErrorKind::NoActions));
        }
        if let Some(pos) = actions.iter().position(Action::ends_stage)
            && pos + 1 < actions.len()
        {
            return Err(err(
                format!("actions[{}].{}", pos + 1, actions[pos + 1].name()),
                RuleErrorKind::ActionAfterEnd {
                    ending: actions[pos].name(),
                },
            ));
        }
        let possible = possible_stages(name, &conditions, &actions)?;
        let stages = match stages {
            None => possible,
            Some(asked) if possible.contains_all(asked) && !asked.is_empty() => asked,
            Some(asked) => {
                return Err(err(
                    "stages".into(),
                    RuleErrorKind::StagesNotApplicable { asked, possible },
                ));
            }
        };
        Ok(Rule {
            name: name.to_owned(),
            mode,
            conditions,
            actions,
            stages,
        })
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the conditions combine.
    pub fn mode(&self) -> MatchMode {
        self.mode
    }

    /// The conditions, in order.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// The actions, in order.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// The stages at which the rule is evaluated.
    pub fn stages(&self) -> StageSet {
        self.stages
    }

    /// Whether the rule has no conditions and so matches everything.
    pub fn is_catch_all(&self) -> bool {
        self.conditions.is_empty()
    }

    /// The last action, if it ends the stage.
    pub fn ending(&self) -> Option<&Action> {
        self.actions.last().filter(|a| a.ends_stage())
    }

    /// Whether the rule matches `facts`. Short-circuits and does not
    /// allocate; unknown conditions count as not holding.
    #[inline]
    pub fn matches(&self, facts: &crate::Facts) -> bool {
        if self.conditions.is_empty() {
            return true;
        }
        match self.mode {
            MatchMode::All => self.conditions.iter().all(|c| c.eval(facts) == Some(true)),
            MatchMode::Any => self.conditions.iter().any(|c| c.eval(facts) == Some(true)),
        }
    }
}

fn possible_stages(
    name: &str,
    conditions: &[Condition],
    actions: &[Action],
) -> Result<StageSet, RuleError> {
    // Action stage sets are either every stage or pairwise disjoint, and
    // condition stage sets are nested ("from X on"), so an empty
    // intersection is always explained by one pair: find it and name it.
    let mut set = StageSet::ALL;
    for (i, a) in actions.iter().enumerate() {
        let next = set.intersect(a.stages());
        if next.is_empty() {
            let (j, b) = actions[..i]
                .iter()
                .enumerate()
                .find(|(_, b)| b.stages().intersect(a.stages()).is_empty())
                .unwrap_or((0, &actions[0]));
            return Err(RuleError::new(
                name,
                format!("actions[{i}].{}", a.name()),
                RuleErrorKind::NoCommonStage {
                    detail: format!(
                        "action `{}` applies only at [{}], but action `{}` (actions[{j}]) applies only at [{}]; split them into two rules",
                        a.name(),
                        a.stages(),
                        b.name(),
                        b.stages()
                    ),
                },
            ));
        }
        set = next;
    }
    for (i, c) in conditions.iter().enumerate() {
        let known = c.field().stages();
        let next = set.intersect(known);
        if next.is_empty() {
            let (j, a) = actions
                .iter()
                .enumerate()
                .find(|(_, a)| a.stages().intersect(known).is_empty())
                .unwrap_or((0, &actions[0]));
            return Err(RuleError::new(
                name,
                format!("conditions[{i}].{}", c.field()),
                RuleErrorKind::NoCommonStage {
                    detail: format!(
                        "condition `{}` is known only from {} on, but action `{}` (actions[{j}]) applies only at [{}]",
                        c.field(),
                        c.field().known_from(),
                        a.name(),
                        a.stages()
                    ),
                },
            ));
        }
        set = next;
    }
    Ok(set)
}

/// An ordered list of rules, with per-stage indexes built once so that
/// evaluation only visits the rules that can apply.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    by_stage: [Vec<u32>; 6],
}

impl RuleSet {
    /// Builds a rule set; fails on duplicate rule names.
    pub fn new(rules: Vec<Rule>) -> Result<RuleSet, RuleError> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, r) in rules.iter().enumerate() {
            if let Some(&first) = seen.get(r.name()) {
                let mut e =
                    RuleError::new(r.name(), "name", RuleErrorKind::DuplicateName { first });
                e.index = Some(i);
                return Err(e);
            }
            seen.insert(r.name(), i);
        }
        let mut by_stage: [Vec<u32>; 6] = Default::default();
        for (i, r) in rules.iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 rules");
            for s in r.stages().iter() {
                by_stage[s.index()].push(i);
            }
        }
        Ok(RuleSet { rules, by_stage })
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Every `relay_auth` action with its rule and position (rule index,
    /// action index), for callers that check the password files before
    /// running (the engine itself never opens them).
    pub fn relay_auths(&self) -> impl Iterator<Item = (usize, usize, &RelayAuth)> {
        self.rules.iter().enumerate().flat_map(|(i, r)| {
            r.actions()
                .iter()
                .enumerate()
                .filter_map(move |(a, action)| match action {
                    Action::RelayAuth(auth) => Some((i, a, auth)),
                    _ => None,
                })
        })
    }

    /// The rule with this name.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// Indexes of the rules evaluated at `stage`, in order.
    pub(crate) fn at_stage(&self, stage: Stage) -> &[u32] {
        &self.by_stage[stage.index()]
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthOffer;
    use crate::condition::Test;
    use crate::pattern::TextMatch;
    use crate::tls::RelayTlsMode;

    fn reject() -> Action {
        Action::reject(550, None, "no").unwrap()
    }

    #[test]
    fn stages_follow_conditions_and_actions() {
        let r = Rule::new(
            "a",
            MatchMode::All,
            vec![],
            vec![Action::PlainAuth(AuthOffer::Off)],
        )
        .unwrap();
        assert_eq!(r.stages(), StageSet::of(&[Stage::Helo, Stage::Auth]));
        let r = Rule::new(
            "b",
            MatchMode::All,
            vec![Test::Tls(false).into()],
            vec![reject()],
        )
        .unwrap();
        assert_eq!(r.stages(), StageSet::ALL);
        let r = Rule::new(
            "c",
            MatchMode::All,
            vec![Test::RecipientDomain(TextMatch::is("x")).into()],
            vec![reject()],
        )
        .unwrap();
        assert_eq!(r.stages(), StageSet::of(&[Stage::Rcpt, Stage::Data]));
    }

    #[test]
    fn nonsense_stage_combinations_are_refused() {
        let e = Rule::new(
            "auth_by_rcpt",
            MatchMode::All,
            vec![Test::RecipientDomain(TextMatch::is("x")).into()],
            vec![Action::PlainAuth(AuthOffer::Off)],
        )
        .unwrap_err();
        assert_eq!(e.field, "conditions[0].recipient_domain");
        assert!(matches!(e.kind, RuleErrorKind::NoCommonStage { .. }));
        assert!(e.to_string().contains("known only from rcpt on"), "{e}");

        let e = Rule::new(
            "mixed",
            MatchMode::All,
            vec![],
            vec![
                Action::TlsAuth(AuthOffer::Off),
                Action::RelayTls(RelayTlsMode::Required),
            ],
        )
        .unwrap_err();
        assert_eq!(e.field, "actions[1].relay_tls");
        assert!(e.to_string().contains("split them"), "{e}");

        let e = Rule::with_stages(
            "early",
            MatchMode::All,
            vec![],
            vec![Action::RelayTls(RelayTlsMode::Required)],
            Some(StageSet::only(Stage::Connect)),
        )
        .unwrap_err();
        assert!(matches!(e.kind, RuleErrorKind::StagesNotApplicable { .. }));
    }

    #[test]
    fn structural_errors() {
        let e = Rule::new("x", MatchMode::All, vec![], vec![]).unwrap_err();
        assert_eq!(e.kind, RuleErrorKind::NoActions);
        let e = Rule::new(" ", MatchMode::All, vec![], vec![Action::Stop]).unwrap_err();
        assert_eq!(e.kind, RuleErrorKind::EmptyName);
        let e = Rule::new("x", MatchMode::All, vec![], vec![reject(), Action::Stop]).unwrap_err();
        assert_eq!(e.kind, RuleErrorKind::ActionAfterEnd { ending: "reject" });
        assert_eq!(e.field, "actions[1].stop");
        let a = Rule::new("x", MatchMode::All, vec![], vec![Action::Stop]).unwrap();
        let e = RuleSet::new(vec![a.clone(), a]).unwrap_err();
        assert_eq!(e.kind, RuleErrorKind::DuplicateName { first: 0 });
        assert_eq!(e.index, Some(1));
    }
}
