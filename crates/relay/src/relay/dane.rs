//! The hosts to try under DANE (RFC 7672), each with its TLS
//! configuration: DANE-authenticated where the MX RRset, the host's
//! address records and its TLSA RRset all validate, the route's fallback
//! where the destination is not signed, and nothing (a transient failure)
//! where a lookup failed or DNSSEC data is bogus or indeterminate.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::DnsName;

use super::Candidate;
use crate::dane::{DaneVerifier, TlsaRecord, UsableTlsa};
use crate::dnssec::{DaneResolver, DnsAnswer, DnssecStatus, tlsa_name};
use crate::driver::Connector;
use crate::error::{DaneRefusal, RelayError};
use crate::policy::{TlsMode, TlsPolicy};
use crate::resolve::plan_mx;
use crate::route::Target;
use crate::tlsrpt::{Failure, PolicyKey, PolicyType, ResultType, TlsSession};

/// The TLS-RPT entry of a DANE delivery that could not start (RFC 8460
/// §4.3.2): bogus DNSSEC data, or `dane-only` with no authenticated host.
pub(super) fn refusal_session(domain: &str, error: &RelayError) -> Option<TlsSession> {
    let result_type = match error {
        RelayError::Dane(DaneRefusal::Dnssec { status, .. }) if *status == DnssecStatus::Bogus => {
            ResultType::DnssecInvalid
        }
        RelayError::Dane(DaneRefusal::NotAuthenticated { .. }) => ResultType::DaneRequired,
        _ => return None,
    };
    Some(TlsSession::failed(
        PolicyKey::new(PolicyType::Tlsa, domain),
        Failure::new(result_type),
    ))
}

/// What the DNS says about one host.
enum HostPlan {
    /// Validated, usable TLSA records: authenticate by them, with this
    /// TLSA base domain (SNI and first reference name).
    Dane { base: String, tlsa: UsableTlsa },
    /// Validated TLSA records (these, in presentation form), none usable:
    /// TLS is required, the server is not authenticated.
    Encrypt(Vec<String>),
    /// DANE does not apply (an unsigned MX, host or TLSA RRset, or no
    /// TLSA records): the route's fallback.
    Fallback(&'static str),
}

struct Context<'a> {
    target: &'a Target,
    resolver: &'a dyn DaneResolver,
    policy: &'a TlsPolicy,
    fallback: &'a Arc<Connector>,
    provider: &'a Arc<CryptoProvider>,
    port: u16,
    dane_only: bool,
}

/// The candidates for `target` under the DANE `policy`, whose plain
/// connector (the fallback's, or the required one of `dane-only`) is
/// `fallback`.
pub(super) async fn candidates(
    resolver: &dyn DaneResolver,
    target: &Target,
    policy: &TlsPolicy,
    fallback: &Arc<Connector>,
    provider: &Arc<CryptoProvider>,
) -> Result<Vec<Candidate>, RelayError> {
    let dane_only = policy.mode == TlsMode::DaneOnly;
    let (hosts, port, mx_secure) = match target {
        // A configured smart host's name is not from DNS: only its address
        // and TLSA records need to validate.
        Target::SmartHost { host, port, .. } => (vec![host.clone()], *port, true),
        Target::Mx { domain, port } => {
            let mx = resolver.mx_dnssec(domain).await?;
            if mx.status.must_defer() {
                return Err(dnssec(domain, "MX", mx.status));
            }
            (plan_mx(domain, &mx.records)?, *port, mx.status.is_secure())
        }
    };
    if !mx_secure {
        // RFC 7672 §2.2.1: an insecure MX RRset means no DANE for any of
        // its hosts, whatever their own records say.
        if dane_only {
            return Err(RelayError::Dane(DaneRefusal::NotAuthenticated {
                host: target.to_string(),
                reason: "MX RRset not signed",
            }));
        }
        tracing::info!(%target, "DANE: MX RRset insecure; using the fallback");
    }
    let cx = Context {
        target,
        resolver,
        policy,
        fallback,
        provider,
        port,
        dane_only,
    };
    let mut out = Vec::new();
    let mut last_error = None;
    for host in hosts {
        match cx.host(&host, mx_secure).await {
            Ok(candidates) => out.extend(candidates),
            Err(e) => {
                // RFC 7672 §2.2: a host that may not get mail is skipped;
                // the delivery defers only when no host is left.
                tracing::info!(server = %host, error = %e, "DANE: host skipped");
                last_error = Some(e);
            }
        }
    }
    if out.is_empty() {
        return Err(last_error.unwrap_or_else(|| RelayError::Resolve("no address found".into())));
    }
    Ok(out)
}

