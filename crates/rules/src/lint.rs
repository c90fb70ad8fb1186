//! Lint: mistakes a rule set can load with but should not run with.

use std::fmt;

use postern_proto::TlsVersionSet;

use crate::action::{Action, Destination, Setting};
use crate::auth::{AuthOffer, MechanismSet};
use crate::condition::{Condition, Test};
use crate::model::{MatchMode, Rule, RuleSet};
use crate::tls::RelayTlsMode;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum Severity {
    /// Probably intended but worth a look.
    Note,
    /// Almost certainly not what the operator meant.
    Warning,
    /// Insecure or impossible: a `check` command should fail on it.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One lint finding about one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// Zero-based position of the rule.
    pub index: usize,
    /// The rule's name.
    pub rule: String,
    /// What was found.
    pub kind: FindingKind,
}

/// What lint found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FindingKind {
    /// The rule can never match: at every stage where it applies, an earlier
    /// rule without conditions ends the stage first.
    Shadowed {
        /// The earlier catch-all rule.
        by: String,
    },
    /// Whenever this rule sets `setting`, a later rule that matches at least
    /// as often sets it again, so this rule's value never takes effect.
    Overridden {
        /// The setting.
        setting: Setting,
        /// The overriding rule (may be the rule itself, when it sets the
        /// setting twice).
        by: String,
    },
    /// AUTH is offered on plaintext connections with mechanisms that do not
    /// send the password in clear, but the session can still be hijacked and
    /// the exchange replayed or cracked offline.
    AuthOnPlaintext {
        /// The mechanisms concerned.
        mechanisms: MechanismSet,
    },
    /// PLAIN or LOGIN offered without TLS: passwords travel in clear.
    CleartextPasswordWithoutTls {
        /// The mechanisms concerned.
        mechanisms: MechanismSet,
    },
    /// Relay TLS versions include versions the stack cannot speak; they are
    /// dropped, not replaced.
    UnsupportedTlsVersions {
        /// The versions dropped.
        unsupported: TlsVersionSet,
        /// The versions that will actually be allowed.
        effective: TlsVersionSet,
    },
    /// Relay TLS versions with no version the stack can speak: delivery
    /// under this rule can never happen.
    NoUsableTlsVersion {
        /// What was asked for.
        requested: TlsVersionSet,
    },
    /// Plaintext mail is refused on what may be a public port-25 MX,
    /// for every sender and recipient. RFC 3207 §4: a publicly-referenced
    /// server must not require STARTTLS, or mail from servers without TLS
    /// bounces.
    RequireTlsOnPublicMx,
    /// A tempfail on facts that will be the same when the client retries:
    /// the sender queues and retries for days before bouncing (RFC 5321
    /// §4.5.4.1). A reject was probably meant.
    TempfailOnPermanentCondition,
    /// The relay port and TLS mode disagree: port 465 speaks TLS from the
    /// first byte (RFC 8314), other ports start in plaintext.
    ImplicitTlsPortMismatch {
        /// The smart host port.
        port: u16,
        /// The mode set in the same rule.
        mode: RelayTlsMode,
    },
    /// The rule restricts relay TLS versions but does not require TLS, so
    /// under the default opportunistic mode mail can still leave in
    /// plaintext when the peer offers no STARTTLS.
    VersionsWithoutRequiredTls,
    /// DANE towards a smart host given by address: an address has no TLSA
    /// records (RFC 7672 §2.2 looks them up by host name), so `dane` is
    /// only its fallback there and `dane-only` never delivers.
    DaneToAddress {
        /// The smart host's address.
        host: String,
        /// `dane` or `dane-only`.
        mode: RelayTlsMode,
    },
    /// `relay_auth` in a rule whose TLS mode lets the relay proceed without
    /// TLS. Credentials are only ever sent over TLS, so a smart host that
    /// offers no STARTTLS gets none and the mail is deferred (4.7.0); with
    /// `relay_tls = "none"` that happens every time.
    RelayAuthWithoutRequiredTls {
        /// The mode in effect in the rule (opportunistic when not set).
        mode: RelayTlsMode,
    },
    /// `relay_auth` but no rule names a smart host: credentials go to
    /// smart hosts only, never to MX hosts, so they are never used.
    RelayAuthWithoutSmartHost,
}

