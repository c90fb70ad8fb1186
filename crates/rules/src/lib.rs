//! Ordered SMTP acceptance and routing rules (docs filled in below).

mod action;
#[cfg(feature = "serde")]
mod config;
#[cfg(feature = "serde")]
mod load;
#[cfg(feature = "serde")]
mod names;
mod auth;
mod condition;
mod error;
mod eval;
mod explain;
mod facts;
mod lint;
mod model;
mod pattern;
mod plan;
#[cfg(feature = "serde")]
mod policy_test;
mod stage;
mod tls;

pub use action::{Action, EnhancedCode, Header, Reply, Route, Setting, TrustAnchors};
pub use auth::{AuthPolicy, Mechanism, MechanismSet};
pub use condition::{Condition, Field, IpMatch, SizeMatch, Test, ValueMatch, VersionMatch};
pub use error::{PatternError, RuleError, RuleErrorKind, ValueError};
pub use explain::{
    ActionStatus, ActionTrace, AuthTrace, ConditionTrace, RelayTrace, ReplyTrace, RuleTrace,
    StageTrace, Trace, Verdict,
};
pub use facts::{BodyType, ConnectionFacts, Facts, MessageFacts, RecipientFacts, SenderFacts, SessionFacts};
pub use model::{MatchMode, Rule, RuleSet};
pub use pattern::{Pattern, TextList, TextMatch, Wildcard};
pub use plan::{AuthPlan, Decision, DecisionKind, Outcome, PlanProblem, RelayPlan};
pub use stage::{Stage, StageSet};
pub use tls::{RelayTlsMode, TlsVersion, VersionSet};
pub use lint::{Finding, FindingKind, Severity};
#[cfg(feature = "serde")]
pub use config::{
    ActionConfig, ConditionConfig, HeaderConfig, IpMatchConfig, ReplyConfig, RuleConfig,
    RuleSetConfig, SizeMatchConfig, TextMatchConfig, ValueMatchConfig, VersionMatchConfig,
};
#[cfg(feature = "serde")]
pub use load::{LoadError, LoadErrorKind};
#[cfg(feature = "serde")]
pub use names::KeywordOrList;
#[cfg(feature = "serde")]
pub use policy_test::{CaseReport, DiffLine, Expectation, PolicyCase, PolicyReport, PolicySuite};
