//! The configuration shape of rules, as read from TOML (or any serde
//! format), and its compilation into a validated [`RuleSet`].
//!
//! These types hold what the operator wrote, as written; [`RuleSetConfig::compile`]
//! turns them into the engine's types, compiling regexes, wildcards and CIDR
//! blocks once and reporting every mistake with the rule and field.

use serde::Deserialize;

use postern_proto::{Body, TlsVersion, TlsVersionSet};

use crate::action::{Action, Destination, Header, RelayAuth, TrustAnchors};
use crate::auth::{AuthOffer, MechanismSet};
use crate::condition::{Condition, IpMatch, SizeMatch, Test, ValueMatch, VersionMatch};
use crate::error::{PatternError, RuleError, RuleErrorKind, ValueError};
use crate::model::{MatchMode, Rule, RuleSet};
use crate::names::KeywordOrList;
use crate::pattern::TextMatch;
use crate::stage::{Stage, StageSet};
use crate::tls::RelayTlsMode;

/// A rules file: `[[rule]]` tables, in order.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RuleSetConfig {
    /// The rules, in evaluation order.
    #[serde(default)]
    pub rule: Vec<RuleConfig>,
}

/// One `[[rule]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RuleConfig {
    /// Unique name, shown in traces and lint.
    pub name: String,
    /// `"all"` (default) or `"any"`.
    #[serde(default, rename = "match")]
    pub mode: MatchMode,
    /// Restricts the rule to these stages; by default it applies at every
    /// stage its conditions and actions allow.
    #[serde(default)]
    pub stages: Option<Vec<String>>,
    /// Conditions; none means the rule matches everything.
    #[serde(default)]
    pub conditions: Vec<ConditionConfig>,
    /// Actions, applied in order.
    #[serde(default)]
    pub actions: Vec<ActionConfig>,
}

/// One condition: a single-key table naming the fact, e.g. `{ tls = false }`
/// or `{ recipient_domain = { is = "mydomain.com" } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConditionConfig {
    /// Negation: `{ not = { relaying = true } }`.
    Not(Box<ConditionConfig>),
    /// `tls = bool`.
    Tls(bool),
    /// `tls_version = { is | in | at_least }`.
    TlsVersion(VersionMatchConfig),
    /// `cipher = { text operator }`.
    Cipher(TextMatchConfig),
    /// `listener = { text operator }`.
    Listener(TextMatchConfig),
    /// `local_port = { is | is_not | in }`.
    LocalPort(ValueMatchConfig<u16>),
    /// `remote_ip = { is = "addr" } | { in = ["cidr", ..] }`.
    RemoteIp(IpMatchConfig),
    /// `client_cert_verified = bool`.
    ClientCertVerified(bool),
    /// `helo = { text operator }`.
    Helo(TextMatchConfig),
    /// `authenticated = bool`.
    Authenticated(bool),
    /// `user = { text operator }`.
    User(TextMatchConfig),
    /// `sender = { text operator }`.
    Sender(TextMatchConfig),
    /// `sender_domain = { text operator }`.
    SenderDomain(TextMatchConfig),
    /// `null_sender = bool`.
    NullSender(bool),
    /// `recipient = { text operator }`.
    Recipient(TextMatchConfig),
    /// `recipient_domain = { text operator }`.
    RecipientDomain(TextMatchConfig),
    /// `local_recipient = bool`.
    LocalRecipient(bool),
    /// `relaying = bool`.
    Relaying(bool),
    /// `size = { over | at_most }`.
    Size(SizeMatchConfig),
    /// `body = { is | is_not | in }` with 7BIT, 8BITMIME, BINARYMIME.
    Body(ValueMatchConfig<String>),
    /// `smtputf8 = bool`.
    Smtputf8(bool),
    /// `requiretls = bool`.
    Requiretls(bool),
}

