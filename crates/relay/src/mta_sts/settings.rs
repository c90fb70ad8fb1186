//! [`StsSettings`]: what an embedder configures for MTA-STS, and the
//! [`StsResolver`] built from it.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use super::fetch::{FetchSettings, PolicyFetcher};
use super::resolver::StsResolver;
use super::store::PolicyCache;
use crate::error::RelayError;
use crate::policy::Anchors;
use crate::resolve::Resolver;

/// MTA-STS as configured.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StsSettings {
    /// Where policies are cached, one file per domain.
    pub cache_dir: PathBuf,
    /// The trust anchors for the policy hosts' certificates and for MX
    /// certificates under an enforced policy.
    pub anchors: Anchors,
    /// The fetch's settings other than the anchors (deadline, size, port).
    pub fetch: FetchSettings,
}

impl StsSettings {
    /// Policies cached in `cache_dir`, certificates verified against
    /// `anchors`, the default fetch bounds.
    pub fn new(cache_dir: impl Into<PathBuf>, anchors: Anchors) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            fetch: FetchSettings::new(anchors.clone()),
            anchors,
        }
    }

    /// The resolver: TXT and policy-host lookups through `dns`, TLS from
    /// `provider`. Fails when the cache directory cannot be created (the
    /// error names it).
    pub fn build(
        &self,
        dns: Arc<dyn Resolver>,
        provider: Arc<CryptoProvider>,
    ) -> Result<StsResolver, RelayError> {
        let cache = PolicyCache::open(&self.cache_dir).map_err(|e| {
            RelayError::Config(format!(
                "MTA-STS cache directory {}: {e}",
                self.cache_dir.display()
            ))
        })?;
        let fetcher = self.fetcher(dns.clone(), provider)?;
        Ok(StsResolver::new(dns, fetcher, Some(cache)))
    }

    /// The HTTPS client of the policy fetch, with these anchors and
    /// bounds: the resolver uses it, and TLS-RPT POSTs reports with it.
    pub fn fetcher(
        &self,
        dns: Arc<dyn Resolver>,
        provider: Arc<CryptoProvider>,
    ) -> Result<PolicyFetcher, RelayError> {
        let mut fetch = self.fetch.clone();
        fetch.anchors = self.anchors.clone();
        PolicyFetcher::new(fetch, provider, dns)
    }
}
