//! Ordered SMTP acceptance and routing rules: evaluation, explain traces,
//! lint and policy tests. No IO.
//!
//! An operator's security decisions ("no AUTH on plaintext connections",
//! "reject plaintext mail for mydomain.com", "relay to example.com only over
//! TLS") are an ordered list of named [`Rule`]s. Each rule has conditions
//! combined with [`MatchMode::All`] or [`MatchMode::Any`] (no conditions
//! matches everything) and actions applied in order. The engine evaluates
//! [`Facts`] the caller supplies at one [`Stage`] at a time:
//!
//! * rules run in order; a matching rule applies its actions in order;
//! * accept, reject and tempfail decide the stage and end its evaluation;
//!   `stop` ends it without a decision;
//! * settings (auth policy per transport, relay route, relay TLS mode,
//!   versions and trust anchors) accumulate, a later rule overriding an
//!   earlier one;
//! * a rule applies only at the stages where its conditions are known and
//!   its actions make sense; nonsense combinations fail to load;
//! * a condition on a fact the caller did not supply is *unknown* and never
//!   matches, negated or not.
//!
//! [`RuleSet::evaluate`] is the allocation-free hot path;
//! [`RuleSet::explain`] returns a [`Trace`] saying why; [`RuleSet::lint`]
//! finds rules that cannot fire, overridden settings, insecure AUTH and TLS
//! versions the stack cannot provide; [`PolicySuite`] runs policy tests
//! written as data. TLS versions the stack cannot speak (SSLv2 to TLS 1.1)
//! are representable so they can be reported, and are never widened: the
//! effective relay plan only lists usable versions.
//!
//! With the `serde` feature (on by default) rules load from TOML with
//! errors naming the file, line, rule and field, and traces serialise.
//!
//! # The guide's rule set
//!
//! ```
//! use postern_proto::{ForwardPath, Mailbox};
//! use postern_rules::{AuthOffer, Facts, RelayTlsMode, RuleSet, Stage, VerdictKind};
//!
//! let rcpt = |a| ForwardPath::Mailbox(Mailbox::parse(a).expect("valid address"));
//!
//! let rules = RuleSet::from_toml_str(r#"
//! [[rule]]
//! name = "disableAUTH_on_non_SSL"
//! actions = [{ plain_auth = "off" }]
//!
//! [[rule]]
//! name = "enableAUTH_on_SSL"
//! actions = [{ tls_auth = ["PLAIN", "LOGIN"] }]
//!
//! [[rule]]
//! name = "allow_only_tls_for_mydomain_com"
//! match = "all"
//! conditions = [{ tls = false }, { recipient_domain = { is = "mydomain.com" } }]
//! actions = [{ reject = { code = 550, enhanced = "5.7.1", text = "Accepting only secure delivery (STARTTLS) for mydomain.com" } }]
//!
//! [[rule]]
//! name = "use_only_tls11_and_12_when_relaying"
//! match = "all"
//! conditions = [{ relaying = true }, { recipient_domain = { is = "example.com" } }]
//! actions = [
//!   { relay_host = "smtp.example.net:465" },
//!   { relay_tls = "implicit" },
//!   { relay_tls_versions = ["TLSv1.1", "TLSv1.2"] },
//! ]
//! "#, "guide.toml")?;
//!
//! // EHLO on a plaintext connection: AUTH is not advertised.
//! let helo = rules.evaluate(Stage::Helo, &Facts::new().tls(false));
//! assert_eq!(helo.auth.for_connection(false), AuthOffer::Off);
//! assert!(helo.auth.for_connection(true).is_on());
//!
//! // Plaintext mail for mydomain.com is refused at RCPT.
//! let plain = Facts::new().tls(false).recipient(rcpt("bob@mydomain.com"));
//! let refused = rules.evaluate(Stage::Rcpt, &plain);
//! assert_eq!(refused.verdict.kind(), VerdictKind::Reject);
//! // The reply was built when the rules loaded: it is sent as it is.
//! let reply = refused.verdict.reply().unwrap();
//! assert_eq!(reply.to_vec(), b"550 5.7.1 Accepting only secure delivery (STARTTLS) for mydomain.com\r\n");
//!
//! // Relaying to example.com: smart host, implicit TLS, and only TLS 1.2,
//! // because TLS 1.1 cannot be negotiated and is dropped, not replaced.
//! let relay = Facts::new().tls(true).recipient(rcpt("dave@example.com")).relaying(true);
//! let plan = rules.evaluate(Stage::Rcpt, &relay).relay;
//! assert_eq!(plan.route.to_string(), "smtp.example.net:465");
//! assert_eq!(plan.tls, RelayTlsMode::Implicit);
//! assert_eq!(plan.versions().to_string(), "TLSv1.2");
//!
//! // Lint says so.
//! let findings = rules.lint();
//! assert_eq!(findings.len(), 1);
//! assert!(findings[0].to_string().contains("TLSv1.1"));
//!
//! // And explain shows every stage, rule, condition and the plans.
//! let trace = rules.explain(&plain);
//! assert!(trace.to_string().contains("verdict: reject at rcpt by rule allow_only_tls_for_mydomain_com"));
//! # Ok::<(), postern_rules::LoadError>(())
//! ```
//!
//! The rule file format, the lint findings and the policy-test format are
//! described in `docs/rules.md` of the Postern repository.

mod action;
mod auth;
mod condition;
#[cfg(feature = "serde")]
mod config;
mod error;
mod eval;
mod explain;
mod facts;
mod lint;
#[cfg(feature = "serde")]
mod load;
mod model;
#[cfg(feature = "serde")]
mod names;
mod pattern;
mod plan;
#[cfg(feature = "serde")]
mod policy_test;
mod stage;
mod tls;

pub use action::{Action, Destination, Header, RelayAuth, Setting, TrustAnchors};
pub use auth::{AuthOffer, MechanismSet};
pub use condition::{Condition, Field, IpMatch, SizeMatch, Test, ValueMatch, VersionMatch};
#[cfg(feature = "serde")]
pub use config::{
    ActionConfig, ConditionConfig, HeaderConfig, IpMatchConfig, RelayAuthConfig, ReplyConfig,
    RuleConfig, RuleSetConfig, SizeMatchConfig, TextMatchConfig, ValueMatchConfig,
    VersionMatchConfig,
};
pub use error::{PatternError, RuleError, RuleErrorKind, ValueError};
pub use explain::{
    ActionStatus, ActionTrace, AuthTrace, ConditionTrace, RelayTrace, ReplyTrace, RuleTrace,
    StageTrace, Trace, TraceVerdict,
};
pub use facts::{ConnectionFacts, Facts, MessageFacts, RecipientFacts, SenderFacts, SessionFacts};
pub use lint::{Finding, FindingKind, Severity};
#[cfg(feature = "serde")]
pub use load::{LoadError, LoadErrorKind, TomlSource, split_item};
pub use model::{MatchMode, Rule, RuleSet};
#[cfg(feature = "serde")]
pub use names::KeywordOrList;
pub use pattern::{Pattern, TextList, TextMatch, Wildcard};
pub use plan::{AuthPlan, Outcome, PlanProblem, RelayPlan, Verdict, VerdictKind};
#[cfg(feature = "serde")]
pub use policy_test::{
    CaseReport, DiffLine, Expectation, PolicyCase, PolicySuite, PolicyTestReport,
};
pub use stage::{Stage, StageSet};
pub use tls::RelayTlsMode;

/// The SMTP vocabulary the rules speak, re-exported so that callers need
/// not depend on `postern-proto` to build facts or read verdicts.
pub use postern_proto;
