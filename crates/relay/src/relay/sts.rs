//! MTA-STS in route planning (RFC 8461 §4, §5): the policy is looked up
//! (and fetched, if the cache says so) while a delivery is planned, so
//! only domains with mail waiting are ever fetched. The candidates the
//! route's mode produced (DANE's among them) are then narrowed:
//! - a host DANE authenticates keeps DANE (RFC 8461 §2: DANE wins where the
//!   domain has it; postfix-mta-sts-resolver #67 is the bug of the other
//!   order);
//! - under `enforce`, every other host must match the policy's `mx`
//!   patterns or is dropped, and the ones kept get TLS verified against
//!   the MTA-STS anchors for the MX host's name;
//! - under `testing`, hosts are used as the mode says and what `enforce`
//!   would have refused is logged.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use super::Candidate;
use crate::driver::Connector;
use crate::error::RelayError;
use crate::mta_sts::{StsLookup, StsMode, StsPolicy, StsResolver};
use crate::policy::{TlsMode, TlsPolicy};
use crate::route::{Route, Target};

/// The policy to apply to one delivery, if any.
pub(super) struct StsPlan {
    domain: String,
    policy: StsPolicy,
    verified: Arc<Connector>,
}

/// Whether `route` is one MTA-STS applies to: an MX route asking for it
/// whose mode does not already authenticate by the operator's own rules.
fn applies(route: &Route) -> Option<&str> {
    let Target::Mx { domain, .. } = &route.target else {
        return None;
    };
    let weak = matches!(
        route.tls.mode.without_dane(),
        TlsMode::None | TlsMode::Opportunistic | TlsMode::Required
    );
    (route.tls.mta_sts && weak && route.tls.mode != TlsMode::DaneOnly).then_some(domain.as_str())
}

/// Looks up the policy for `route`'s domain.
pub(super) async fn plan(
    resolver: &StsResolver,
    route: &Route,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<StsPlan>, RelayError> {
    let Some(domain) = applies(route) else {
        return Ok(None);
    };
    let StsLookup { policy, source, .. } = resolver.lookup(domain).await;
    let Some(policy) = policy else {
        tracing::debug!(%domain, ?source, "MTA-STS: no policy");
        return Ok(None);
    };
    tracing::info!(%domain, mode = %policy.mode(), ?source, "MTA-STS: policy applies");
    let tls = TlsPolicy::new(TlsMode::Verified {
        anchors: resolver.anchors().clone(),
    })
    .with_versions(route.tls.versions.clone());
    Ok(Some(StsPlan {
        domain: domain.to_owned(),
        policy,
        verified: Arc::new(Connector::new(&tls, provider.clone())?),
    }))
}

/// Narrows `candidates` as the policy says.
pub(super) fn apply(
    plan: &StsPlan,
    candidates: Vec<Candidate>,
) -> Result<Vec<Candidate>, RelayError> {
    let enforce = plan.policy.mode() == StsMode::Enforce;
    let mut kept = Vec::with_capacity(candidates.len());
    for c in candidates {
        if c.connector.dane.is_some() {
            kept.push(c);
        } else if !plan.policy.allows_mx(&c.name) {
            if enforce {
                tracing::info!(domain = %plan.domain, server = %c.name, "MTA-STS enforce: MX host does not match the policy; not used");
            } else {
                tracing::warn!(domain = %plan.domain, server = %c.name, "MTA-STS testing: MX host does not match the policy; delivering anyway");
                kept.push(c);
            }
        } else if enforce {
            kept.push(Candidate {
                connector: plan.verified.clone(),
                ..c
            });
        } else {
            kept.push(c);
        }
    }
    if kept.is_empty() {
        return Err(RelayError::StsNoMatchingMx {
            domain: plan.domain.clone(),
        });
    }
    Ok(kept)
}
