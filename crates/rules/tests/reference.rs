//! Property test: the engine agrees with a naive reference interpreter on
//! all/any matching, negation, unknown facts, stage selection, ordering,
//! decisions, stop and setting overrides.

use postern_proto::{ForwardPath, Mailbox};
use postern_rules::{
    Action, Condition, Facts, MatchMode, RelayTlsMode, Rule, RuleSet, Stage, Test, TextMatch,
    ValueMatch,
};
use proptest::prelude::*;

/// A condition in a form the reference can evaluate independently.
#[derive(Debug, Clone)]
enum Cond {
    Tls(bool),
    Port(u16),
    Relaying(bool),
    DomainIs(&'static str),
    DomainIn(Vec<&'static str>),
    DomainWildcard(&'static str),
    DomainRegex(&'static str),
}

#[derive(Debug, Clone)]
enum Act {
    Reject,
    Tempfail,
    Accept,
    Stop,
    RelayTls(RelayTlsMode),
}

#[derive(Debug, Clone)]
struct RefRule {
    mode: MatchMode,
    conds: Vec<(Cond, bool)>,
    acts: Vec<Act>,
}

const DOMAINS: [&str; 4] = ["a.example", "B.example", "x.a.example", "c.org"];

fn cond() -> impl Strategy<Value = Cond> {
    prop_oneof![
        any::<bool>().prop_map(Cond::Tls),
        prop_oneof![Just(25u16), Just(587)].prop_map(Cond::Port),
        any::<bool>().prop_map(Cond::Relaying),
        prop::sample::select(DOMAINS.to_vec()).prop_map(Cond::DomainIs),
        prop::sample::subsequence(DOMAINS.to_vec(), 1..3).prop_map(Cond::DomainIn),
        prop::sample::select(vec!["*.example", "*.a.example", "?.org"])
            .prop_map(Cond::DomainWildcard),
        prop::sample::select(vec![r"^b\.", r"example$", r"^c"]).prop_map(Cond::DomainRegex),
    ]
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        Just(Act::Reject),
        Just(Act::Tempfail),
        Just(Act::Accept),
        Just(Act::Stop),
        prop::sample::select(RelayTlsMode::ALL.to_vec()).prop_map(Act::RelayTls),
    ]
}

fn rule() -> impl Strategy<Value = RefRule> {
    (
        prop_oneof![Just(MatchMode::All), Just(MatchMode::Any)],
        prop::collection::vec((cond(), any::<bool>()), 0..4),
        prop::collection::vec(
            prop::sample::select(RelayTlsMode::ALL.to_vec()).prop_map(Act::RelayTls),
            0..3,
        ),
        prop::option::of(act()),
    )
        .prop_map(|(mode, conds, mut acts, last)| {
            acts.extend(last);
            if acts.is_empty() {
                acts.push(Act::Stop);
            }
            RefRule { mode, conds, acts }
        })
}

fn facts() -> impl Strategy<Value = Facts> {
    (
        prop::option::of(any::<bool>()),
        prop::option::of(prop_oneof![Just(25u16), Just(587), Just(465)]),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(vec![
            "a.example",
            "b.EXAMPLE",
            "x.a.example",
            "c.org",
            "d.net",
        ])),
    )
        .prop_map(|(tls, port, relaying, domain)| {
            let mut f = Facts::new();
            f.connection.tls = tls;
            f.connection.local_port = port;
            f.recipient.relaying = relaying;
            if let Some(d) = domain {
                let address = format!("user@{d}");
                let mailbox = Mailbox::parse(&address).expect("valid address");
                f.recipient.set_path(ForwardPath::Mailbox(mailbox));
            }
            f
        })
}

fn build(i: usize, r: &RefRule) -> Rule {
    let conditions = r
        .conds
        .iter()
        .map(|(c, neg)| {
            let test = match c {
                Cond::Tls(b) => Test::Tls(*b),
                Cond::Port(p) => Test::LocalPort(ValueMatch::Is(*p)),
                Cond::Relaying(b) => Test::Relaying(*b),
                Cond::DomainIs(d) => Test::RecipientDomain(TextMatch::is(*d)),
                Cond::DomainIn(l) => Test::RecipientDomain(TextMatch::one_of(l.iter().copied())),
                Cond::DomainWildcard(w) => Test::RecipientDomain(TextMatch::wildcard(w).unwrap()),
                Cond::DomainRegex(re) => Test::RecipientDomain(TextMatch::regex(re).unwrap()),
            };
            if *neg {
                Condition::not(test)
            } else {
                Condition::new(test)
            }
        })
        .collect();
    let actions = r
        .acts
        .iter()
        .map(|a| match a {
            Act::Reject => Action::reject(550, None, "no").unwrap(),
            Act::Tempfail => Action::tempfail(450, None, "later").unwrap(),
            Act::Accept => Action::Accept,
            Act::Stop => Action::Stop,
            Act::RelayTls(m) => Action::RelayTls(*m),
        })
        .collect();
    Rule::new(&format!("r{i}"), r.mode, conditions, actions).unwrap()
}

/// The reference: three-valued conditions computed from scratch with
/// lower-cased strings and a regex translation of wildcards.
fn ref_cond(c: &Cond, f: &Facts) -> Option<bool> {
    let domain = f
        .recipient
        .address()
        .map(|a| a.split('@').nth(1).unwrap().to_lowercase());
    match c {
        Cond::Tls(b) => f.connection.tls.map(|t| t == *b),
        Cond::Port(p) => f.connection.local_port.map(|q| q == *p),
        Cond::Relaying(b) => f.recipient.relaying.map(|r| r == *b),
        Cond::DomainIs(d) => domain.map(|x| x == d.to_lowercase()),
        Cond::DomainIn(l) => domain.map(|x| l.iter().any(|d| d.to_lowercase() == x)),
        Cond::DomainWildcard(w) => domain.map(|x| {
            let re = format!(
                "^{}$",
                regex::escape(w).replace(r"\*", ".*").replace(r"\?", ".")
            );
            regex::Regex::new(&re).unwrap().is_match(&x)
        }),
        Cond::DomainRegex(re) => domain.map(|x| {
            regex::Regex::new(&format!("(?i){re}"))
                .unwrap()
                .is_match(&x)
        }),
    }
}

fn ref_matches(r: &RefRule, f: &Facts) -> bool {
    let results: Vec<Option<bool>> = r
        .conds
        .iter()
        .map(|(c, neg)| ref_cond(c, f).map(|v| v != *neg))
        .collect();
    if results.is_empty() {
        return true;
    }
    match r.mode {
        MatchMode::All => results.iter().all(|v| *v == Some(true)),
        MatchMode::Any => results.contains(&Some(true)),
    }
}

/// (decision name, deciding or stopping rule, relay TLS mode)
fn reference(rules: &[RefRule], stage: Stage, f: &Facts) -> (String, Option<usize>, RelayTlsMode) {
    let mut tls = RelayTlsMode::Opportunistic;
    for (i, r) in rules.iter().enumerate() {
        let has_relay = r.acts.iter().any(|a| matches!(a, Act::RelayTls(_)));
        let needs_rcpt = r.conds.iter().any(|(c, _)| {
            matches!(
                c,
                Cond::Relaying(_)
                    | Cond::DomainIs(_)
                    | Cond::DomainIn(_)
                    | Cond::DomainWildcard(_)
                    | Cond::DomainRegex(_)
            )
        });
        let applies = if has_relay {
            stage == Stage::Rcpt
        } else if needs_rcpt {
            stage >= Stage::Rcpt
        } else {
            true
        };
        if !applies || !ref_matches(r, f) {
            continue;
        }
        for a in &r.acts {
            match a {
                Act::RelayTls(m) => tls = *m,
                Act::Reject => return ("reject".into(), Some(i), tls),
                Act::Tempfail => return ("tempfail".into(), Some(i), tls),
                Act::Accept => return ("accept".into(), Some(i), tls),
                Act::Stop => return ("stop".into(), Some(i), tls),
            }
        }
    }
    ("continue".into(), None, tls)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn engine_matches_reference(
        rules in prop::collection::vec(rule(), 0..8),
        f in facts(),
        stage in prop::sample::select(Stage::ALL.to_vec()),
    ) {
        let set = RuleSet::new(rules.iter().enumerate().map(|(i, r)| build(i, r)).collect()).unwrap();
        for (i, r) in rules.iter().enumerate() {
            prop_assert_eq!(set.rules()[i].matches(&f), ref_matches(r, &f), "rule {}", i);
        }
        let out = set.evaluate(stage, &f);
        let (kind, by, tls) = reference(&rules, stage, &f);
        let got_kind = if out.stopped_by.is_some() { "stop".to_owned() } else { out.verdict.kind().to_string() };
        let got_by = out.verdict.rule().or(out.stopped_by).map(|r| r.name()[1..].parse::<usize>().unwrap());
        prop_assert_eq!(got_kind, kind);
        prop_assert_eq!(got_by, by);
        if stage == Stage::Rcpt {
            prop_assert_eq!(out.relay.tls, tls);
        }
        // explain runs the same engine: its stage decision must agree.
        let (_, trace) = set.explain_stage(stage, &f);
        prop_assert_eq!(trace.decision, out.verdict.kind());
    }
}
