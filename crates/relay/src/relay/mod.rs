//! The top-level [`Relay`]: resolve a [`Route`], try its hosts in order,
//! deliver a batch of messages over one connection.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use crate::client::SessionConfig;
use crate::dnssec::DaneResolver;
use crate::driver::{Connection, Connector};
use crate::error::{DaneRefusal, Phase, RelayError};
use crate::message::Message;
use crate::policy::TlsMode;
use crate::resolve::{Resolver, plan_mx};
use crate::result::Delivery;
use crate::result::MessageResult;
use crate::route::{Route, Target};
use crate::tlsrpt::{Failure, PolicyKey, PolicyType, ResultType, TlsSession};
pub use explain::{HostTls, LivePlan, PlannedHost};

mod dane;
mod explain;
#[cfg(feature = "mta-sts-fetch")]
mod sts;

/// One address to try, with the host name certificates are checked
/// against (for DANE, the TLSA base domain, also sent as SNI) and the TLS
/// configuration for that host.
#[derive(Debug, Clone)]
struct Candidate {
    name: String,
    addr: SocketAddr,
    connector: Arc<Connector>,
    /// The TLS-RPT policy the host's sessions count under: `None` for a
    /// smart host (TLS-RPT reports to recipient domains).
    policy: Option<Arc<PolicyKey>>,
    /// A failure to report even when the session succeeds (an MX host an
    /// MTA-STS `testing` policy does not list).
    note: Option<Failure>,
    /// Why DANE did not authenticate this host, under a DANE mode.
    why_not_dane: Option<&'static str>,
}

impl Candidate {
    fn new(name: String, addr: SocketAddr, connector: Arc<Connector>, target: &Target) -> Self {
        let policy = match target {
            Target::Mx { domain, .. } => Some(Arc::new(PolicyKey::new(
                PolicyType::NoPolicyFound,
                domain.clone(),
            ))),
            Target::SmartHost { .. } => None,
        };
        Self {
            name,
            addr,
            connector,
            policy,
            note: None,
            why_not_dane: None,
        }
    }

    /// The TLS-RPT session of one attempt to open a connection to this
    /// host, or `None` when it never got as far as TLS (refused, timed
    /// out, greeting refused) or TLS was not attempted.
    fn session(
        &self,
        opened: &Result<Connection, RelayError>,
        tls_failure: Option<ResultType>,
        local_ip: Option<IpAddr>,
    ) -> Option<TlsSession> {
        let policy = self.policy.as_deref()?;
        let fail = |rt| {
            Failure::new(rt)
                .at(self.name.clone(), Some(self.addr.ip()))
                .from_ip(local_ip)
        };
        let failure = match (opened, tls_failure) {
            (_, Some(ResultType::TlsaInvalid)) => {
                Some(fail(ResultType::TlsaInvalid).with_reason("no-matching-tlsa-record"))
            }
            (_, Some(rt)) => Some(fail(rt)),
            (Ok(conn), None) if conn.tls().is_some() => {
                self.note.clone().map(|f| f.from_ip(local_ip))
            }
            (Ok(_), None) if !self.connector.attempts_tls() => return None,
            (Ok(_) | Err(RelayError::TlsUnavailable), None) => {
                Some(fail(ResultType::StarttlsNotSupported))
            }
            (Err(RelayError::StartTlsRefused(_)), None) => {
                Some(fail(ResultType::ValidationFailure).with_reason("starttls-refused"))
            }
            (Err(RelayError::Timeout(Phase::Handshake)), None) => {
                Some(fail(ResultType::ValidationFailure).with_reason("handshake-timeout"))
            }
            (Err(_), None) => return None,
        };
        Some(TlsSession {
            policy: policy.clone(),
            failure,
        })
    }
}

/// The outbound relay: delivers messages along routes.
#[derive(Clone)]
pub struct Relay {
    session: Arc<SessionConfig>,
    provider: Arc<CryptoProvider>,
    resolver: Arc<dyn Resolver>,
    dane: Option<Arc<dyn DaneResolver>>,
    #[cfg(feature = "mta-sts-fetch")]
    sts: Option<Arc<crate::mta_sts::StsResolver>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay with the session settings, the crypto provider every TLS
    /// configuration is built with, and a resolver.
    pub fn new(
        session: SessionConfig,
        provider: Arc<CryptoProvider>,
        resolver: Arc<dyn Resolver>,
    ) -> Self {
        Self {
            session: Arc::new(session),
            provider,
            resolver,
            dane: None,
            #[cfg(feature = "mta-sts-fetch")]
            sts: None,
        }
    }

