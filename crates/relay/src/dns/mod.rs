//! [`DnssecResolver`]: DNS with DNSSEC status for DANE, in two modes.
//!
//! - `resolver` (the default): the AD bit of a validating resolver is
//!   trusted, as Postfix, mox and maddy do, but only when every configured
//!   server is on a loopback address. The AD bit from a server across a
//!   network can be set by anyone on the path, so from such a server every
//!   answer is *insecure*: DANE never applies (the fallback does, and
//!   `dane-only` sends nothing), and a warning says why. Insecure rather
//!   than indeterminate, so a relay behind a remote resolver still
//!   delivers with its fallback instead of deferring every signed domain.
//! - `validate`: hickory's validator checks the signatures here, from a
//!   configured trust anchor, against any (even non-validating) server.
//!   A timeout or server failure during validation is indeterminate
//!   (defer), never bogus (hickory-dns #3932, #3964).
//!
//! Every lookup has a bounded time, answers are cached for their TTL
//! (failures briefly), and one lookup per name and type is in flight.
//! hickory-resolver's `Lookup` does not expose the AD bit, so queries are
//! built and sent here with hickory-proto.

mod answer;
mod cache;
mod exchange;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::dnssec::{DnssecDnsHandle, TrustAnchors};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::xfer::{DnsHandle, DnsRequestOptions, FirstAnswer};

use crate::dane::TlsaRecord;
use crate::dnssec::{DaneResolver, DnsAnswer, DnssecStatus, tlsa_name};
use crate::error::RelayError;
use crate::resolve::{BoxFuture, MxRecord, ResolveError, Resolver};
use answer::{Judge, RawAnswer};
use cache::Cache;
use exchange::{Exchange, ExchangeError};

/// How DNSSEC status is established.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DnssecMode {
    /// Trust the AD bit of a validating resolver on a loopback address.
    Resolver,
    /// Validate in-process with hickory, from the DNSKEY records in
    /// `trust_anchor` (a file of `name IN DNSKEY ...` lines), or from the
    /// root zone's keys built into hickory when `None`.
    Validate {
        /// The trust anchor file.
        trust_anchor: Option<PathBuf>,
    },
}

/// The settings of a [`DnssecResolver`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DnssecConfig {
    /// The servers asked, in order.
    pub servers: Vec<SocketAddr>,
    /// How DNSSEC status is established.
    pub mode: DnssecMode,
    /// How long one query to one server may take (default 3 s).
    pub query_timeout: Duration,
    /// How long one lookup may take, all servers and (in `validate`
    /// mode) every query of the validation included (default 10 s).
    pub lookup_timeout: Duration,
    /// The longest time an answer is cached, whatever its TTL (1 h).
    pub max_ttl: Duration,
    /// How long a failed lookup is remembered before it is tried again
    /// (5 s), so a failing zone is not asked for every message.
    pub failure_ttl: Duration,
    /// The most answers cached (10 000).
    pub cache_entries: usize,
}

impl DnssecConfig {
    /// `resolver` mode against `servers`, with the default limits.
    pub fn new(servers: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self {
            servers: servers.into_iter().collect(),
            mode: DnssecMode::Resolver,
            query_timeout: Duration::from_secs(3),
            lookup_timeout: Duration::from_secs(10),
            max_ttl: Duration::from_secs(3600),
            failure_ttl: Duration::from_secs(5),
            cache_entries: 10_000,
        }
    }

    /// The `nameserver` lines of `/etc/resolv.conf`, on port 53.
    pub fn from_system_conf() -> Result<Self, RelayError> {
        let text = std::fs::read_to_string("/etc/resolv.conf")
            .map_err(|e| RelayError::Config(format!("/etc/resolv.conf: {e}")))?;
        let servers = nameservers(&text);
        if servers.is_empty() {
            return Err(RelayError::Config(
                "/etc/resolv.conf names no nameserver".into(),
            ));
        }
        Ok(Self::new(servers))
    }

    /// The same settings in `mode`.
    pub fn with_mode(mut self, mode: DnssecMode) -> Self {
        self.mode = mode;
        self
    }

    /// The same settings with both timeouts replaced.
    pub fn with_timeouts(mut self, query: Duration, lookup: Duration) -> Self {
        self.query_timeout = query;
        self.lookup_timeout = lookup;
        self
    }
}

