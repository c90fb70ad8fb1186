//! What an evaluation yields: the verdict and the effective settings.

use std::fmt;

use postern_proto::{Reply, TlsVersionSet};

use crate::action::{Destination, Header, RelayAuth, TrustAnchors};
use crate::auth::AuthOffer;
use crate::model::Rule;
use crate::stage::Stage;
use crate::tls::RelayTlsMode;

/// The verdict of the rules on one stage. Borrows from the rule set, so
/// evaluating copies no text: a refusal's [`Reply`] was built when the rules
/// were loaded and is sent as it is.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Verdict<'r> {
    /// No rule decided; the stage proceeds with the server's defaults.
    Continue,
    /// A rule accepted; later rules were not evaluated.
    Accept {
        /// The deciding rule.
        rule: &'r Rule,
    },
    /// A rule rejected with a 5xx reply.
    Reject {
        /// The deciding rule.
        rule: &'r Rule,
        /// The reply to send.
        reply: &'r Reply<'static>,
    },
    /// A rule refused for now with a 4xx reply.
    Tempfail {
        /// The deciding rule.
        rule: &'r Rule,
        /// The reply to send.
        reply: &'r Reply<'static>,
    },
}

impl<'r> Verdict<'r> {
    /// The kind of verdict, without borrowed details.
    pub fn kind(&self) -> VerdictKind {
        match self {
            Verdict::Continue => VerdictKind::Continue,
            Verdict::Accept { .. } => VerdictKind::Accept,
            Verdict::Reject { .. } => VerdictKind::Reject,
            Verdict::Tempfail { .. } => VerdictKind::Tempfail,
        }
    }

    /// The deciding rule, if any.
    pub fn rule(&self) -> Option<&'r Rule> {
        match *self {
            Verdict::Continue => None,
            Verdict::Accept { rule }
            | Verdict::Reject { rule, .. }
            | Verdict::Tempfail { rule, .. } => Some(rule),
        }
    }

    /// The reply to send, for reject and tempfail.
    pub fn reply(&self) -> Option<&'r Reply<'static>> {
        match *self {
            Verdict::Reject { reply, .. } | Verdict::Tempfail { reply, .. } => Some(reply),
            _ => None,
        }
    }

    /// Whether the transaction (or this recipient) is refused.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Verdict::Reject { .. } | Verdict::Tempfail { .. })
    }
}

/// The kind of a [`Verdict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum VerdictKind {
    /// No rule decided.
    Continue,
    /// Accepted by a rule.
    Accept,
    /// Rejected (5xx).
    Reject,
    /// Refused for now (4xx).
    Tempfail,
}

impl VerdictKind {
    /// The lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            VerdictKind::Continue => "continue",
            VerdictKind::Accept => "accept",
            VerdictKind::Reject => "reject",
            VerdictKind::Tempfail => "tempfail",
        }
    }
}

impl fmt::Display for VerdictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The inbound authentication policy: what AUTH offers on each transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AuthPlan {
    /// On connections without TLS.
    pub plain: AuthOffer,
    /// On connections with TLS (implicit or after STARTTLS).
    pub tls: AuthOffer,
}

impl AuthPlan {
    /// The policy for a connection that is (or is not) using TLS.
    pub fn for_connection(&self, tls: bool) -> AuthOffer {
        if tls { self.tls } else { self.plain }
    }
}

/// The default route and trust anchors, borrowed by plans no rule changed.
static DEFAULT_ROUTE: Destination = Destination::Mx;
static DEFAULT_ANCHORS: TrustAnchors = TrustAnchors::System;

/// The outbound plan for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayPlan<'r> {
    /// Where to send it.
    pub route: &'r Destination,
    /// How to use TLS.
    pub tls: RelayTlsMode,
    /// The versions the rules asked for, including ones the stack cannot
    /// speak; [`RelayPlan::versions`] is what may actually be used.
    pub requested_versions: TlsVersionSet,
    /// What the peer certificate is verified against.
    pub trust_anchors: &'r TrustAnchors,
    /// Credentials for a smart host (never used towards MX hosts).
    pub auth: Option<&'r RelayAuth>,
}

