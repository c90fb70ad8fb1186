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
use crate::result::MessageResult;
use crate::route::{Route, Target};

mod dane;
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
        let fail_all = |messages: &[Message], error: &RelayError| {
            messages
                .iter()
                .map(|m| MessageResult::failed(m.recipients.iter().map(|r| &r.to), error))
                .collect::<Vec<_>>()
        };
        let connector = match Connector::new(&route.tls, self.provider.clone()) {
            Ok(c) => c,
            Err(e) => return fail_all(&messages, &e),
        };
        for warning in connector.report().warnings() {
            tracing::warn!(%warning, "relay TLS policy");
        }
        let session = match &route.target {
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
                // RelayCredentials go to smart hosts only, never to MX hosts.
                auth: None,
                ..(*self.session).clone()
            }),
            _ => self.session.clone(),
        };
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
        #[cfg(feature = "mta-sts-fetch")]
        let candidates = match (&self.sts, candidates) {
            (Some(sts), Ok(candidates)) => match sts::plan(sts, route, &self.provider).await {
                Ok(Some(plan)) => sts::apply(&plan, candidates),
                Ok(None) => Ok(candidates),
                Err(e) => Err(e),
            },
            (_, candidates) => candidates,
        };
        let candidates = match candidates {
            Ok(c) => c,
            Err(e) => return fail_all(&messages, &e),
        };

        let mut results: Vec<Option<MessageResult>> = vec![None; messages.len()];
        let mut pending: Vec<(usize, Message)> = messages.into_iter().enumerate().collect();
        let mut last_error = RelayError::Resolve("no host to deliver to".into());
        for candidate in candidates {
            if pending.is_empty() {
                break;
            }
            let mut conn = match Connection::open(
                candidate.addr,
                &candidate.name,
                session.clone(),
                &candidate.connector,
            )
            .await
            {
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
        results
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
            .collect()
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
            out.extend(addrs.into_iter().map(|ip| Candidate {
                name: host.clone(),
                addr: SocketAddr::new(ip, port),
                connector: connector.clone(),
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
