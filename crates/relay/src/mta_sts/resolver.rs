//! [`StsResolver`]: the policy that applies to a domain now, from the TXT
//! record, the caches (memory, then disk) and, when [`Refresh`] says so, a
//! fetch. The relay asks it while it plans a delivery, so policies are
//! fetched only for domains there is mail for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use super::cache::{CacheStep, CachedPolicy, Refresh, TxtAnswer};
use super::fetch::{FetchError, PolicyFetcher};
use super::policy::{StsMode, StsPolicy};
use super::record::StsRecord;
use super::store::PolicyCache;
use crate::policy::Anchors;
use crate::resolve::{ResolveError, Resolver};

/// Where the policy of a [`StsLookup`] came from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PolicySource {
    /// No policy applies: no (valid) TXT record and nothing cached, a
    /// failed fetch with nothing cached, or a policy in mode `none`.
    None,
    /// The cached policy, unexpired, under the TXT record's id (or while
    /// the TXT lookup fails): nothing was fetched.
    Cache,
    /// Fetched now (a new id, no cache, or a refresh before expiry).
    Fetched,
    /// The fetch failed; the cached policy applies until its `max_age`.
    CacheAfterFailedFetch(Arc<FetchError>),
    /// The fetch failed and nothing usable was cached.
    FetchFailed(Arc<FetchError>),
}

/// The answer for one domain.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StsLookup {
    /// The policy in force (never one in mode `none`).
    pub policy: Option<StsPolicy>,
    /// Why.
    pub source: PolicySource,
}

impl StsLookup {
    /// The mode in force, if a policy applies.
    pub fn mode(&self) -> Option<StsMode> {
        self.policy.as_ref().map(StsPolicy::mode)
    }
}

type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// MTA-STS for the relay: TXT lookups, the cache and the fetch.
pub struct StsResolver {
    resolver: Arc<dyn Resolver>,
    fetcher: PolicyFetcher,
    disk: Option<PolicyCache>,
    memory: Mutex<HashMap<String, CachedPolicy>>,
    clock: Clock,
}

impl std::fmt::Debug for StsResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StsResolver")
            .field("fetcher", &self.fetcher)
            .field("disk", &self.disk)
            .finish_non_exhaustive()
    }
}

impl StsResolver {
    /// Looks up TXT records with `resolver`, fetches with `fetcher`, and
    /// keeps policies in `disk` (`None`: in memory only, for tests and
    /// embedders that cannot write; a restart then forgets them).
    pub fn new(
        resolver: Arc<dyn Resolver>,
        fetcher: PolicyFetcher,
        disk: Option<PolicyCache>,
    ) -> Self {
        Self {
            resolver,
            fetcher,
            disk,
            memory: Mutex::new(HashMap::new()),
            clock: Arc::new(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            }),
        }
    }

    /// The same resolver reading the time (seconds since the epoch) from
    /// `clock` (tests of expiry).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The anchors MX certificates are verified against under an enforced
    /// policy: the same as the policy host's.
    pub fn anchors(&self) -> &Anchors {
        &self.fetcher.settings().anchors
    }

    /// The cached entry of `domain` (memory first, then disk), expired or
    /// not, without any lookup: for `explain` and tests.
    pub fn cached(&self, domain: &str) -> Option<CachedPolicy> {
        let key = key(domain);
        let memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = memory.get(&key) {
            return Some(c.clone());
        }
        drop(memory);
        let loaded = self.disk.as_ref()?.load(&key)?;
        self.memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, loaded.clone());
        Some(loaded)
    }

    /// The policy that applies to mail for `domain` now.
    pub async fn lookup(&self, domain: &str) -> StsLookup {
        let domain = key(domain);
        let cached = self.cached(&domain);
        let txt = self.txt(&domain).await;
        let now = (self.clock)();
        let lookup = match Refresh::step(cached.as_ref(), txt, now) {
            CacheStep::Use(policy) => StsLookup {
                policy: Some(policy),
                source: PolicySource::Cache,
            },
            CacheStep::NoPolicy => StsLookup {
                policy: None,
                source: PolicySource::None,
            },
            CacheStep::Fetch { id, fallback } => {
                let fetched = self.fetcher.fetch(&domain).await;
                let (error, policy) = match fetched {
                    Ok(p) => (None, Some(p)),
                    Err(e) => {
                        tracing::warn!(%domain, error = %e, "MTA-STS: policy fetch failed");
                        (Some(Arc::new(e)), None)
                    }
                };
                let (apply, store) = Refresh::on_fetch(&id, policy, fallback, now);
                if let Some(entry) = store {
                    self.keep(&domain, entry);
                }
                let source = match (error, &apply) {
                    (None, _) => PolicySource::Fetched,
                    (Some(e), Some(_)) => PolicySource::CacheAfterFailedFetch(e),
                    (Some(e), None) => PolicySource::FetchFailed(e),
                };
                StsLookup {
                    policy: apply,
                    source,
                }
            }
        };
        match lookup.mode() {
            Some(StsMode::None) => StsLookup {
                policy: None,
                source: PolicySource::None,
            },
            _ => lookup,
        }
    }

    async fn txt(&self, domain: &str) -> TxtAnswer {
        match self.resolver.txt(&format!("_mta-sts.{domain}")).await {
            Ok(records) => match StsRecord::select(records.iter().map(String::as_str)) {
                Ok(Some(r)) => TxtAnswer::Record(r),
                Ok(None) => TxtAnswer::NoPolicy,
                Err(e) => {
                    tracing::info!(%domain, error = %e, "MTA-STS: no valid TXT record");
                    TxtAnswer::NoPolicy
                }
            },
            Err(ResolveError::NoSuchDomain(_)) => TxtAnswer::NoPolicy,
            Err(e) => {
                tracing::info!(%domain, error = %e, "MTA-STS: TXT lookup failed");
                TxtAnswer::Failed
            }
        }
    }

    fn keep(&self, domain: &str, entry: CachedPolicy) {
        if let Some(disk) = &self.disk
            && let Err(e) = disk.store(domain, &entry)
        {
            // Still applied and kept in memory; only a restart loses it.
            tracing::error!(%domain, dir = %disk.dir().display(), error = %e, "MTA-STS: cannot write the policy cache");
        }
        self.memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(domain.to_owned(), entry);
    }
}

fn key(domain: &str) -> String {
    domain.trim_end_matches('.').to_ascii_lowercase()
}
