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
use crate::mta_sts::{FetchError, PolicySource, StsLookup, StsMode, StsPolicy, StsResolver};
use crate::policy::{Anchors, TlsMode, TlsPolicy};
use crate::route::{Route, Target};
use crate::tlsrpt::{Failure, PolicyKey, PolicyType, ResultType, TlsSession};

/// The policy to apply to one delivery, if any.
pub(super) struct StsPlan {
    domain: String,
    policy: StsPolicy,
    verified: Arc<Connector>,
    /// The TLS-RPT key its sessions count under.
    key: Arc<PolicyKey>,
    /// The anchors `testing` checks certificates against (reported only).
    anchors: Anchors,
    provider: Arc<CryptoProvider>,
}

/// The TLS-RPT result type of a failed policy fetch (RFC 8460 §4.3.2).
fn fetch_result_type(error: &FetchError) -> ResultType {
    match error {
        FetchError::Tls { .. } => ResultType::StsWebpkiInvalid,
        FetchError::Policy { .. }
        | FetchError::ContentType { .. }
        | FetchError::TooLarge { .. } => ResultType::StsPolicyInvalid,
        _ => ResultType::StsPolicyFetchError,
    }
}

/// The policy's TLS-RPT key: its lines and `mx` patterns (§4.4).
fn key_of(domain: &str, policy: &StsPolicy) -> PolicyKey {
    PolicyKey::new(PolicyType::Sts, domain)
        .with_policy_string(policy.to_string().lines().map(str::to_owned))
        .with_mx_host(policy.mx().iter().map(|p| p.to_string()))
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

/// Looks up the policy for `route`'s domain; with it, the TLS-RPT entry
/// of a fetch that failed (whether or not a cached policy still applies).
pub(super) async fn plan(
    resolver: &StsResolver,
    route: &Route,
    provider: &Arc<CryptoProvider>,
) -> Result<(Option<StsPlan>, Option<TlsSession>), RelayError> {
    let Some(domain) = applies(route) else {
        return Ok((None, None));
    };
    let StsLookup { policy, source, .. } = resolver.lookup(domain).await;
    let fetch_failure = match &source {
        PolicySource::FetchFailed(e) | PolicySource::CacheAfterFailedFetch(e) => {
            let key = match &policy {
                Some(p) => key_of(domain, p),
                None => PolicyKey::new(PolicyType::Sts, domain),
            };
            let failure = Failure::new(fetch_result_type(e))
                .at(format!("mta-sts.{domain}"), None)
                .with_reason(e.to_string());
            Some(TlsSession::failed(key, failure))
        }
        _ => None,
    };
    let Some(policy) = policy else {
        tracing::debug!(%domain, ?source, "MTA-STS: no policy");
        return Ok((None, fetch_failure));
    };
    tracing::info!(%domain, mode = %policy.mode(), ?source, "MTA-STS: policy applies");
    let tls = TlsPolicy::new(TlsMode::Verified {
        anchors: resolver.anchors().clone(),
    })
    .with_versions(route.tls.versions.clone());
    Ok((
        Some(StsPlan {
            domain: domain.to_owned(),
            key: Arc::new(key_of(domain, &policy)),
            policy,
            verified: Arc::new(Connector::new(&tls, provider.clone())?),
            anchors: resolver.anchors().clone(),
            provider: provider.clone(),
        }),
        fetch_failure,
    ))
}

/// Narrows `candidates` as the policy says. An MX host the policy does
/// not list is a TLS-RPT failure (`validation-failure`,
/// `mx-not-in-policy`): added to `sessions` under `enforce`, where the
/// host is dropped; noted on the candidate under `testing`, where it is
/// used, and whose certificates are checked (and failures reported)
/// without being enforced.
pub(super) fn apply(
    plan: &StsPlan,
    candidates: Vec<Candidate>,
    sessions: &mut Vec<TlsSession>,
) -> Result<Vec<Candidate>, RelayError> {
    let enforce = plan.policy.mode() == StsMode::Enforce;
    let mut kept = Vec::with_capacity(candidates.len());
    for mut c in candidates {
        if c.connector.dane.is_some() {
            kept.push(c);
            continue;
        }
        c.policy = Some(plan.key.clone());
        let mismatch = || {
            Failure::new(ResultType::ValidationFailure)
                .at(c.name.clone(), Some(c.addr.ip()))
                .with_reason("mx-not-in-policy")
        };
        if !plan.policy.allows_mx(&c.name) {
            if enforce {
                tracing::info!(domain = %plan.domain, server = %c.name, "MTA-STS enforce: MX host does not match the policy; not used");
                sessions.push(TlsSession::failed((*plan.key).clone(), mismatch()));
            } else {
                tracing::warn!(domain = %plan.domain, server = %c.name, "MTA-STS testing: MX host does not match the policy; delivering anyway");
                c.note = Some(mismatch());
                kept.push(c);
            }
        } else if enforce {
            kept.push(Candidate {
                connector: plan.verified.clone(),
                ..c
            });
        } else {
            let audited = c
                .connector
                .with_audit(&plan.anchors, plan.provider.clone())?;
            kept.push(Candidate {
                connector: Arc::new(audited),
                ..c
            });
        }
    }
    if kept.is_empty() {
        return Err(RelayError::StsNoMatchingMx {
            domain: plan.domain.clone(),
        });
    }
    Ok(kept)
}