/// The servers of resolv.conf text (`nameserver ADDR` lines; a zone index
/// such as `fe80::1%eth0` is not supported and skipped).
fn nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(|a| a.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

enum Validation {
    AdBit { trusted: bool },
    InProcess(Arc<TrustAnchors>),
}

type Key = (String, RecordType);

/// DNS with DNSSEC status ([`DaneResolver`]), also usable as the relay's
/// plain [`Resolver`].
pub struct DnssecResolver {
    exchange: Exchange,
    validation: Validation,
    config: DnssecConfig,
    cache: Cache<Key, Result<RawAnswer, ResolveError>>,
}

impl std::fmt::Debug for DnssecResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnssecResolver")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl DnssecResolver {
    /// A resolver with `config`. Fails when no server is configured or the
    /// trust anchor file cannot be read or holds no DNSKEY record.
    pub fn new(config: DnssecConfig) -> Result<Self, RelayError> {
        if config.servers.is_empty() {
            return Err(RelayError::Config("DNS: no server configured".into()));
        }
        let validation = match &config.mode {
            DnssecMode::Resolver => {
                let trusted = config.servers.iter().all(|s| s.ip().is_loopback());
                if !trusted {
                    tracing::warn!(
                        servers = ?config.servers,
                        "DNSSEC: a resolver is not on a loopback address; its AD bit could be forged on the network, so every answer is treated as insecure and DANE never applies (run a validating resolver on 127.0.0.1, or use dnssec = \"validate\")"
                    );
                }
                Validation::AdBit { trusted }
            }
            DnssecMode::Validate { trust_anchor } => {
                let anchors = match trust_anchor {
                    None => TrustAnchors::default(),
                    Some(path) => {
                        let text = std::fs::read_to_string(path).map_err(|e| {
                            RelayError::Config(format!("trust anchor {}: {e}", path.display()))
                        })?;
                        let anchors = TrustAnchors::from_str(&text).map_err(|e| {
                            RelayError::Config(format!("trust anchor {}: {e}", path.display()))
                        })?;
                        if anchors.is_empty() {
                            return Err(RelayError::Config(format!(
                                "trust anchor {}: no DNSKEY record",
                                path.display()
                            )));
                        }
                        anchors
                    }
                };
                Validation::InProcess(Arc::new(anchors))
            }
        };
        Ok(Self {
            exchange: Exchange::new(config.servers.clone().into(), config.query_timeout),
            validation,
            cache: Cache::new(config.cache_entries),
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &DnssecConfig {
        &self.config
    }

    async fn lookup(&self, name: &str, qtype: RecordType) -> Result<RawAnswer, ResolveError> {
        let fqdn = format!("{}.", name.trim_end_matches('.').to_ascii_lowercase());
        let key = (fqdn.clone(), qtype);
        self.cache
            .get_or_fetch(key, || async {
                let answer = match tokio::time::timeout(
                    self.config.lookup_timeout,
                    self.fetch(&fqdn, qtype),
                )
                .await
                {
                    Ok(a) => a,
                    Err(_) => Err(ResolveError::Transient(format!(
                        "{qtype} {fqdn}: no answer in {:?} (DNSSEC status indeterminate)",
                        self.config.lookup_timeout
                    ))),
                };
                let ttl = match &answer {
                    Ok(a) => a.ttl.min(self.config.max_ttl),
                    Err(_) => self.config.failure_ttl,
                };
                (answer, ttl)
            })
            .await
    }

    async fn fetch(&self, fqdn: &str, qtype: RecordType) -> Result<RawAnswer, ResolveError> {
        let name = Name::from_ascii(fqdn)
            .map_err(|e| ResolveError::Transient(format!("invalid name {fqdn:?}: {e}")))?;
        let transient = |what: String| ResolveError::Transient(format!("{qtype} {fqdn}: {what}"));
        match &self.validation {
            Validation::AdBit { trusted } => {
                let mut query = Message::new();
                query
                    .add_query(Query::query(name.clone(), qtype))
                    .set_message_type(MessageType::Query)
                    .set_op_code(OpCode::Query)
                    .set_recursion_desired(true)
                    // RFC 6840 §5.7: AD in a query asks for the AD bit
                    // in the answer, without the RRSIGs that DO brings.
                    .set_authentic_data(true);
                let mut edns = Edns::new();
                edns.set_max_payload(1232);
                query.set_edns(edns);
                let answer = self
                    .exchange
                    .query(query)
                    .await
                    .map_err(|e| transient(e.to_string()))?;
                match answer.response_code() {
                    ResponseCode::NoError | ResponseCode::NXDomain => Ok(answer::read(
                        &answer,
                        &name,
                        qtype,
                        &Judge::AdBit { trusted: *trusted },
                    )),
                    // A validating resolver answers SERVFAIL for bogus
                    // data too: both defer.
                    code => Err(transient(code.to_string())),
                }
            }
            Validation::InProcess(anchors) => {
                let exchange = self.exchange.fresh();
                let handle = DnssecDnsHandle::with_trust_anchor(exchange.clone(), anchors.clone());
                let mut options = DnsRequestOptions::default();
                options.use_edns = true;
                options.recursion_desired = true;
                let result = handle
                    .lookup(Query::query(name.clone(), qtype), options)
                    .first_answer()
                    .await;
                let saw_failure = exchange.saw_failure();
                match result {
                    Ok(response) => match response.response_code() {
                        ResponseCode::NoError | ResponseCode::NXDomain => Ok(answer::read(
                            &response,
                            &name,
                            qtype,
                            &Judge::Proofs { saw_failure },
                        )),
                        code => Err(transient(code.to_string())),
                    },
                    Err(e) => match e.kind().as_nsec() {
                        // A denial the validator could not prove secure.
                        Some((_, proof)) => {
                            let mut status = answer::from_proof(*proof);
                            if status == DnssecStatus::Bogus && saw_failure {
                                status = DnssecStatus::Indeterminate;
                            }
                            Ok(RawAnswer {
                                rdata: Vec::new(),
                                status,
                                canonical: None,
                                nxdomain: false,
                                ttl: self.config.failure_ttl,
                            })
                        }
                        None => Err(transient(e.to_string())),
                    },
                }
            }
        }
    }
}

impl From<ExchangeError> for ResolveError {
    fn from(e: ExchangeError) -> Self {
        ResolveError::Transient(e.to_string())
    }
}

fn typed<T>(raw: RawAnswer, records: Vec<T>) -> DnsAnswer<T> {
    let answer = DnsAnswer::new(records, raw.status);
    match &raw.canonical {
        Some(name) => answer.with_canonical(&name.to_ascii()),
        None => answer,
    }
}

impl DaneResolver for DnssecResolver {
    fn mx_dnssec<'a>(
        &'a self,
        domain: &'a str,
    ) -> BoxFuture<'a, Result<DnsAnswer<MxRecord>, ResolveError>> {
        Box::pin(async move {
            let raw = self.lookup(domain, RecordType::MX).await?;
            if raw.nxdomain {
                return Err(ResolveError::NoSuchDomain(domain.to_owned()));
            }
            let records = raw
                .rdata
                .iter()
                .filter_map(|r| r.as_mx())
                .map(|mx| MxRecord::new(mx.preference(), &mx.exchange().to_ascii()))
                .collect();
            Ok(typed(raw, records))
        })
    }

    fn ips_dnssec<'a>(
        &'a self,
        host: &'a str,
    ) -> BoxFuture<'a, Result<DnsAnswer<IpAddr>, ResolveError>> {
        Box::pin(async move {
            let (v4, v6) = tokio::join!(
                self.lookup(host, RecordType::A),
                self.lookup(host, RecordType::AAAA)
            );
            let addrs = |raw: &RawAnswer| -> Vec<IpAddr> {
                raw.rdata.iter().filter_map(|r| r.ip_addr()).collect()
            };
            match (v4, v6) {
                (Ok(a), Ok(b)) if a.nxdomain && b.nxdomain => {
                    Err(ResolveError::NoSuchDomain(host.to_owned()))
                }
                (Ok(a), Ok(b)) => {
                    let mut records = addrs(&a);
                    records.extend(addrs(&b));
                    let status = a.status.and(b.status);
                    let canonical = a.canonical.clone().or(b.canonical.clone());
                    let raw = RawAnswer {
                        status,
                        canonical,
                        ..a
                    };
                    Ok(typed(raw, records))
                }
                // One family failed: the other's addresses are usable,
                // with that lookup's status alone.
                (Ok(one), Err(e)) | (Err(e), Ok(one)) => {
                    let records = addrs(&one);
                    if records.is_empty() {
                        return Err(e);
                    }
                    tracing::info!(host, error = %e, "one address family failed to resolve");
                    Ok(typed(one, records))
                }
                (Err(e), Err(_)) => Err(e),
            }
        })
    }

    fn tlsa<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<DnsAnswer<TlsaRecord>, ResolveError>> {
        Box::pin(async move {
            let raw = self
                .lookup(&tlsa_name(host, port), RecordType::TLSA)
                .await?;
            let records = raw
                .rdata
                .iter()
                .filter_map(|r| r.as_tlsa())
                .filter_map(|t| {
                    let mut wire = vec![
                        u8::from(t.cert_usage()),
                        u8::from(t.selector()),
                        u8::from(t.matching()),
                    ];
                    wire.extend_from_slice(t.cert_data());
                    // A record this parser refuses (a digest of the wrong
                    // length) is unusable, like an unknown one.
                    TlsaRecord::from_rdata(&wire).ok()
                })
                .collect();
            Ok(typed(raw, records))
        })
    }
}