/// A text operator: `{ is = ".." }`, `{ is_not = ".." }`, `{ in = [..] }`,
/// `{ wildcard = "*.example.com" }`, `{ regex = ".." }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TextMatchConfig {
    /// Equal (ASCII case-insensitive).
    Is(String),
    /// Not equal.
    IsNot(String),
    /// One of.
    In(Vec<String>),
    /// Wildcard with `*` and `?`.
    Wildcard(String),
    /// Regular expression (case-insensitive, unanchored).
    Regex(String),
}

/// `{ is = v }`, `{ is_not = v }` or `{ in = [..] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ValueMatchConfig<T> {
    /// Equal.
    Is(T),
    /// Not equal.
    IsNot(T),
    /// One of.
    In(Vec<T>),
}

/// `{ is = "TLSv1.3" }`, `{ in = [..] }` or `{ at_least = "TLSv1.2" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum VersionMatchConfig {
    /// Exactly.
    Is(String),
    /// One of.
    In(Vec<String>),
    /// This or newer.
    AtLeast(String),
}

/// `{ is = "192.0.2.1" }` or `{ in = ["10.0.0.0/8", "2001:db8::/32"] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IpMatchConfig {
    /// One address.
    Is(String),
    /// Addresses and CIDR blocks.
    In(Vec<String>),
}

/// `{ over = octets }` or `{ at_most = octets }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SizeMatchConfig {
    /// Larger than.
    Over(u64),
    /// At most.
    AtMost(u64),
}

/// One action: a single-key table, e.g. `{ plain_auth = "off" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ActionConfig {
    /// `"off"` or a list of mechanisms, for plaintext connections.
    PlainAuth(KeywordOrList),
    /// `"off"` or a list of mechanisms, for TLS connections.
    TlsAuth(KeywordOrList),
    /// `accept = true`.
    Accept(bool),
    /// `reject = { code = 550, enhanced = "5.7.1", text = ".." }`.
    Reject(ReplyConfig),
    /// `tempfail = { code = 450, enhanced = "4.7.1", text = ".." }`.
    Tempfail(ReplyConfig),
    /// `relay_host = "host:port"`.
    RelayHost(String),
    /// `relay_mx = true`: deliver by MX lookup (undoes an earlier host).
    RelayMx(bool),
    /// `relay_tls = "none" | "opportunistic" | "required" | "verified" | "implicit"`.
    RelayTls(String),
    /// `relay_tls_versions = ["TLSv1.2", "TLSv1.3"]`.
    RelayTlsVersions(Vec<String>),
    /// `relay_trust_anchors = "system"` or a list of PEM files.
    RelayTrustAnchors(KeywordOrList),
    /// `relay_auth = { user = "..", password_file = ".." }`: AUTH to the
    /// smart host, over TLS only.
    RelayAuth(RelayAuthConfig),
    /// `add_header = { name = "X-..", value = ".." }`.
    AddHeader(HeaderConfig),
    /// `stop = true`.
    Stop(bool),
}

/// The reply of a reject or tempfail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ReplyConfig {
    /// The code; 550 for reject and 450 for tempfail when absent.
    #[serde(default)]
    pub code: Option<u16>,
    /// The RFC 3463 code; 5.7.1 / 4.7.1 (policy) when absent.
    #[serde(default)]
    pub enhanced: Option<String>,
    /// The text.
    pub text: String,
}

/// Smart-host credentials: the password stays in its own file, readable by
/// the server user only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RelayAuthConfig {
    /// The authentication identity.
    pub user: String,
    /// The file whose first line is the password.
    pub password_file: String,
}

/// A header to add.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HeaderConfig {
    /// Field name.
    pub name: String,
    /// Field value.
    pub value: String,
}

impl RuleSetConfig {
    /// A rules file of these rules, in evaluation order (for callers that
    /// read the `[[rule]]` tables themselves, e.g. to keep their spans).
    pub fn new(rule: Vec<RuleConfig>) -> RuleSetConfig {
        RuleSetConfig { rule }
    }

