//! [`LivePlan`]: what [`Relay::explain`](super::Relay::explain) found, as
//! values for a caller to inspect and as text (`Display`) for an operator.

use std::fmt;
use std::net::SocketAddr;

use super::Candidate;
use crate::dane::TlsaRecord;
use crate::dnssec::DnsAnswer;
use crate::error::RelayError;
use crate::mta_sts::CachedPolicy;
use crate::policy::join;
use crate::resolve::{MxRecord, ResolveError};
use crate::route::Route;
use crate::tlsrpt::{Failure, PolicyKey, PolicyType, TlsSession};

/// The outbound TLS plan for one route, now.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LivePlan {
    /// The route planned.
    pub route: Route,
    /// The MX RRset with its DNSSEC status, for an MX route with a
    /// DNSSEC-aware resolver.
    pub mx: Option<Result<DnsAnswer<MxRecord>, ResolveError>>,
    /// The MTA-STS cache entry before the lookup (`Some(None)`: nothing
    /// cached), for an MX route with MTA-STS.
    pub sts_cache: Option<Option<CachedPolicy>>,
    /// Policy failures found while planning (a policy fetch that failed,
    /// an MX host an enforced policy excludes...).
    pub problems: Vec<TlsSession>,
    /// The hosts delivery would try, in order, or why none may be used.
    pub hosts: Result<Vec<PlannedHost>, RelayError>,
}

/// One host of a [`LivePlan`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PlannedHost {
    /// The name certificates are checked against.
    pub name: String,
    /// The address.
    pub addr: SocketAddr,
    /// How TLS would go.
    pub tls: HostTls,
    /// The TLS-RPT policy its sessions count under (`None`: smart host).
    pub policy: Option<PolicyKey>,
    /// A failure reported even if the session succeeds.
    pub note: Option<Failure>,
    /// Why DANE does not authenticate it, under a DANE mode.
    pub why_not_dane: Option<&'static str>,
}

/// How TLS goes with one host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostTls {
    /// Authenticated by these TLSA records (DANE).
    Dane(Vec<TlsaRecord>),
    /// Required, the certificate verified (PKIX: a `verified` route or an
    /// enforced MTA-STS policy).
    Verified,
    /// As the route says; the certificate checked and any failure
    /// reported, not enforced (MTA-STS `testing`).
    Audited,
    /// TLS (required or opportunistic), the certificate not verified.
    Unverified,
    /// No TLS.
    Plaintext,
}

impl PlannedHost {
    pub(super) fn of(c: &Candidate) -> Self {
        let k = &c.connector;
        let tls = match (&k.dane, k.verified, &k.audit) {
            (Some(v), _, _) => HostTls::Dane(v.tlsa().records().to_vec()),
            (None, true, _) => HostTls::Verified,
            (None, false, Some(_)) => HostTls::Audited,
            (None, false, None) if k.attempts_tls() => HostTls::Unverified,
            (None, false, None) => HostTls::Plaintext,
        };
        Self {
            name: c.name.clone(),
            addr: c.addr,
            tls,
            policy: c.policy.as_deref().cloned(),
            note: c.note.clone(),
            why_not_dane: c.why_not_dane,
        }
    }

    /// The server is authenticated (DANE or verified PKIX).
    pub fn is_authenticated(&self) -> bool {
        matches!(self.tls, HostTls::Dane(_) | HostTls::Verified)
    }
}

impl LivePlan {
    /// A REQUIRETLS message could go (RFC 8689 §4.2): every host would be
    /// authenticated. The host must still offer REQUIRETLS, which only the
    /// session shows.
    pub fn requiretls_possible(&self) -> bool {
        self.hosts
            .as_ref()
            .is_ok_and(|h| h.iter().all(PlannedHost::is_authenticated))
    }
}

fn reason(f: &Failure) -> String {
    f.failure_reason_code
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default()
}

impl fmt::Display for LivePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.route;
        writeln!(
            f,
            "route: {} (TLS {}, versions {})",
            r.target,
            r.tls.mode,
            join(&r.tls.versions)
        )?;
        match &self.mx {
            Some(Ok(a)) => {
                let hosts: Vec<String> = (a.records.iter())
                    .map(|r| format!("{} {}", r.preference, r.exchange))
                    .collect();
                writeln!(f, "MX ({}): {}", a.status.name(), hosts.join(", "))?;
            }
            Some(Err(e)) => writeln!(f, "MX: lookup failed: {e}")?,
            None => {}
        }
        match &self.sts_cache {
            Some(Some(c)) => writeln!(
                f,
                "MTA-STS cache: id {}, fetched at {} (unix), mode {}",
                c.id,
                c.fetched_at,
                c.policy.mode()
            )?,
            Some(None) => writeln!(f, "MTA-STS cache: nothing cached")?,
            None => {}
        }
        for s in &self.problems {
            if let Some(fail) = &s.failure {
                let kind = s.policy.policy_type.name();
                let rt = fail.result_type.name();
                writeln!(f, "policy problem ({kind}): {rt}{}", reason(fail))?;
            }
        }
        let hosts = match &self.hosts {
            Ok(h) => h,
            Err(e) => return writeln!(f, "no host may be used now: {e} ({})", e.status()),
        };
        for h in hosts {
            let how = match &h.tls {
                HostTls::Dane(records) => {
                    let r: Vec<String> = records.iter().map(ToString::to_string).collect();
                    format!("DANE, TLSA: {}", r.join(", "))
                }
                HostTls::Verified => "TLS required, certificate verified (PKIX)".into(),
                HostTls::Audited => "TLS as the route says; certificate checked and reported, not enforced (MTA-STS testing)".into(),
                HostTls::Unverified => "TLS as the route says, certificate not verified".into(),
                HostTls::Plaintext => "plaintext".into(),
            };
            let policy = h
                .policy
                .as_ref()
                .map_or("smart host", |p| p.policy_type.name());
            writeln!(
                f,
                "host {} [{}]: {how}; TLS-RPT policy {policy}",
                h.name, h.addr
            )?;
            if let Some(p) = h
                .policy
                .as_ref()
                .filter(|p| p.policy_type == PolicyType::Sts)
            {
                writeln!(f, "  MTA-STS policy: {}", p.policy_string.join("; "))?;
            }
            if let Some(why) = h.why_not_dane {
                writeln!(f, "  DANE not applied: {why}")?;
            }
            if let Some(note) = &h.note {
                writeln!(f, "  reported: {}{}", note.result_type.name(), reason(note))?;
            }
        }
        writeln!(
            f,
            "REQUIRETLS: {}",
            if self.requiretls_possible() {
                "can be met (every host is authenticated) where the host offers REQUIRETLS"
            } else {
                "cannot be met: not every host is authenticated (DANE, MTA-STS enforce or verified)"
            }
        )
    }
}
