//! Errors found while building a rule set: typed, and naming the rule and
//! the field so that an operator can go straight to the mistake.

use std::fmt;

use crate::stage::StageSet;

/// A value inside a condition or action that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternError {
    /// A regular expression that does not compile.
    Regex(String),
    /// An empty wildcard pattern.
    EmptyWildcard,
    /// An address or CIDR block that does not parse.
    Cidr(String),
    /// A TLS version name that is not SSLv2, SSLv3 or TLSv1.0 to TLSv1.3.
    UnknownTlsVersion(String),
    /// A SASL mechanism name that is not known.
    UnknownMechanism(String),
    /// A BODY type that is not 7BIT, 8BITMIME or BINARYMIME.
    UnknownBodyType(String),
    /// A relay TLS mode that is not none, opportunistic, required, verified
    /// or implicit.
    UnknownRelayTlsMode(String),
    /// A stage name that is not connect, helo, auth, mail, rcpt or data.
    UnknownStage(String),
    /// A list that must not be empty is.
    EmptyList,
    /// A boolean that only makes sense as `true` (`accept`, `stop`,
    /// `relay_mx`) is `false`; leave the action out instead.
    FalseFlag,
    /// An auth setting that is neither `"off"` nor a list of mechanisms.
    BadAuthSetting(String),
    /// Trust anchors that are neither `"system"` nor a list of files.
    BadTrustAnchors(String),
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::Regex(e) => write!(f, "invalid regular expression: {e}"),
            PatternError::EmptyWildcard => f.write_str("empty wildcard pattern"),
            PatternError::Cidr(t) => write!(
                f,
                "{t:?} is not an IP address or CIDR block (like 192.0.2.0/24 or 2001:db8::/32)"
            ),
            PatternError::UnknownTlsVersion(t) => write!(
                f,
                "unknown TLS version {t:?}; expected one of SSLv2, SSLv3, TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3"
            ),
            PatternError::UnknownMechanism(t) => write!(
                f,
                "unknown AUTH mechanism {t:?}; expected one of {}",
                crate::auth::known_names()
            ),
            PatternError::UnknownBodyType(t) => write!(
                f,
                "unknown BODY type {t:?}; expected 7BIT, 8BITMIME or BINARYMIME"
            ),
            PatternError::UnknownRelayTlsMode(t) => write!(
                f,
                "unknown relay TLS mode {t:?}; expected none, opportunistic, required, verified or implicit"
            ),
            PatternError::UnknownStage(t) => write!(
                f,
                "unknown stage {t:?}; expected connect, helo, auth, mail, rcpt or data"
            ),
            PatternError::EmptyList => f.write_str("the list is empty"),
            PatternError::FalseFlag => {
                f.write_str("this action only takes `true`; leave it out instead of setting false")
            }
            PatternError::BadAuthSetting(t) => write!(
                f,
                "{t:?} is not an auth setting; use \"off\" or a list of mechanisms like [\"PLAIN\", \"LOGIN\"]"
            ),
            PatternError::BadTrustAnchors(t) => write!(
                f,
                "{t:?} is not a trust anchor setting; use \"system\" or a list of PEM files"
            ),
        }
    }
}

impl std::error::Error for PatternError {}