    /// This relay with MTA-STS (RFC 8461): routes whose
    /// [`TlsPolicy::mta_sts`](crate::TlsPolicy::mta_sts) is set get the
    /// recipient domain's policy, looked up (and fetched when the cache
    /// says so) as the delivery is planned.
    #[cfg(feature = "mta-sts-fetch")]
    pub fn with_mta_sts(mut self, sts: Arc<crate::mta_sts::StsResolver>) -> Self {
        self.sts = Some(sts);
        self
    }

    /// This relay with a DNSSEC-aware resolver, used for every lookup
    /// from now on: routes in [`TlsMode::Dane`] and [`TlsMode::DaneOnly`]
    /// then get DANE (RFC 7672). Without one, `Dane` routes use their
    /// fallback (with a warning) and `DaneOnly` routes defer.
    pub fn with_dane_resolver(mut self, resolver: Arc<dyn DaneResolver>) -> Self {
        self.resolver = resolver.clone();
        self.dane = Some(resolver);
        self
    }

    /// Delivers `messages` along `route`, over one connection when the
    /// server allows (RSET between messages when a transaction was left
    /// open). Returns one result per message, in order.
    ///
    /// Hosts are tried in order (MX preference, then each address) while
    /// the session cannot be set up: connection refused, greeting or EHLO
    /// refused, TLS unavailable or failing, timeouts. Once a server has
    /// taken a message, its answers are final for that message; messages
    /// not yet sent when a connection breaks go to the next host.
    pub async fn deliver(&self, route: &Route, messages: Vec<Message>) -> Vec<MessageResult> {
        self.deliver_reporting(route, messages).await.results
    }

