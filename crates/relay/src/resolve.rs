//! Finding the hosts to deliver to: the [`Resolver`] trait, MX ordering
//! (RFC 5321 §5.1, RFC 7505) and a static resolver for tests.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use crate::error::RelayError;

/// A boxed future, as [`Resolver`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One MX record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MxRecord {
    /// Lower is preferred.
    pub preference: u16,
    /// The mail exchanger's host name, without the trailing dot; empty for
    /// the root (a null MX).
    pub exchange: String,
}

impl MxRecord {
    /// A record; a trailing dot on `exchange` is removed.
    pub fn new(preference: u16, exchange: &str) -> Self {
        Self {
            preference,
            exchange: exchange.trim_end_matches('.').to_ascii_lowercase(),
        }
    }
}

/// Why a lookup found nothing usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The name does not exist (NXDOMAIN): permanent.
    #[error("{0} does not exist")]
    NoSuchDomain(String),
    /// Server failure, timeout, network error: try again later.
    #[error("lookup failed: {0}")]
    Transient(String),
}

impl From<ResolveError> for RelayError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::NoSuchDomain(d) => RelayError::NoSuchDomain(d),
            ResolveError::Transient(m) => RelayError::Resolve(m),
        }
    }
}

/// DNS as the relay needs it.
///
/// `mx` returns `Ok(vec![])` when the domain exists but has no MX records
/// (the caller then uses the domain itself, RFC 5321 §5.1); `ips` returns
/// the A and AAAA addresses.
pub trait Resolver: Send + Sync {
    /// The MX records of `domain`, in any order.
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<Vec<MxRecord>, ResolveError>>;
    /// The addresses of `host`.
    fn ips<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>>;
    /// The TXT records of `name`, each one's strings joined (RFC 8461
    /// §3.1 reads a record split into several strings as one); `Ok(vec![])`
    /// when the name has none. MTA-STS needs it; the default answers a
    /// transient failure, so a resolver without TXT support never makes a
    /// domain look as if it had no policy.
    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<String>, ResolveError>> {
        let _ = name;
        Box::pin(std::future::ready(Err(ResolveError::Transient(
            "this resolver does not look up TXT records".into(),
        ))))
    }
}

/// The hosts to try for `domain`, in order, from its MX records.
///
/// - Sorted by preference, lowest first; equal preferences keep the order
///   the resolver gave (RFC 5321 §5.1 allows randomising them; a stable
///   order keeps retries and logs predictable).
/// - No MX records: the domain itself is the only host (the "implicit MX").
/// - A single MX with the root as exchange is a null MX (RFC 7505): the
///   domain accepts no mail, a permanent failure.
/// - Duplicate names are tried once, at their best preference.
pub fn plan_mx(domain: &str, records: &[MxRecord]) -> Result<Vec<String>, RelayError> {
    let domain = domain.trim_end_matches('.');
    if records.is_empty() {
        return Ok(vec![domain.to_ascii_lowercase()]);
    }
    if records.iter().all(|r| r.exchange.is_empty()) {
        return Err(RelayError::NullMx(domain.to_owned()));
    }
    let mut sorted: Vec<&MxRecord> = records.iter().filter(|r| !r.exchange.is_empty()).collect();
    sorted.sort_by_key(|r| r.preference);
    let mut hosts: Vec<String> = Vec::with_capacity(sorted.len());
    for r in sorted {
        if !hosts.iter().any(|h| h.eq_ignore_ascii_case(&r.exchange)) {
            hosts.push(r.exchange.clone());
        }
    }
    Ok(hosts)
}

/// A resolver with fixed answers, for tests and for hosts configured by
/// address.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    mx: HashMap<String, Vec<MxRecord>>,
    hosts: HashMap<String, Vec<IpAddr>>,
    txt: HashMap<String, Vec<String>>,
}

impl StaticResolver {
    /// An empty resolver: every name is NXDOMAIN.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds MX records for `domain`.
    pub fn with_mx(
        mut self,
        domain: &str,
        records: impl IntoIterator<Item = (u16, &'static str)>,
    ) -> Self {
        self.mx
            .entry(domain.to_ascii_lowercase())
            .or_default()
            .extend(records.into_iter().map(|(p, e)| MxRecord::new(p, e)));
        self
    }

    /// Adds a TXT record for `name`.
    pub fn with_txt(mut self, name: &str, record: &str) -> Self {
        self.txt
            .entry(name.trim_end_matches('.').to_ascii_lowercase())
            .or_default()
            .push(record.to_owned());
        self
    }

    /// Adds addresses for `host`.
    pub fn with_host(mut self, host: &str, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        self.hosts
            .entry(host.to_ascii_lowercase())
            .or_default()
            .extend(addrs);
        self
    }
}

impl Resolver for StaticResolver {
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<Vec<MxRecord>, ResolveError>> {
        let key = domain.trim_end_matches('.').to_ascii_lowercase();
        let answer = match self.mx.get(&key) {
            Some(r) => Ok(r.clone()),
            None if self.hosts.contains_key(&key) => Ok(Vec::new()),
            None => Err(ResolveError::NoSuchDomain(key)),
        };
        Box::pin(std::future::ready(answer))
    }

    fn ips<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>> {
        let key = host.trim_end_matches('.').to_ascii_lowercase();
        let answer = self
            .hosts
            .get(&key)
            .cloned()
            .ok_or(ResolveError::NoSuchDomain(key));
        Box::pin(std::future::ready(answer))
    }

    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<String>, ResolveError>> {
        let key = name.trim_end_matches('.').to_ascii_lowercase();
        let answer = self
            .txt
            .get(&key)
            .cloned()
            .ok_or(ResolveError::NoSuchDomain(key));
        Box::pin(std::future::ready(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mx_sorted_by_preference_and_deduplicated() {
        let records = [
            MxRecord::new(20, "b.example."),
            MxRecord::new(10, "a.example."),
            MxRecord::new(20, "c.example"),
            MxRecord::new(30, "A.example"),
        ];
        assert_eq!(
            plan_mx("example", &records).unwrap(),
            ["a.example", "b.example", "c.example"]
        );
    }

    #[test]
    fn implicit_mx_and_null_mx() {
        assert_eq!(plan_mx("Example.org.", &[]).unwrap(), ["example.org"]);
        let err = plan_mx("example.org", &[MxRecord::new(0, ".")]).unwrap_err();
        assert_eq!(err, RelayError::NullMx("example.org".into()));
        assert!(err.is_permanent());
    }
}
