//! DANE for SMTP (RFC 7672), sans-IO: TLSA records, which of them an SMTP
//! client may use, and a rustls certificate verifier that authenticates a
//! server by them.
//!
//! The DNS side (is the MX RRset, the host's address and its TLSA RRset
//! DNSSEC-secure?) decides whether these apply; this module only judges a
//! validated TLSA RRset against a presented certificate chain.
//!
//! ```
//! use postern_relay::dane::{TlsaRecord, TlsaUsage, UsableTlsa};
//!
//! let record: TlsaRecord =
//!     "3 1 1 0C72AC70B745AC19998811B131D662C9AC69DBDBE7CB23E5B514B56664C5D3D6".parse()?;
//! assert_eq!(record.usage(), TlsaUsage::DaneEe);
//! // PKIX-TA(0) is unusable for SMTP (RFC 7672 §3.1.3): no DANE policy.
//! let pkix: TlsaRecord = "0 0 1 0C72AC70B745AC19998811B131D662C9AC69DBDBE7CB23E5B514B56664C5D3D6".parse()?;
//! assert!(UsableTlsa::select([pkix]).is_none());
//! assert!(UsableTlsa::select([record]).is_some());
//! # Ok::<(), postern_relay::dane::TlsaParseError>(())
//! ```

mod der;
mod tlsa;
mod usable;
mod verifier;

// The handshake and signature checks need a provider; without one the rest
// of the sans-IO core is still tested.
#[cfg(all(test, any(feature = "aws-lc-rs", feature = "ring")))]
mod tests;

pub use tlsa::{TlsaMatching, TlsaParseError, TlsaRecord, TlsaSelector, TlsaUsage};
pub use usable::UsableTlsa;
pub use verifier::{DaneError, DaneMatch, DaneVerifier};