    /// Validates and compiles every rule; the error names the rule (by
    /// index and name) and the field.
    pub fn compile(&self) -> Result<RuleSet, RuleError> {
        let rules = self
            .rule
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.compile().map_err(|mut e| {
                    e.index = Some(i);
                    e
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        RuleSet::new(rules)
    }
}

type Compiled<T> = Result<T, (String, RuleErrorKind)>;

fn pattern<T>(field: &str, r: Result<T, PatternError>) -> Compiled<T> {
    r.map_err(|e| (field.to_owned(), RuleErrorKind::Pattern(e)))
}

fn value<T>(field: &str, r: Result<T, ValueError>) -> Compiled<T> {
    r.map_err(|e| (field.to_owned(), RuleErrorKind::Value(e)))
}

impl RuleConfig {
    /// Validates and compiles this rule.
    pub fn compile(&self) -> Result<Rule, RuleError> {
        let conditions = self
            .conditions
            .iter()
            .enumerate()
            .map(|(i, c)| compile_condition(&format!("conditions[{i}]"), c))
            .collect::<Compiled<Vec<_>>>();
        let actions = self
            .actions
            .iter()
            .enumerate()
            .map(|(i, a)| compile_action(&format!("actions[{i}]"), a))
            .collect::<Compiled<Vec<_>>>();
        let stages = self
            .stages
            .as_ref()
            .map(|names| {
                names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        pattern(
                            &format!("stages[{i}]"),
                            Stage::from_name(n)
                                .ok_or_else(|| PatternError::UnknownStage(n.clone())),
                        )
                    })
                    .collect::<Compiled<Vec<_>>>()
                    .map(|s| StageSet::of(&s))
            })
            .transpose();
        let fail = |(field, kind): (String, RuleErrorKind)| RuleError::new(&self.name, field, kind);
        let conditions = conditions.map_err(fail)?;
        let actions = actions.map_err(fail)?;
        let stages = stages.map_err(fail)?;
        Rule::with_stages(&self.name, self.mode, conditions, actions, stages)
    }
}

