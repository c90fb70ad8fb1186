//! Why DANE kept a host (or a whole destination) from getting mail.

use crate::dnssec::DnssecStatus;
use crate::resolve::ResolveError;

/// A DANE outcome that defers delivery to a host, with nothing sent
/// (RFC 7672 §2.1.1, §2.2): each is transient, since DNS or the
/// destination's configuration may be fixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DaneRefusal {
    /// The TLSA lookup failed (SERVFAIL, timeout): the records may exist,
    /// so neither DANE nor the fallback may be used (RFC 7672 §2.2).
    #[error("TLSA lookup for {name} failed ({error}); not falling back")]
    TlsaLookup {
        /// The TLSA owner name.
        name: String,
        /// What the lookup returned.
        error: ResolveError,
    },
    /// A record set's DNSSEC status was bogus or indeterminate.
    #[error("DNSSEC status of {what} for {name} is {status}")]
    Dnssec {
        /// The name looked up.
        name: String,
        /// Which record set (`MX`, `A/AAAA`, `TLSA`).
        what: &'static str,
        /// [`DnssecStatus::Bogus`] or [`DnssecStatus::Indeterminate`].
        status: DnssecStatus,
    },
    /// `dane-only`: the host has no usable, validated TLSA records (or its
    /// MX or address records are not signed), so it may not get mail.
    #[error("dane-only: {host} is not DANE-authenticated ({reason})")]
    NotAuthenticated {
        /// The MX host (or the domain, when the MX RRset is not signed).
        host: String,
        /// Why (e.g. `MX RRset insecure`, `no TLSA records`).
        reason: &'static str,
    },
    /// The route asks for `dane-only` but the relay has no
    /// [`DaneResolver`](crate::DaneResolver).
    #[error("dane-only needs a DNSSEC-aware resolver, and the relay has none")]
    NoResolver,
}
