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
    /// The cache is read, never written
    /// ([`PolicyCache::read_only`]): for tools beside a running server.
    pub read_only: bool,
}

impl StsSettings {
    /// Policies cached in `cache_dir`, certificates verified against
    /// `anchors`, the default fetch bounds.
    pub fn new(cache_dir: impl Into<PathBuf>, anchors: Anchors) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            fetch: FetchSettings::new(anchors.clone()),
            anchors,
            read_only: false,
        }
    }

    /// These settings with the cache read, never written, when
    /// `read_only` ([`PolicyCache::read_only`]).
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The resolver: TXT and policy-host lookups through `dns`, TLS from
    /// `provider`. Fails when the cache directory cannot be created (the
    /// error names it).
    pub fn build(
        &self,
        dns: Arc<dyn Resolver>,
        provider: Arc<CryptoProvider>,
    ) -> Result<StsResolver, RelayError> {
        let cache = if self.read_only {
            PolicyCache::read_only(&self.cache_dir)
        } else {
            PolicyCache::open(&self.cache_dir).map_err(|e| {
                RelayError::Config(format!(
                    "MTA-STS cache directory {}: {e}",
                    self.cache_dir.display()
                ))
            })?
        };
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

/// The `[mta_sts]` table as written (feature `serde`): `enabled` (default
/// true), `cache_dir` (default: the caller's, under its data directory) and
/// `trust_anchors`, `"system"` (the default) or a list of PEM files.
#[cfg(feature = "serde")]
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StsTable {
    /// MTA-STS is used (default true).
    pub enabled: Option<bool>,
    /// Where policies are cached.
    pub cache_dir: Option<PathBuf>,
    /// The trust anchors.
    pub trust_anchors: Option<AnchorsTable>,
}

/// `trust_anchors` as written.
#[cfg(feature = "serde")]
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum AnchorsTable {
    /// A name: only `"system"` is one.
    Name(String),
    /// PEM files.
    Files(Vec<PathBuf>),
}

/// A field of `[mta_sts]` that cannot be used, and why.
#[cfg(feature = "serde")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
#[non_exhaustive]
pub struct StsTableError {
    /// The field (`trust_anchors`).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// `"system"`: the Mozilla roots of feature `webpki-roots`.
#[cfg(feature = "serde")]
fn system() -> Result<Anchors, String> {
    #[cfg(feature = "webpki-roots")]
    return Ok(Anchors::WebPki);
    #[cfg(not(feature = "webpki-roots"))]
    Err("\"system\" needs postern-relay's webpki-roots feature; name PEM files".into())
}

#[cfg(feature = "serde")]
impl StsTable {
    /// The settings, `None` when disabled: relative paths resolved with
    /// `resolve` (against the configuration file's directory), the cache
    /// in `default_cache` unless `cache_dir` is given. A trust anchor name
    /// other than `"system"` or an unreadable PEM file is an error naming
    /// the field.
    pub fn settings(
        &self,
        resolve: impl Fn(&std::path::Path) -> PathBuf,
        default_cache: PathBuf,
    ) -> Result<Option<StsSettings>, StsTableError> {
        let bad = |message: String| StsTableError {
            field: "trust_anchors",
            message,
        };
        let anchors = match &self.trust_anchors {
            None => system().map_err(bad)?,
            Some(AnchorsTable::Name(n)) if n == "system" => system().map_err(bad)?,
            Some(AnchorsTable::Name(n)) => {
                return Err(bad(format!(
                    "{n:?}: expected \"system\" or a list of PEM files"
                )));
            }
            Some(AnchorsTable::Files(f)) => {
                let files: Vec<PathBuf> = f.iter().map(|p| resolve(p)).collect();
                Anchors::from_pem_files(&files).map_err(|e| bad(e.to_string()))?
            }
        };
        let cache_dir = self.cache_dir.as_deref().map_or(default_cache, resolve);
        Ok((self.enabled != Some(false)).then(|| StsSettings::new(cache_dir, anchors)))
    }
}