fn compile_condition(path: &str, c: &ConditionConfig) -> Compiled<Condition> {
    let here = |field: &str| format!("{path}.{field}");
    let text = |field: &str, m: &TextMatchConfig| -> Compiled<TextMatch> {
        let p = format!("{}.{}", here(field), text_op(m));
        Ok(match m {
            TextMatchConfig::Is(t) => TextMatch::is(t.as_str()),
            TextMatchConfig::IsNot(t) => TextMatch::is_not(t.as_str()),
            TextMatchConfig::In(list) if list.is_empty() => {
                return pattern(&p, Err(PatternError::EmptyList));
            }
            TextMatchConfig::In(list) => TextMatch::one_of(list.iter().map(String::as_str)),
            TextMatchConfig::Wildcard(w) => pattern(&p, TextMatch::wildcard(w))?,
            TextMatchConfig::Regex(r) => pattern(&p, TextMatch::regex(r))?,
        })
    };
    let test = match c {
        ConditionConfig::Not(inner) => {
            let inner = compile_condition(&here("not"), inner)?;
            return Ok(Condition {
                test: inner.test,
                negate: !inner.negate,
            });
        }
        ConditionConfig::Tls(b) => Test::Tls(*b),
        ConditionConfig::TlsVersion(m) => {
            let p = here("tls_version");
            let one = |op: &str, v: &str| {
                pattern(
                    &format!("{p}.{op}"),
                    TlsVersion::from_name(v)
                        .ok_or_else(|| PatternError::UnknownTlsVersion(v.to_owned())),
                )
            };
            Test::TlsVersion(match m {
                VersionMatchConfig::Is(v) => VersionMatch::Is(one("is", v)?),
                VersionMatchConfig::AtLeast(v) => VersionMatch::AtLeast(one("at_least", v)?),
                VersionMatchConfig::In(list) => {
                    VersionMatch::In(version_set(&format!("{p}.in"), list)?)
                }
            })
        }
        ConditionConfig::Cipher(m) => Test::Cipher(text("cipher", m)?),
        ConditionConfig::Listener(m) => Test::Listener(text("listener", m)?),
        ConditionConfig::LocalPort(m) => Test::LocalPort(match m {
            ValueMatchConfig::Is(v) => ValueMatch::Is(*v),
            ValueMatchConfig::IsNot(v) => ValueMatch::IsNot(*v),
            ValueMatchConfig::In(list) if list.is_empty() => {
                return pattern(&here("local_port.in"), Err(PatternError::EmptyList));
            }
            ValueMatchConfig::In(list) => ValueMatch::In(list.clone()),
        }),
        ConditionConfig::RemoteIp(m) => Test::RemoteIp(match m {
            IpMatchConfig::Is(ip) => pattern(&here("remote_ip.is"), IpMatch::parse([ip]))?,
            IpMatchConfig::In(list) => pattern(&here("remote_ip.in"), IpMatch::parse(list))?,
        }),
        ConditionConfig::ClientCertVerified(b) => Test::ClientCertVerified(*b),
        ConditionConfig::Helo(m) => Test::Helo(text("helo", m)?),
        ConditionConfig::Authenticated(b) => Test::Authenticated(*b),
        ConditionConfig::User(m) => Test::User(text("user", m)?),
        ConditionConfig::Sender(m) => Test::Sender(text("sender", m)?),
        ConditionConfig::SenderDomain(m) => Test::SenderDomain(text("sender_domain", m)?),
        ConditionConfig::NullSender(b) => Test::NullSender(*b),
        ConditionConfig::Recipient(m) => Test::Recipient(text("recipient", m)?),
        ConditionConfig::RecipientDomain(m) => Test::RecipientDomain(text("recipient_domain", m)?),
        ConditionConfig::LocalRecipient(b) => Test::LocalRecipient(*b),
        ConditionConfig::Relaying(b) => Test::Relaying(*b),
        ConditionConfig::Size(m) => Test::Size(match m {
            SizeMatchConfig::Over(n) => SizeMatch::Over(*n),
            SizeMatchConfig::AtMost(n) => SizeMatch::AtMost(*n),
        }),
        ConditionConfig::Body(m) => {
            let p = here("body");
            let one = |op: &str, v: &str| {
                pattern(
                    &format!("{p}.{op}"),
                    Body::from_keyword(v)
                        .ok_or_else(|| PatternError::UnknownBodyType(v.to_owned())),
                )
            };
            Test::Body(match m {
                ValueMatchConfig::Is(v) => ValueMatch::Is(one("is", v)?),
                ValueMatchConfig::IsNot(v) => ValueMatch::IsNot(one("is_not", v)?),
                ValueMatchConfig::In(list) => ValueMatch::In(
                    list.iter()
                        .enumerate()
                        .map(|(i, v)| one(&format!("in[{i}]"), v))
                        .collect::<Compiled<_>>()?,
                ),
            })
        }
        ConditionConfig::Smtputf8(b) => Test::Smtputf8(*b),
        ConditionConfig::Requiretls(b) => Test::Requiretls(*b),
    };
    Ok(Condition::new(test))
}

fn text_op(m: &TextMatchConfig) -> &'static str {
    match m {
        TextMatchConfig::Is(_) => "is",
        TextMatchConfig::IsNot(_) => "is_not",
        TextMatchConfig::In(_) => "in",
        TextMatchConfig::Wildcard(_) => "wildcard",
        TextMatchConfig::Regex(_) => "regex",
    }
}

fn version_set(path: &str, names: &[String]) -> Compiled<TlsVersionSet> {
    if names.is_empty() {
        return pattern(path, Err(PatternError::EmptyList));
    }
    names
        .iter()
        .enumerate()
        .try_fold(TlsVersionSet::EMPTY, |set, (i, n)| {
            let v = pattern(
                &format!("{path}[{i}]"),
                TlsVersion::from_name(n).ok_or_else(|| PatternError::UnknownTlsVersion(n.clone())),
            )?;
            Ok(set.with(v))
        })
}