impl FindingKind {
    /// How serious the finding is.
    pub fn severity(&self) -> Severity {
        match self {
            FindingKind::CleartextPasswordWithoutTls { .. }
            | FindingKind::NoUsableTlsVersion { .. }
            | FindingKind::RelayAuthWithoutRequiredTls {
                mode: RelayTlsMode::None,
            } => Severity::Error,
            FindingKind::DaneToAddress { mode, .. } => {
                if *mode == RelayTlsMode::DaneOnly {
                    Severity::Error
                } else {
                    Severity::Warning
                }
            }
            FindingKind::Shadowed { .. }
            | FindingKind::Overridden { .. }
            | FindingKind::AuthOnPlaintext { .. }
            | FindingKind::UnsupportedTlsVersions { .. }
            | FindingKind::RequireTlsOnPublicMx
            | FindingKind::ImplicitTlsPortMismatch { .. }
            | FindingKind::VersionsWithoutRequiredTls
            | FindingKind::RelayAuthWithoutRequiredTls { .. }
            | FindingKind::RelayAuthWithoutSmartHost => Severity::Warning,
            FindingKind::TempfailOnPermanentCondition => Severity::Note,
        }
    }

    /// A short stable identifier, for filtering and for tests.
    pub fn code(&self) -> &'static str {
        match self {
            FindingKind::Shadowed { .. } => "shadowed",
            FindingKind::Overridden { .. } => "overridden",
            FindingKind::AuthOnPlaintext { .. } => "auth-on-plaintext",
            FindingKind::CleartextPasswordWithoutTls { .. } => "cleartext-password-without-tls",
            FindingKind::UnsupportedTlsVersions { .. } => "unsupported-tls-versions",
            FindingKind::NoUsableTlsVersion { .. } => "no-usable-tls-version",
            FindingKind::RequireTlsOnPublicMx => "require-tls-on-public-mx",
            FindingKind::TempfailOnPermanentCondition => "tempfail-on-permanent-condition",
            FindingKind::ImplicitTlsPortMismatch { .. } => "implicit-tls-port-mismatch",
            FindingKind::VersionsWithoutRequiredTls => "versions-without-required-tls",
            FindingKind::DaneToAddress { .. } => "dane-to-address",
            FindingKind::RelayAuthWithoutRequiredTls { .. } => "relay-auth-without-required-tls",
            FindingKind::RelayAuthWithoutSmartHost => "relay-auth-without-smart-host",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FindingKind::Shadowed { by } => write!(
                f,
                "can never match: rule {by} has no conditions and ends every stage at which this rule applies"
            ),
            FindingKind::Overridden { setting, by } => write!(
                f,
                "its {} never takes effect: rule {by} matches whenever this one does and sets it again",
                setting.name()
            ),
            FindingKind::AuthOnPlaintext { mechanisms } => write!(
                f,
                "AUTH ({mechanisms}) is offered on plaintext connections; offer AUTH only after STARTTLS"
            ),
            FindingKind::CleartextPasswordWithoutTls { mechanisms } => write!(
                f,
                "{mechanisms} on plaintext connections sends passwords in clear; move them to tls_auth"
            ),
            FindingKind::UnsupportedTlsVersions {
                unsupported,
                effective,
            } => write!(
                f,
                "relay TLS versions {unsupported} cannot be negotiated (only TLSv1.2 and TLSv1.3 are available); the effective set is {effective}"
            ),
            FindingKind::NoUsableTlsVersion { requested } => write!(
                f,
                "none of the relay TLS versions [{requested}] can be negotiated (only TLSv1.2 and TLSv1.3 are available): mail under this rule will never be delivered"
            ),
            FindingKind::RequireTlsOnPublicMx => f.write_str(
                "refuses all plaintext mail on a listener that may be port 25: a public MX must not require STARTTLS for all mail (RFC 3207 section 4); restrict it by recipient or sender domain, or to port 587",
            ),
            FindingKind::TempfailOnPermanentCondition => f.write_str(
                "tempfails on facts that will not change when the client retries; senders will queue for days before bouncing: use reject (5xx) unless the condition is temporary",
            ),
            FindingKind::ImplicitTlsPortMismatch { port, mode } => {
                if *mode == RelayTlsMode::Implicit {
                    write!(
                        f,
                        "relay_tls = implicit to port {port}, which starts in plaintext; use port 465 or a STARTTLS mode (required or verified)"
                    )
                } else {
                    write!(
                        f,
                        "relay_tls = {mode} to port {port}, which speaks TLS from the first byte (SMTPS); use relay_tls = \"implicit\""
                    )
                }
            }
            FindingKind::VersionsWithoutRequiredTls => f.write_str(
                "restricts relay TLS versions but does not require TLS: when the peer offers no STARTTLS the mail leaves in plaintext; add relay_tls = \"required\", \"verified\" or \"implicit\"",
            ),
            FindingKind::DaneToAddress { host, mode } => {
                if *mode == RelayTlsMode::DaneOnly {
                    write!(
                        f,
                        "relay_tls = dane-only to the address {host}: an address has no TLSA records, so mail under this rule will never be delivered; name the host, or use relay_tls = \"verified\""
                    )
                } else {
                    write!(
                        f,
                        "relay_tls = dane to the address {host}: an address has no TLSA records, so only the opportunistic fallback applies; name the host to get DANE"
                    )
                }
            }
            FindingKind::RelayAuthWithoutRequiredTls { mode } => write!(
                f,
                "relay_auth with relay_tls = {mode}: credentials are only sent over TLS, so a smart host without TLS gets none and the mail is deferred; set relay_tls = \"required\", \"verified\" or \"implicit\""
            ),
            FindingKind::RelayAuthWithoutSmartHost => f.write_str(
                "relay_auth but no rule sets relay_host: credentials are sent to smart hosts only, never to MX hosts",
            ),
        }
    }
}

