//! What to do with a cached policy (RFC 8461 §5.1 and §10.2), decided
//! without IO: the driver supplies the TXT answer and the clock, then the
//! fetch result.
//!
//! The rules, and the pitfalls they avoid:
//! - A cached policy is used until its `max_age` ends, through TXT lookup
//!   failures and fetch failures alike: an attacker who blocks DNS or HTTPS
//!   must not turn an enforced domain back into an opportunistic one.
//! - A new TXT `id` means a new policy: fetch it. A policy that changed
//!   without its id changing is *not* picked up until it is refreshed (the
//!   publisher must change the id, §3.1).
//! - A policy close to expiry is refreshed before it expires, so the
//!   protection never lapses while mail flows.
//! - Nothing here fetches on its own: the driver asks only when it has mail
//!   for the domain.

use std::time::Duration;

use super::policy::StsPolicy;
use super::record::StsRecord;

/// A policy as cached: the policy, the TXT id it was fetched under, and
/// when it was fetched (seconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPolicy {
    /// The TXT record's `id` at fetch time.
    pub id: String,
    /// The policy.
    pub policy: StsPolicy,
    /// When it was fetched.
    pub fetched_at: u64,
}

impl CachedPolicy {
    /// A policy fetched under `id` at `fetched_at`.
    pub fn new(id: impl Into<String>, policy: StsPolicy, fetched_at: u64) -> Self {
        Self {
            id: id.into(),
            policy,
            fetched_at,
        }
    }

    /// When it expires (fetched + `max_age`).
    pub fn expires_at(&self) -> u64 {
        self.fetched_at
            .saturating_add(self.policy.max_age().as_secs())
    }

    /// Still usable at `now`.
    pub fn is_fresh(&self, now: u64) -> bool {
        now < self.expires_at()
    }

    /// The form stored on disk, so the protection survives a restart: a
    /// first line `postern-sts-cache 1 ID FETCHED_AT`, then the policy in
    /// its canonical form. [`CachedPolicy::from_stored`] reads it back
    /// through the same strict policy parser.
    pub fn to_stored(&self) -> String {
        format!(
            "postern-sts-cache 1 {} {}\n{}",
            self.id, self.fetched_at, self.policy
        )
    }

    /// Reads [`CachedPolicy::to_stored`]'s form; `None` when it is not that
    /// form (a damaged cache file is no cache, and the next mail fetches).
    pub fn from_stored(text: &str) -> Option<CachedPolicy> {
        let (head, body) = text.split_once('\n')?;
        let mut words = head.split(' ');
        if words.next()? != "postern-sts-cache" || words.next()? != "1" {
            return None;
        }
        let id = words.next()?;
        let fetched_at = words.next()?.parse().ok()?;
        if words.next().is_some() || StsRecord::parse(&format!("v=STSv1; id={id}")).is_err() {
            return None;
        }
        let policy = StsPolicy::parse(body.as_bytes()).ok()?;
        Some(CachedPolicy::new(id, policy, fetched_at))
    }
}

/// The outcome of looking up `_mta-sts.<domain>` TXT.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxtAnswer {
    /// Exactly one valid record.
    Record(StsRecord),
    /// No record announces a policy (NXDOMAIN, NODATA, none starting with
    /// `v=STSv1`), or several do, or it is malformed (§3.1: no policy).
    NoPolicy,
    /// The lookup failed (timeout, SERVFAIL): nothing is known.
    Failed,
}

/// What the driver should do next for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheStep {
    /// Apply this policy (the cached one); nothing to fetch.
    Use(StsPolicy),
    /// Fetch the policy; with [`Refresh::on_fetch`], the result decides.
    /// `fallback` is what to apply if the fetch fails.
    Fetch {
        /// The TXT id the fetched policy will be cached under.
        id: String,
        /// The cached policy to keep applying if the fetch fails.
        fallback: Option<CachedPolicy>,
    },
    /// The domain has no MTA-STS policy.
    NoPolicy,
}

/// How long before expiry a policy is refreshed: a tenth of its
/// `max_age`, at least an hour (policies of a day or more are refreshed
/// hours ahead; a short test policy still gets a margin).
pub fn refresh_margin(policy: &StsPolicy) -> Duration {
    (policy.max_age() / 10).max(Duration::from_secs(3600))
}

/// The refresh decisions.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct Refresh;

impl Refresh {
    /// Decides what to do for a domain (a policy whose mode is `none`
    /// means the domain has withdrawn MTA-STS: apply nothing) with `cached` (if any) given the TXT
    /// answer at `now`.
    pub fn step(cached: Option<&CachedPolicy>, txt: TxtAnswer, now: u64) -> CacheStep {
        let cached = cached.filter(|c| c.is_fresh(now));
        match (txt, cached) {
            // Same id, and not close to expiry: the cache answers.
            (TxtAnswer::Record(r), Some(c))
                if r.id() == c.id
                    && now.saturating_add(refresh_margin(&c.policy).as_secs()) < c.expires_at() =>
            {
                CacheStep::Use(c.policy.clone())
            }
            // A new id, or the same one close to expiry: fetch, keeping
            // the cached policy should the fetch fail.
            (TxtAnswer::Record(r), c) => CacheStep::Fetch {
                id: r.id().to_owned(),
                fallback: c.cloned(),
            },
            // §5.1: without a TXT record (or when DNS fails) an unexpired
            // cached policy still applies; the record's absence may be the
            // attack.
            (TxtAnswer::NoPolicy | TxtAnswer::Failed, Some(c)) => CacheStep::Use(c.policy.clone()),
            (TxtAnswer::NoPolicy | TxtAnswer::Failed, None) => CacheStep::NoPolicy,
        }
    }

    /// What to apply and cache after a fetch under `id` at `now`
    /// (`fetched`: `None` when the fetch failed or the body was no valid
    /// policy): the new policy on success; on failure the fallback while it
    /// is fresh, else nothing. Returns the policy to apply and the entry to
    /// store (`None`: leave the cache as it is). A fetched `mode: none` is
    /// cached too, so the withdrawal replaces a stale enforce policy.
    pub fn on_fetch(
        id: &str,
        fetched: Option<StsPolicy>,
        fallback: Option<CachedPolicy>,
        now: u64,
    ) -> (Option<StsPolicy>, Option<CachedPolicy>) {
        match fetched {
            Some(policy) => {
                let entry = CachedPolicy::new(id, policy.clone(), now);
                (Some(policy), Some(entry))
            }
            None => match fallback.filter(|c| c.is_fresh(now)) {
                Some(c) => (Some(c.policy), None),
                None => (None, None),
            },
        }
    }
}
