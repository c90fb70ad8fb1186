//! The crypto provider this build selects, in one place.
//!
//! Everything in the relay takes the provider as an argument (never the
//! process default), so an embedder may bring its own; this is the one that
//! the crate's features choose, for embedders, tests and examples alike.
//! The sans-IO core builds without either feature.

#[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
use rustls::crypto::CryptoProvider;

/// The provider chosen by the crate's features: aws-lc-rs (feature
/// `aws-lc-rs`, the default) or ring (feature `ring` alone).
///
/// aws-lc-rs offers the post-quantum hybrid `X25519MLKEM768` first, then
/// X25519, P-256 and P-384, so a client that has ML-KEM gets the hybrid
/// and every other client negotiates X25519 as before. ring offers no
/// post-quantum group.
#[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
pub fn default_provider() -> CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    {
        rustls::crypto::aws_lc_rs::default_provider()
    }
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    {
        rustls::crypto::ring::default_provider()
    }
}