impl Finding {
    /// How serious the finding is.
    pub fn severity(&self) -> Severity {
        self.kind.severity()
    }

    /// The message, without severity or rule.
    pub fn message(&self) -> String {
        self.kind.to_string()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: rule #{} {}: {}",
            self.severity(),
            self.index + 1,
            self.rule,
            self.kind
        )
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Finding", 5)?;
        st.serialize_field("severity", &self.severity())?;
        st.serialize_field("code", self.kind.code())?;
        st.serialize_field("index", &self.index)?;
        st.serialize_field("rule", &self.rule)?;
        st.serialize_field("message", &self.message())?;
        st.end()
    }
}

impl RuleSet {
    /// Looks for rules that cannot fire, settings that never take effect,
    /// insecure auth, TLS versions that cannot be honoured, and refusals
    /// that will hurt. Findings are ordered by rule.
    pub fn lint(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        for (i, rule) in self.rules().iter().enumerate() {
            let mut push = |kind| {
                out.push(Finding {
                    index: i,
                    rule: rule.name().to_owned(),
                    kind,
                })
            };
            let shadow = shadowed_by(self.rules(), i);
            if let Some(by) = &shadow {
                push(FindingKind::Shadowed { by: by.clone() });
            }
            for kind in overridden(self.rules(), i) {
                push(kind);
            }
            for kind in rule_findings(rule) {
                push(kind);
            }
            let any_smart_host = || {
                self.rules().iter().any(|r| {
                    r.actions()
                        .iter()
                        .any(|a| matches!(a, Action::RelayRoute(Destination::SmartHost { .. })))
                })
            };
            if rule
                .actions()
                .iter()
                .any(|a| matches!(a, Action::RelayAuth(_)))
                && !any_smart_host()
            {
                push(FindingKind::RelayAuthWithoutSmartHost);
            }
        }
        out
    }
}

/// The earlier catch-all rule that ends every stage of rule `i`, if any.
fn shadowed_by(rules: &[Rule], i: usize) -> Option<String> {
    let rule = &rules[i];
    let mut by = None;
    for stage in rule.stages().iter() {
        let ender = rules[..i]
            .iter()
            .find(|r| r.is_catch_all() && r.stages().contains(stage) && r.ending().is_some())?;
        by.get_or_insert_with(|| ender.name().to_owned());
    }
    by
}

/// Whether `later` matches whenever `earlier` does, judged conservatively:
/// it has no conditions, or exactly the same ones in the same mode.
fn covers(later: &Rule, earlier: &Rule) -> bool {
    later.is_catch_all()
        || (later.mode() == earlier.mode()
            && later.conditions().len() == earlier.conditions().len()
            && later
                .conditions()
                .iter()
                .zip(earlier.conditions())
                .all(|(a, b)| same_condition(a, b)))
}

fn same_condition(a: &Condition, b: &Condition) -> bool {
    a.negate == b.negate && a.to_string() == b.to_string()
}