/// Why a reply, route or header given in an action is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueError {
    /// A reply code of the wrong class: reject needs 5xx, tempfail 4xx.
    ReplyCodeClass {
        /// The code given.
        code: u16,
        /// The class required (4 or 5).
        expected_class: u8,
    },
    /// An enhanced status code (RFC 3463) that is malformed or whose class
    /// disagrees with the reply code.
    EnhancedCode {
        /// The text given.
        given: String,
        /// The class required (4 or 5).
        expected_class: u8,
    },
    /// Reply text that is empty or holds characters a reply line cannot
    /// carry (controls, CR, LF, non-ASCII).
    ReplyText(String),
    /// A relay host that is not `host`, `host:port` or `[ip]:port`.
    RelayHost(String),
    /// A header name that is not RFC 5322 `field-name`, or a value with a
    /// line break or control character.
    Header(String),
    /// Smart-host credentials with an empty or multi-line user or file.
    RelayAuth(String),
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::ReplyCodeClass {
                code,
                expected_class,
            } => write!(
                f,
                "reply code {code} is not a {expected_class}xx code (reject takes 5xx, tempfail takes 4xx)"
            ),
            ValueError::EnhancedCode {
                given,
                expected_class,
            } => write!(
                f,
                "enhanced status code {given:?} is not of the form {expected_class}.X.Y (RFC 3463) matching the reply code"
            ),
            ValueError::ReplyText(t) => write!(
                f,
                "reply text {t:?} must be non-empty printable ASCII without line breaks"
            ),
            ValueError::RelayHost(t) => write!(
                f,
                "relay host {t:?} is not host, host:port or [address]:port"
            ),
            ValueError::Header(t) => write!(f, "invalid header: {t}"),
            ValueError::RelayAuth(t) => write!(f, "invalid relay_auth: {t}"),
        }
    }
}

impl std::error::Error for ValueError {}

/// What is wrong with one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleErrorKind {
    /// A condition or action value that does not compile.
    Pattern(PatternError),
    /// An invalid reply, route or header.
    Value(ValueError),
    /// The rule has no actions, so it could never do anything.
    NoActions,
    /// The rule name is empty.
    EmptyName,
    /// Another rule has the same name; names identify rules in traces, lint
    /// and policy tests, so they must be unique.
    DuplicateName {
        /// Index of the first rule with that name.
        first: usize,
    },
    /// An action follows one that ends the stage (accept, reject, tempfail,
    /// stop), so it could never apply.
    ActionAfterEnd {
        /// The ending action's name.
        ending: &'static str,
    },
    /// The rule's conditions and actions have no stage in common, e.g. an
    /// auth policy (decided at EHLO) that depends on the recipient (known
    /// only at RCPT).
    NoCommonStage {
        /// What the conflict is, in words.
        detail: String,
    },
    /// The `stages` given for the rule include stages at which it cannot
    /// apply.
    StagesNotApplicable {
        /// The stages asked for.
        asked: StageSet,
        /// The stages at which the rule can apply.
        possible: StageSet,
    },
}

impl fmt::Display for RuleErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleErrorKind::Pattern(e) => e.fmt(f),
            RuleErrorKind::Value(e) => e.fmt(f),
            RuleErrorKind::NoActions => f.write_str("the rule has no actions"),
            RuleErrorKind::EmptyName => f.write_str("the rule name is empty"),
            RuleErrorKind::DuplicateName { first } => {
                write!(f, "rule #{} already has this name", first + 1)
            }
            RuleErrorKind::ActionAfterEnd { ending } => write!(
                f,
                "this action follows `{ending}`, which ends the stage, so it could never apply; put `{ending}` last"
            ),
            RuleErrorKind::NoCommonStage { detail } => f.write_str(detail),
            RuleErrorKind::StagesNotApplicable { asked, possible } => write!(
                f,
                "stages [{asked}] were asked for, but this rule can only apply at [{possible}]"
            ),
        }
    }
}

/// A rule that cannot be built, with the rule and field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuleError {
    /// Zero-based position of the rule in its set, when known.
    pub index: Option<usize>,
    /// The rule's name.
    pub rule: String,
    /// Where in the rule, as a path like `conditions[1].recipient_domain`;
    /// empty when the error concerns the whole rule.
    pub field: String,
    /// What is wrong.
    pub kind: RuleErrorKind,
}

impl RuleError {
    pub(crate) fn new(rule: &str, field: impl Into<String>, kind: RuleErrorKind) -> RuleError {
        RuleError {
            index: None,
            rule: rule.to_owned(),
            field: field.into(),
            kind,
        }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "rule #{} {:?}", i + 1, self.rule)?,
            None => write!(f, "rule {:?}", self.rule)?,
        }
        if !self.field.is_empty() {
            write!(f, ", {}", self.field)?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for RuleError {}
