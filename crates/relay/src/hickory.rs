//! The [`Resolver`] over hickory-resolver (the system's resolv.conf).

use std::net::IpAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::rdata::MX;

use crate::error::RelayError;
use crate::resolve::{BoxFuture, MxRecord, ResolveError, Resolver};

/// DNS through hickory-resolver.
///
/// Names are looked up fully qualified (a trailing dot is added), so the
/// system's search list never turns `example.org` into
/// `example.org.corp.internal`.
#[derive(Clone)]
pub struct HickoryResolver {
    inner: TokioResolver,
}

impl std::fmt::Debug for HickoryResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HickoryResolver")
    }
}

impl HickoryResolver {
    /// A resolver configured from the system (`/etc/resolv.conf`).
    pub fn from_system_conf() -> Result<Self, RelayError> {
        let inner = TokioResolver::builder_tokio()
            .map_err(|e| RelayError::Config(format!("resolver configuration: {e}")))?
            .build();
        Ok(Self { inner })
    }

    /// Wraps a resolver built elsewhere.
    pub fn new(inner: TokioResolver) -> Self {
        Self { inner }
    }
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

/// Converts hickory's MX data; ordering is [`plan_mx`](crate::plan_mx)'s job.
pub fn mx_records<'a>(records: impl IntoIterator<Item = &'a MX>) -> Vec<MxRecord> {
    records
        .into_iter()
        .map(|mx| MxRecord::new(mx.preference(), &mx.exchange().to_ascii()))
        .collect()
}

fn classify(name: &str, e: &hickory_resolver::ResolveError) -> Option<ResolveError> {
    if e.is_nx_domain() {
        Some(ResolveError::NoSuchDomain(name.to_owned()))
    } else if e.is_no_records_found() {
        None
    } else {
        Some(ResolveError::Transient(format!("{name}: {e}")))
    }
}

impl Resolver for HickoryResolver {
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<Vec<MxRecord>, ResolveError>> {
        Box::pin(async move {
            match self.inner.mx_lookup(fqdn(domain)).await {
                Ok(lookup) => Ok(mx_records(lookup.iter())),
                Err(e) => classify(domain, &e).map_or(Ok(Vec::new()), Err),
            }
        })
    }

    fn ips<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>> {
        Box::pin(async move {
            match self.inner.lookup_ip(fqdn(host)).await {
                Ok(lookup) => Ok(lookup.iter().collect()),
                Err(e) => classify(host, &e).map_or(Ok(Vec::new()), Err),
            }
        })
    }

    fn txt<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<String>, ResolveError>> {
        Box::pin(async move {
            match self.inner.txt_lookup(fqdn(name)).await {
                Ok(lookup) => Ok(lookup.iter().map(|t| join_txt(t.txt_data())).collect()),
                Err(e) => classify(name, &e).map_or(Ok(Vec::new()), Err),
            }
        })
    }
}

/// One TXT record's strings as one text (invalid UTF-8 replaced, which no
/// valid MTA-STS or TLS-RPT record contains).
pub(crate) fn join_txt(strings: &[Box<[u8]>]) -> String {
    let bytes: Vec<u8> = strings.iter().flat_map(|s| s.iter().copied()).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use hickory_resolver::proto::rr::Name;

    use super::*;
    use crate::resolve::plan_mx;

    #[test]
    fn hickory_records_are_ordered_by_plan_mx() {
        let name = |s: &str| Name::from_ascii(s).unwrap();
        let records = [
            MX::new(20, name("backup.example.org.")),
            MX::new(5, name("primary.example.org.")),
            MX::new(10, name("Second.Example.org.")),
        ];
        let plan = plan_mx("example.org", &mx_records(&records)).unwrap();
        assert_eq!(
            plan,
            [
                "primary.example.org",
                "second.example.org",
                "backup.example.org"
            ]
        );
        let null = [MX::new(0, Name::root())];
        assert!(plan_mx("example.org", &mx_records(&null)).is_err());
    }
}