impl Resolver for DnssecResolver {
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<Vec<MxRecord>, ResolveError>> {
        Box::pin(async move { Ok(self.mx_dnssec(domain).await?.records) })
    }

    fn ips<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>> {
        Box::pin(async move { Ok(self.ips_dnssec(host).await?.records) })
    }

    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<String>, ResolveError>> {
        Box::pin(async move {
            let raw = self.lookup(name, RecordType::TXT).await?;
            if raw.nxdomain {
                return Err(ResolveError::NoSuchDomain(name.to_owned()));
            }
            Ok(raw
                .rdata
                .iter()
                .filter_map(|r| r.as_txt())
                .map(|t| crate::hickory::join_txt(t.txt_data()))
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_servers() {
        let text = "# comment\nsearch corp.example\nnameserver 127.0.0.53\nnameserver ::1\nnameserver fe80::1%eth0\noptions edns0\n";
        assert_eq!(
            nameservers(text),
            [
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn bad_configuration_is_refused() {
        assert!(DnssecResolver::new(DnssecConfig::new([])).is_err());
        let missing =
            DnssecConfig::new(["127.0.0.1:53".parse().unwrap()]).with_mode(DnssecMode::Validate {
                trust_anchor: Some("/nonexistent/anchor".into()),
            });
        assert!(DnssecResolver::new(missing).is_err());
    }
}