    /// [`Relay::deliver`], also returning the TLS sessions it tried, each
    /// under the policy that applied (DANE, MTA-STS or none), for TLS-RPT
    /// (RFC 8460).
    pub async fn deliver_reporting(&self, route: &Route, messages: Vec<Message>) -> Delivery {
        let mut sessions = Vec::new();
        let fail_all = |messages: &[Message], error: &RelayError, sessions| Delivery {
            results: messages
                .iter()
                .map(|m| MessageResult::failed(m.recipients.iter().map(|r| &r.to), error))
                .collect::<Vec<_>>(),
            tls_sessions: sessions,
        };
        let session = self.session_for(&route.target);
        let candidates = match self.plan(route, &mut sessions).await {
            Ok(c) => c,
            Err(e) => return fail_all(&messages, &e, sessions),
        };

        let mut results: Vec<Option<MessageResult>> = vec![None; messages.len()];
        let mut pending: Vec<(usize, Message)> = messages.into_iter().enumerate().collect();
        let mut last_error = RelayError::Resolve("no host to deliver to".into());
        for candidate in candidates {
            if pending.is_empty() {
                break;
            }
            let opened = Connection::open_recorded(
                candidate.addr,
                &candidate.name,
                session.clone(),
                &candidate.connector,
            )
            .await;
            sessions.extend(candidate.session(&opened.result, opened.tls_failure, opened.local_ip));
            let mut conn = match opened.result {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::info!(server = %candidate.name, addr = %candidate.addr, error = %e, "host failed; trying the next");
                    last_error = e;
                    continue;
                }
            };
            let mut rest = std::mem::take(&mut pending).into_iter();
            for (i, message) in rest.by_ref() {
                if !conn.is_usable() {
                    pending.push((i, message));
                    break;
                }
                results[i] = Some(conn.send(message).await);
            }
            pending.extend(rest);
            if conn.is_usable() {
                conn.quit().await;
            } else {
                last_error = RelayError::Closed(Phase::Idle);
            }
        }
        let results = results
            .into_iter()
            .zip(0..)
            .map(|(r, i)| {
                r.unwrap_or_else(|| {
                    let message = pending.iter().find(|(j, _)| *j == i).map(|(_, m)| m);
                    let recipients = message
                        .into_iter()
                        .flat_map(|m| m.recipients.iter().map(|r| &r.to));
                    MessageResult::failed(recipients, &last_error)
                })
            })
            .collect();
        Delivery {
            results,
            tls_sessions: sessions,
        }
    }

    /// The session settings for `target`: credentials go to smart hosts
    /// only, never to MX hosts.
    fn session_for(&self, target: &Target) -> Arc<SessionConfig> {
        match target {
            Target::SmartHost {
                auth,
                allow_plaintext_auth,
                ..
            } if auth.is_some() => Arc::new(SessionConfig {
                auth: auth.clone(),
                allow_plaintext_auth: *allow_plaintext_auth,
                ..(*self.session).clone()
            }),
            _ if self.session.auth.is_some() => Arc::new(SessionConfig {
                auth: None,
                ..(*self.session).clone()
            }),
            _ => self.session.clone(),
        }
    }

    /// The hosts to try for `route`, each with its TLS configuration and
    /// TLS-RPT policy: the route's mode (DANE where it applies), then
    /// MTA-STS. Policy failures found on the way go to `sessions`.
    async fn plan(
        &self,
        route: &Route,
        sessions: &mut Vec<TlsSession>,
    ) -> Result<Vec<Candidate>, RelayError> {
        let connector = Connector::new(&route.tls, self.provider.clone())?;
        for warning in connector.report().warnings() {
            tracing::warn!(%warning, "relay TLS policy");
        }
        let connector = Arc::new(connector);
        let candidates = match (&route.tls.mode, &self.dane) {
            (TlsMode::Dane { .. } | TlsMode::DaneOnly, Some(resolver)) => {
                dane::candidates(
                    resolver.as_ref(),
                    &route.target,
                    &route.tls,
                    &connector,
                    &self.provider,
                )
                .await
            }
            (TlsMode::DaneOnly, None) => Err(RelayError::Dane(DaneRefusal::NoResolver)),
            (mode, _) => {
                if mode.is_dane() {
                    tracing::warn!(target = %route.target, "DANE requested but the relay has no DNSSEC-aware resolver; using the fallback");
                }
                self.candidates(&route.target, &connector).await
            }
        };
        if let (Err(e), Target::Mx { domain, .. }) = (&candidates, &route.target) {
            sessions.extend(dane::refusal_session(domain, e));
        }
        #[cfg(feature = "mta-sts-fetch")]
        if let (Some(sts), Ok(candidates)) = (&self.sts, &candidates) {
            let (plan, failed) = sts::plan(sts, route, &self.provider).await?;
            sessions.extend(failed);
            if let Some(plan) = plan {
                return sts::apply(&plan, candidates.clone(), sessions);
            }
        }
        candidates
    }

    /// The outbound TLS plan [`Relay::deliver`] would follow for `route`
    /// now, and why, from live lookups (DNS with DNSSEC status, TLSA, the
    /// MTA-STS policy, fetched if the cache says so): `postern-mta
    /// explain --live` prints it. Nothing is sent.
    pub async fn explain(&self, route: &Route) -> LivePlan {
        let mx = match (&self.dane, &route.target) {
            (Some(dns), Target::Mx { domain, .. }) => Some(dns.mx_dnssec(domain).await),
            _ => None,
        };
        #[cfg(feature = "mta-sts-fetch")]
        let sts_cache = match (&self.sts, &route.target) {
            (Some(sts), Target::Mx { domain, .. }) => Some(sts.cached(domain)),
            _ => None,
        };
        #[cfg(not(feature = "mta-sts-fetch"))]
        let sts_cache = None;
        let mut problems = Vec::new();
        let hosts = self
            .plan(route, &mut problems)
            .await
            .map(|candidates| candidates.iter().map(explain::PlannedHost::of).collect());
        problems.retain(|s| s.failure.is_some());
        LivePlan {
            route: route.clone(),
            mx,
            sts_cache,
            problems,
            hosts,
        }
    }

    async fn candidates(
        &self,
        target: &Target,
        connector: &Arc<Connector>,
    ) -> Result<Vec<Candidate>, RelayError> {
        let (hosts, port) = match target {
            Target::SmartHost { host, port, .. } => (vec![host.clone()], *port),
            Target::Mx { domain, port } => {
                let records = self.resolver.mx(domain).await?;
                (plan_mx(domain, &records)?, *port)
            }
        };
        let mut out = Vec::new();
        let mut last_error = None;
        for host in hosts {
            let literal = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>();
            let addrs = match literal {
                Ok(ip) => vec![ip],
                Err(_) => match self.resolver.ips(&host).await {
                    Ok(a) => a,
                    Err(e) => {
                        // RFC 5321 §5.1: an MX host that does not resolve is
                        // skipped, not fatal, while others remain.
                        last_error = Some(RelayError::from(e));
                        continue;
                    }
                },
            };
            out.extend(addrs.into_iter().map(|ip| {
                Candidate::new(
                    host.clone(),
                    SocketAddr::new(ip, port),
                    connector.clone(),
                    target,
                )
            }));
        }
        if out.is_empty() {
            return Err(
                last_error.unwrap_or_else(|| RelayError::Resolve("no address found".into()))
            );
        }
        Ok(out)
    }
}
