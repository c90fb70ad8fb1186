//! DNS with DNSSEC status, as DANE needs it (RFC 7672 §2.1, §2.2): the
//! [`DaneResolver`] trait and what its lookups return. Sans-IO: the
//! implementations over the network are in the driver (feature `hickory`,
//! [`DnssecResolver`](crate::DnssecResolver)).

use std::fmt;
use std::net::IpAddr;

use crate::dane::TlsaRecord;
use crate::resolve::{BoxFuture, MxRecord, ResolveError, Resolver};

/// The DNSSEC status of an answer (RFC 4033 §5, RFC 4035 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DnssecStatus {
    /// A chain of signatures from a trust anchor validates the answer
    /// (including a validated denial of existence).
    Secure,
    /// The answer provably lies in an unsigned zone, or the status could
    /// not be trusted (AD from a non-loopback resolver): DANE does not
    /// apply and the route's fallback does.
    Insecure,
    /// The answer should validate and does not: a forgery or a broken
    /// zone. Delivery defers.
    Bogus,
    /// The DNSSEC records needed could not be had (timeouts, unreachable
    /// servers): neither secure nor provably insecure. Delivery defers;
    /// a timeout is never reported as [`Bogus`](Self::Bogus).
    Indeterminate,
}

impl DnssecStatus {
    /// True for [`DnssecStatus::Secure`].
    pub fn is_secure(self) -> bool {
        self == DnssecStatus::Secure
    }

    /// True when delivery must defer on this status: bogus or
    /// indeterminate (RFC 7672 §2.1.1: neither may be treated as insecure,
    /// or an attacker could downgrade the connection).
    pub fn must_defer(self) -> bool {
        matches!(self, DnssecStatus::Bogus | DnssecStatus::Indeterminate)
    }

    /// The status of two answers taken together: the weaker one, failures
    /// first (bogus, then indeterminate, then insecure, then secure).
    pub fn and(self, other: Self) -> Self {
        fn rank(s: DnssecStatus) -> u8 {
            match s {
                DnssecStatus::Bogus => 3,
                DnssecStatus::Indeterminate => 2,
                DnssecStatus::Insecure => 1,
                DnssecStatus::Secure => 0,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    /// The lowercase name, for logs: `secure`, `insecure`, `bogus`,
    /// `indeterminate`.
    pub fn name(self) -> &'static str {
        match self {
            DnssecStatus::Secure => "secure",
            DnssecStatus::Insecure => "insecure",
            DnssecStatus::Bogus => "bogus",
            DnssecStatus::Indeterminate => "indeterminate",
        }
    }
}

impl fmt::Display for DnssecStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The records of one lookup and their DNSSEC status. No records means the
/// name or the type does not exist; the status then is that of the denial.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DnsAnswer<T> {
    /// The records, in the order received.
    pub records: Vec<T>,
    /// Their DNSSEC status.
    pub status: DnssecStatus,
    /// The name the records were found at when a CNAME chain led there
    /// from the name asked for (lowercase, no trailing dot); `None` when
    /// there was no CNAME.
    pub canonical: Option<String>,
}

impl<T> DnsAnswer<T> {
    /// An answer with `records` of status `status`, without a CNAME.
    pub fn new(records: Vec<T>, status: DnssecStatus) -> Self {
        Self {
            records,
            status,
            canonical: None,
        }
    }

    /// The same answer, found at `name` through a CNAME chain.
    pub fn with_canonical(mut self, name: &str) -> Self {
        self.canonical = Some(name.trim_end_matches('.').to_ascii_lowercase());
        self
    }
}

/// DNS with DNSSEC status, for DANE (RFC 7672).
///
/// The errors are those of [`Resolver`]: [`ResolveError::NoSuchDomain`]
/// for an MX or address name that does not exist (a TLSA name that does
/// not exist is an empty answer instead, with the denial's status), and
/// [`ResolveError::Transient`] for a server failure or a timeout, which a
/// validating resolver also answers for bogus data.
pub trait DaneResolver: Resolver {
    /// The MX RRset of `domain` and its status; no records when the domain
    /// exists without MX records.
    fn mx_dnssec<'a>(
        &'a self,
        domain: &'a str,
    ) -> BoxFuture<'a, Result<DnsAnswer<MxRecord>, ResolveError>>;

    /// The A and AAAA records of `host`, with the weaker status of the two
    /// lookups, and the name they were found at through CNAMEs.
    fn ips_dnssec<'a>(
        &'a self,
        host: &'a str,
    ) -> BoxFuture<'a, Result<DnsAnswer<IpAddr>, ResolveError>>;

    /// The TLSA RRset at `_<port>._tcp.<host>` (RFC 7672 §2.2.3: the port
    /// the client connects to, 25 for MX delivery).
    fn tlsa<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<DnsAnswer<TlsaRecord>, ResolveError>>;
}

/// The TLSA owner name for `host` on `port`: `_25._tcp.mx.example.com`.
pub fn tlsa_name(host: &str, port: u16) -> String {
    format!("_{port}._tcp.{}", host.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weakest_status_wins() {
        use DnssecStatus::*;
        assert_eq!(Secure.and(Secure), Secure);
        assert_eq!(Secure.and(Insecure), Insecure);
        assert_eq!(Insecure.and(Indeterminate), Indeterminate);
        assert_eq!(Bogus.and(Indeterminate), Bogus);
        assert_eq!(Indeterminate.and(Bogus), Bogus);
        assert!(Bogus.must_defer() && Indeterminate.must_defer());
        assert!(!Insecure.must_defer() && !Secure.must_defer());
        assert_eq!(tlsa_name("mx.example.", 25), "_25._tcp.mx.example");
    }
}