fn auth_offer(path: &str, setting: &KeywordOrList) -> Compiled<AuthOffer> {
    match setting {
        KeywordOrList::Keyword(k) if k.eq_ignore_ascii_case("off") => Ok(AuthOffer::Off),
        KeywordOrList::Keyword(k) => pattern(path, Err(PatternError::BadAuthSetting(k.clone()))),
        KeywordOrList::List(l) if l.is_empty() => pattern(path, Err(PatternError::EmptyList)),
        KeywordOrList::List(l) => l
            .iter()
            .enumerate()
            .try_fold(MechanismSet::EMPTY, |set, (i, n)| {
                pattern(
                    &format!("{path}[{i}]"),
                    set.with_name(n)
                        .ok_or_else(|| PatternError::UnknownMechanism(n.clone())),
                )
            })
            .map(AuthOffer::On),
    }
}

fn flag(path: &str, on: bool, action: Action) -> Compiled<Action> {
    if on {
        Ok(action)
    } else {
        pattern(path, Err(PatternError::FalseFlag))
    }
}

fn compile_action(path: &str, a: &ActionConfig) -> Compiled<Action> {
    let here = |field: &str| format!("{path}.{field}");
    Ok(match a {
        ActionConfig::PlainAuth(s) => Action::PlainAuth(auth_offer(&here("plain_auth"), s)?),
        ActionConfig::TlsAuth(s) => Action::TlsAuth(auth_offer(&here("tls_auth"), s)?),
        ActionConfig::Accept(on) => flag(&here("accept"), *on, Action::Accept)?,
        ActionConfig::Stop(on) => flag(&here("stop"), *on, Action::Stop)?,
        ActionConfig::RelayMx(on) => {
            flag(&here("relay_mx"), *on, Action::RelayRoute(Destination::Mx))?
        }
        ActionConfig::Reject(r) => value(
            &here("reject"),
            Action::reject(
                r.code.unwrap_or(550),
                Some(r.enhanced.as_deref().unwrap_or("5.7.1")),
                &r.text,
            ),
        )?,
        ActionConfig::Tempfail(r) => value(
            &here("tempfail"),
            Action::tempfail(
                r.code.unwrap_or(450),
                Some(r.enhanced.as_deref().unwrap_or("4.7.1")),
                &r.text,
            ),
        )?,
        ActionConfig::RelayHost(h) => {
            Action::RelayRoute(value(&here("relay_host"), Destination::smart_host(h))?)
        }
        ActionConfig::RelayTls(m) => Action::RelayTls(pattern(
            &here("relay_tls"),
            RelayTlsMode::from_name(m).ok_or_else(|| PatternError::UnknownRelayTlsMode(m.clone())),
        )?),
        ActionConfig::RelayTlsVersions(v) => {
            Action::RelayTlsVersions(version_set(&here("relay_tls_versions"), v)?)
        }
        ActionConfig::RelayTrustAnchors(t) => Action::RelayTrustAnchors(match t {
            KeywordOrList::Keyword(k) if k.eq_ignore_ascii_case("system") => TrustAnchors::System,
            KeywordOrList::Keyword(k) => {
                return pattern(
                    &here("relay_trust_anchors"),
                    Err(PatternError::BadTrustAnchors(k.clone())),
                );
            }
            KeywordOrList::List(l) if l.is_empty() => {
                return pattern(&here("relay_trust_anchors"), Err(PatternError::EmptyList));
            }
            KeywordOrList::List(l) => TrustAnchors::Files(l.clone()),
        }),
        ActionConfig::RelayAuth(a) => Action::RelayAuth(value(
            &here("relay_auth"),
            RelayAuth::new(&a.user, &a.password_file),
        )?),
        ActionConfig::AddHeader(h) => {
            Action::AddHeader(value(&here("add_header"), Header::new(&h.name, &h.value))?)
        }
    })
}