fn dnssec(name: &str, what: &'static str, status: DnssecStatus) -> RelayError {
    RelayError::Dane(DaneRefusal::Dnssec {
        name: name.to_owned(),
        what,
        status,
    })
}

impl Context<'_> {
    async fn host(&self, host: &str, mx_secure: bool) -> Result<Vec<Candidate>, RelayError> {
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>();
        let (addrs, plan) = match literal {
            Ok(ip) => (vec![ip], HostPlan::Fallback("address literal")),
            Err(_) => {
                let ips = self.resolver.ips_dnssec(host).await?;
                if ips.status.must_defer() {
                    return Err(dnssec(host, "A/AAAA", ips.status));
                }
                let plan = if !mx_secure {
                    HostPlan::Fallback("MX RRset insecure")
                } else if !ips.status.is_secure() {
                    // RFC 7672 §2.2.2: TLSA records are only looked up
                    // for a host whose address records are secure.
                    HostPlan::Fallback("address records not signed")
                } else {
                    self.tlsa_plan(host, &ips).await?
                };
                (ips.records, plan)
            }
        };
        if addrs.is_empty() {
            return Err(RelayError::Resolve(format!("{host}: no address")));
        }
        let mut tlsa_policy = None;
        let mut why_not = None;
        let mut unusable = false;
        let (name, connector) = match plan {
            HostPlan::Dane { base, tlsa } => {
                tracing::info!(server = %host, tlsa_base = %base, records = tlsa.records().len(), "DANE: authenticating by TLSA records");
                if let Target::Mx { domain, .. } = self.target {
                    tlsa_policy = Some(Arc::new(
                        PolicyKey::new(PolicyType::Tlsa, domain.clone())
                            .with_policy_string(tlsa.records().iter().map(|r| r.to_string()))
                            .with_mx_host([host.to_owned()]),
                    ));
                }
                let connector = self.dane_connector(host, &base, tlsa)?;
                (base, Arc::new(connector))
            }
            HostPlan::Encrypt(_) if self.dane_only => {
                return Err(RelayError::Dane(DaneRefusal::NotAuthenticated {
                    host: host.to_owned(),
                    reason: "no usable TLSA records",
                }));
            }
            HostPlan::Encrypt(records) => {
                why_not = Some("TLSA records all unusable; TLS required, not authenticated");
                tracing::info!(server = %host, "DANE: TLSA records all unusable; TLS required, not authenticated");
                // RFC 8460 §4.3.2.1: reported as tlsa-invalid, under the
                // TLSA policy, whatever the session did.
                if let Target::Mx { domain, .. } = self.target {
                    tlsa_policy = Some(Arc::new(
                        PolicyKey::new(PolicyType::Tlsa, domain.clone())
                            .with_policy_string(records)
                            .with_mx_host([host.to_owned()]),
                    ));
                    unusable = true;
                }
                (host.to_owned(), self.encrypt_connector()?)
            }
            HostPlan::Fallback(reason) if self.dane_only => {
                return Err(RelayError::Dane(DaneRefusal::NotAuthenticated {
                    host: host.to_owned(),
                    reason,
                }));
            }
            HostPlan::Fallback(reason) => {
                why_not = Some(reason);
                tracing::info!(server = %host, reason, fallback = %self.policy.mode.without_dane(), "DANE: not applicable; using the fallback");
                (host.to_owned(), self.fallback.clone())
            }
        };
        Ok(addrs
            .into_iter()
            .map(|ip| {
                let mut c = Candidate::new(
                    name.clone(),
                    SocketAddr::new(ip, self.port),
                    connector.clone(),
                    self.target,
                );
                if let Some(p) = &tlsa_policy {
                    c.policy = Some(p.clone());
                }
                if unusable {
                    c.note = Some(
                        Failure::new(ResultType::TlsaInvalid)
                            .at(name.clone(), Some(ip))
                            .with_reason("all-tlsa-records-unusable"),
                    );
                }
                c.why_not_dane = why_not;
                c
            })
            .collect())
    }

    /// RFC 7672 §2.2.2, §2.2.3: with a secure CNAME chain the TLSA RRset
    /// is looked up at the expanded name (the TLSA base domain) first and
    /// at the original name when the expanded one has none.
    async fn tlsa_plan(&self, host: &str, ips: &DnsAnswer<IpAddr>) -> Result<HostPlan, RelayError> {
        let mut names = Vec::new();
        if let Some(canonical) = ips.canonical.as_deref().filter(|c| *c != host) {
            names.push(canonical.to_owned());
        }
        names.push(host.to_owned());
        for base in names {
            let answer = self
                .resolver
                .tlsa(&base, self.port)
                .await
                .map_err(|error| {
                    // RFC 7672 §2.2: a TLSA lookup that fails (SERVFAIL,
                    // timeout) may hide records; neither DANE nor the
                    // fallback is safe, so the host is skipped.
                    RelayError::Dane(DaneRefusal::TlsaLookup {
                        name: tlsa_name(&base, self.port),
                        error,
                    })
                })?;
            if answer.status.must_defer() {
                return Err(dnssec(&tlsa_name(&base, self.port), "TLSA", answer.status));
            }
            if !answer.status.is_secure() {
                return Ok(HostPlan::Fallback("TLSA RRset not signed"));
            }
            if answer.records.is_empty() {
                continue;
            }
            return Ok(usable(base, answer.records));
        }
        Ok(HostPlan::Fallback("no TLSA records"))
    }

    fn dane_connector(
        &self,
        host: &str,
        base: &str,
        tlsa: UsableTlsa,
    ) -> Result<Connector, RelayError> {
        // RFC 7672 §3.2.2: the reference identifiers are the TLSA base
        // domain and, when CNAMEs led there, the MX host name.
        let mut names = Vec::new();
        for name in [base, host] {
            let dns = DnsName::try_from(name.to_owned())
                .map_err(|e| RelayError::Config(format!("invalid host name {name:?}: {e}")))?;
            if !names.contains(&dns) {
                names.push(dns);
            }
        }
        let verifier = Arc::new(DaneVerifier::new(tlsa, names, self.provider));
        self.fallback.with_dane(verifier, self.provider.clone())
    }

    /// TLS required without authentication, unless the fallback already
    /// requires TLS (and perhaps verifies): then the fallback.
    fn encrypt_connector(&self) -> Result<Arc<Connector>, RelayError> {
        if self.policy.mode.requires_tls() {
            return Ok(self.fallback.clone());
        }
        let policy = TlsPolicy::new(TlsMode::Required).with_versions(self.policy.versions.clone());
        Ok(Arc::new(Connector::new(&policy, self.provider.clone())?))
    }
}

/// RFC 7672 §2.2 and §3.1: a validated TLSA RRset whose records are all
/// unusable (PKIX-TA, PKIX-EE, unknown parameters) still says the server
/// offers STARTTLS, so TLS is mandatory but the server cannot be
/// authenticated.
fn usable(base: String, records: Vec<TlsaRecord>) -> HostPlan {
    let text = records.iter().map(ToString::to_string).collect();
    match UsableTlsa::select(records) {
        Some(tlsa) => HostPlan::Dane { base, tlsa },
        None => HostPlan::Encrypt(text),
    }
}