impl Default for RelayPlan<'_> {
    /// MX lookup, opportunistic STARTTLS (the guide's "Use StartTLS"),
    /// TLS 1.2 and 1.3, system roots, no credentials.
    fn default() -> Self {
        RelayPlan {
            route: &DEFAULT_ROUTE,
            tls: RelayTlsMode::Opportunistic,
            requested_versions: TlsVersionSet::CURRENT,
            trust_anchors: &DEFAULT_ANCHORS,
            auth: None,
        }
    }
}

impl RelayPlan<'_> {
    /// The versions the relay may negotiate: those asked for that the stack
    /// can speak. Never widened.
    pub fn versions(&self) -> TlsVersionSet {
        self.requested_versions.current()
    }

    /// What DANE does for this plan when the relay has a DNSSEC-aware
    /// resolver: it takes precedence over `none`, `opportunistic` and
    /// `required` on MX routes; `dane` and `dane-only` ask for it; other
    /// modes (smart hosts, `verified`) do not use it.
    pub fn dane_note(&self) -> String {
        use RelayTlsMode as M;
        let mx = matches!(self.route, Destination::Mx);
        match self.tls {
            M::DaneOnly => {
                "DANE: required (nothing is sent without DANE authentication)".to_owned()
            }
            M::Dane => {
                "DANE: where the destination is DNSSEC-signed, else opportunistic".to_owned()
            }
            m @ (M::None | M::Opportunistic | M::Required) if mx => {
                format!("DANE: takes precedence where the destination is DNSSEC-signed, else {m}")
            }
            m => format!("DANE: not used ({m} set by the rules)"),
        }
    }

    /// Why the plan cannot be carried out, if it cannot: TLS is demanded
    /// but no allowed version is usable. The relay must then defer the
    /// message rather than fall back to plaintext or another version.
    pub fn problem(&self) -> Option<PlanProblem> {
        match self.tls {
            RelayTlsMode::None => None,
            _ if self.versions().is_empty() => Some(PlanProblem::NoUsableTlsVersion {
                requested: self.requested_versions,
            }),
            _ => None,
        }
    }
}

/// Why a relay plan cannot be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanProblem {
    /// None of the requested TLS versions can be negotiated.
    NoUsableTlsVersion {
        /// What was asked for.
        requested: TlsVersionSet,
    },
}

impl fmt::Display for PlanProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanProblem::NoUsableTlsVersion { requested } => write!(
                f,
                "none of the requested TLS versions [{requested}] can be negotiated (only TLSv1.2 and TLSv1.3 are available); delivery must be deferred"
            ),
        }
    }
}

/// The result of evaluating one stage.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Outcome<'r> {
    /// The stage evaluated.
    pub stage: Stage,
    /// The verdict.
    pub verdict: Verdict<'r>,
    /// The rule whose `stop` ended the stage without a decision.
    pub stopped_by: Option<&'r Rule>,
    /// The inbound auth policy; meaningful at [`Stage::Helo`] and
    /// [`Stage::Auth`], the defaults elsewhere.
    pub auth: AuthPlan,
    /// The outbound plan; meaningful at [`Stage::Rcpt`], the default
    /// elsewhere.
    pub relay: RelayPlan<'r>,
    /// Headers to add, in order; only at [`Stage::Data`]. Empty vectors do
    /// not allocate.
    pub headers: Vec<&'r Header>,
}

impl<'r> Outcome<'r> {
    pub(crate) fn new(stage: Stage) -> Outcome<'r> {
        Outcome {
            stage,
            verdict: Verdict::Continue,
            stopped_by: None,
            auth: AuthPlan::default(),
            relay: RelayPlan::default(),
            headers: Vec::new(),
        }
    }
}