fn overridden(rules: &[Rule], i: usize) -> Vec<FindingKind> {
    let rule = &rules[i];
    if rule.ending().is_some() {
        // Its stage ends with this rule, so nothing later overrides it.
        return Vec::new();
    }
    let mut found: Vec<FindingKind> = Vec::new();
    let settings: Vec<(usize, Setting)> = rule
        .actions()
        .iter()
        .enumerate()
        .filter_map(|(a, act)| act.setting().map(|s| (a, s)))
        .collect();
    for (pos, &(_, setting)) in settings.iter().enumerate() {
        let by = if settings[pos + 1..].iter().any(|(_, s)| *s == setting) {
            Some(rule.name())
        } else {
            (i + 1..rules.len())
                .find(|&j| {
                    let later = &rules[j];
                    later.stages().contains_all(rule.stages())
                        && covers(later, rule)
                        && later.actions().iter().any(|a| a.setting() == Some(setting))
                        && shadowed_by(rules, j).is_none()
                })
                .map(|j| rules[j].name())
        };
        if let Some(by) = by {
            let kind = FindingKind::Overridden {
                setting,
                by: by.to_owned(),
            };
            if !found.contains(&kind) {
                found.push(kind);
            }
        }
    }
    found
}

fn rule_findings(rule: &Rule) -> Vec<FindingKind> {
    let mut out = Vec::new();
    let mut tls_mode = None;
    let mut port = None;
    let mut address_host = None;
    let mut restricts_versions = false;
    let mut auth = false;
    for action in rule.actions() {
        match action {
            Action::PlainAuth(AuthOffer::On(set)) => {
                let clear = set.cleartext();
                let other = set.not_cleartext();
                if !clear.is_empty() {
                    out.push(FindingKind::CleartextPasswordWithoutTls { mechanisms: clear });
                }
                if !other.is_empty() {
                    out.push(FindingKind::AuthOnPlaintext { mechanisms: other });
                }
            }
            Action::RelayTlsVersions(v) => {
                restricts_versions = true;
                if v.current().is_empty() {
                    out.push(FindingKind::NoUsableTlsVersion { requested: *v });
                } else if !v.deprecated().is_empty() {
                    out.push(FindingKind::UnsupportedTlsVersions {
                        unsupported: v.deprecated(),
                        effective: v.current(),
                    });
                }
            }
            Action::RelayTls(m) => tls_mode = Some(*m),
            Action::RelayRoute(Destination::SmartHost { port: p, host }) => {
                port = Some(*p);
                address_host = host
                    .parse::<std::net::IpAddr>()
                    .is_ok()
                    .then(|| host.clone());
            }
            Action::RelayAuth(_) => auth = true,
            _ => {}
        }
    }
    if let (Some(port), Some(mode)) = (port, tls_mode) {
        let implicit_port = port == 465;
        let mismatch = match mode {
            RelayTlsMode::Implicit => !implicit_port,
            RelayTlsMode::None => false,
            _ => implicit_port,
        };
        if mismatch {
            out.push(FindingKind::ImplicitTlsPortMismatch { port, mode });
        }
    }
    if let (Some(host), Some(mode)) = (address_host, tls_mode.filter(|m| m.is_dane())) {
        out.push(FindingKind::DaneToAddress { host, mode });
    }
    if restricts_versions && tls_mode.is_none_or(RelayTlsMode::allows_plaintext) {
        out.push(FindingKind::VersionsWithoutRequiredTls);
    }
    // Judged within the rule, like the versions: the rule that names the
    // credentials is where the operator should also say TLS is a must.
    let mode = tls_mode.unwrap_or(RelayTlsMode::Opportunistic);
    if auth && mode.allows_plaintext() {
        out.push(FindingKind::RelayAuthWithoutRequiredTls { mode });
    }
    match rule.ending() {
        Some(Action::Reject(_) | Action::Tempfail(_)) if refuses_all_plaintext(rule) => {
            out.push(FindingKind::RequireTlsOnPublicMx);
        }
        _ => {}
    }
    if matches!(rule.ending(), Some(Action::Tempfail(_))) && !rule.is_catch_all() {
        out.push(FindingKind::TempfailOnPermanentCondition);
    }
    out
}

/// Whether the rule matches every plaintext connection that might be on
/// port 25, whoever the sender and recipient.
fn refuses_all_plaintext(rule: &Rule) -> bool {
    let plaintext = |c: &Condition| matches!(c.test, Test::Tls(want) if want == c.negate);
    let may_include_port_25 = |c: &Condition| match &c.test {
        Test::LocalPort(m) => m.matches(&25) != c.negate,
        _ => false,
    };
    match rule.mode() {
        MatchMode::Any => rule.conditions().iter().any(plaintext),
        MatchMode::All => {
            rule.conditions().iter().any(plaintext)
                && rule
                    .conditions()
                    .iter()
                    .all(|c| plaintext(c) || may_include_port_25(c))
        }
    }
}
