//! MTA-STS (RFC 8461): the `_mta-sts` TXT record, the policy file and MX
//! matching, as pure decision logic.
//!
//! Nothing here does IO. The driver looks up the TXT record and fetches
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt`; these types say what
//! the answers mean:
//!
//! - [`StsRecord::select`] picks the one valid `v=STSv1` record among a
//!   name's TXT records (RFC 8461 §3.1: not exactly one means no policy).
//! - [`StsPolicy::parse`] reads a policy file strictly (§3.2): a policy that
//!   is malformed in any way is *no* policy, never a partly understood one.
//! - [`StsPolicy::allows_mx`] decides whether an MX host may be used
//!   (§4.1): under `enforce`, a host that matches no `mx` pattern is not
//!   used at all, and one that matches must present a certificate valid for
//!   its own name.
//!
//! - [`Refresh`] decides, from the cache, the TXT answer and the clock,
//!   whether to apply the cached policy or fetch, and what survives a failed
//!   fetch ([`CachedPolicy`] is what a driver persists on disk).
//!
//! With feature `mta-sts-fetch` (default), the IO half:
//! [`PolicyFetcher`] (the HTTPS GET of §3.3), [`PolicyCache`] (one file
//! per domain, atomic writes, owner-only) and [`StsResolver`], which the
//! relay asks while planning a delivery ([`Relay::with_mta_sts`](crate::Relay::with_mta_sts)).
//!
//! Both parsers read untrusted input (DNS and HTTPS answers) and are
//! fuzzed (`fuzz/` target `mta_sts`).

mod cache;
#[cfg(feature = "mta-sts-fetch")]
mod fetch;
mod pattern;
mod policy;
mod record;
#[cfg(feature = "mta-sts-fetch")]
mod resolver;
#[cfg(feature = "mta-sts-fetch")]
mod settings;
#[cfg(feature = "mta-sts-fetch")]
mod store;

pub use cache::{CacheStep, CachedPolicy, Refresh, TxtAnswer, refresh_margin};
#[cfg(feature = "mta-sts-fetch")]
pub use fetch::{FetchError, FetchSettings, PolicyFetcher, WELL_KNOWN_PATH};
pub use pattern::MxPattern;
pub use policy::{MAX_AGE_LIMIT, MAX_POLICY_SIZE, PolicyError, StsMode, StsPolicy};
pub use record::{RecordError, StsRecord};
#[cfg(feature = "mta-sts-fetch")]
pub use resolver::{PolicySource, StsLookup, StsResolver};
#[cfg(feature = "mta-sts-fetch")]
pub use settings::StsSettings;
#[cfg(all(feature = "serde", feature = "mta-sts-fetch"))]
pub use settings::{AnchorsTable, StsTable, StsTableError};
#[cfg(feature = "mta-sts-fetch")]
pub use store::PolicyCache;

#[cfg(test)]
mod tests;
