//! TLS policy: the mode (none, opportunistic, required, verified, implicit),
//! the set of protocol versions a route allows, and the trust anchors.
//!
//! Versions are checked against what the TLS stack can speak. rustls speaks
//! TLS 1.2 and 1.3 only; an older version in a policy is *reported* (see
//! [`VersionReport`]) and never stands in for a newer one, and a policy whose
//! effective set is empty is an error before any connection is made.

use std::fmt;

use postern_proto::TlsVersion;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::error::RelayError;

/// Whether this crate's TLS stack (rustls) can negotiate `version`.
pub(crate) fn is_supported(version: TlsVersion) -> bool {
    rustls_version(version).is_some()
}

/// rustls's name for `version`, when rustls speaks it (TLS 1.2 and 1.3).
pub(crate) fn rustls_version(
    version: TlsVersion,
) -> Option<&'static rustls::SupportedProtocolVersion> {
    match version {
        TlsVersion::Tls12 => Some(&rustls::version::TLS12),
        TlsVersion::Tls13 => Some(&rustls::version::TLS13),
        _ => None,
    }
}

/// The version rustls negotiated, by its wire number.
pub(crate) fn from_rustls(version: rustls::ProtocolVersion) -> Option<TlsVersion> {
    TlsVersion::from_wire(u16::from(version))
}

/// Where certificate verification takes its trust anchors from.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Anchors {
    /// The Mozilla root program, as shipped by `webpki-roots` (feature
    /// `webpki-roots`).
    #[cfg(feature = "webpki-roots")]
    WebPki,
    /// Only these CA certificates (DER).
    Custom(Vec<CertificateDer<'static>>),
}

impl Anchors {
    /// Reads every certificate from PEM text. Fails when there is none or a
    /// block is malformed.
    pub fn from_pem(pem: &[u8]) -> Result<Self, RelayError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RelayError::Config(format!("trust anchors: {e}")))?;
        if certs.is_empty() {
            return Err(RelayError::Config(
                "trust anchors: no certificate in PEM".into(),
            ));
        }
        Ok(Anchors::Custom(certs))
    }
}

impl fmt::Debug for Anchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "webpki-roots")]
            Anchors::WebPki => f.write_str("WebPki"),
            Anchors::Custom(c) => write!(f, "Custom({} certificates)", c.len()),
        }
    }
}

/// How a route uses TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsMode {
    /// Never start TLS, even when offered.
    None,
    /// STARTTLS when the server offers it, without checking its certificate
    /// (RFC 7435). If the handshake fails, the client reconnects once and
    /// delivers in plaintext; if STARTTLS is not offered it delivers in
    /// plaintext on the same connection.
    Opportunistic,
    /// STARTTLS must be offered and succeed, else the delivery fails
    /// transiently and nothing is sent in plaintext. The certificate is not
    /// checked (encryption against passive observers only).
    Required,
    /// As [`TlsMode::Required`], plus PKIX verification of the server's
    /// certificate against `anchors` and a check of the host name.
    Verified {
        /// The trust anchors.
        anchors: Anchors,
    },
    /// TLS from the first byte (RFC 8314, port 465). With anchors, the
    /// certificate and host name are verified; without, they are not.
    Implicit {
        /// The trust anchors, or `None` for no verification.
        anchors: Option<Anchors>,
    },
}

impl TlsMode {
    /// True when the mode never lets mail go out in plaintext.
    pub fn requires_tls(&self) -> bool {
        !matches!(self, TlsMode::None | TlsMode::Opportunistic)
    }

    /// The anchors certificates are verified against, if any.
    pub fn anchors(&self) -> Option<&Anchors> {
        match self {
            TlsMode::Verified { anchors } => Some(anchors),
            TlsMode::Implicit { anchors } => anchors.as_ref(),
            _ => None,
        }
    }

    /// The mode's name as rules and configuration spell it: `none`,
    /// `opportunistic`, `required`, `verified`, `implicit` (for logs and
    /// metric labels).
    pub fn name(&self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::Opportunistic => "opportunistic",
            TlsMode::Required => "required",
            TlsMode::Verified { .. } => "verified",
            TlsMode::Implicit { .. } => "implicit",
        }
    }
}

/// A route's TLS policy: the mode and the versions allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsPolicy {
    /// The mode.
    pub mode: TlsMode,
    /// The protocol versions allowed. Versions the stack cannot speak are
    /// reported by [`TlsPolicy::versions`] and ignored, never replaced.
    pub versions: Vec<TlsVersion>,
}

impl TlsPolicy {
    /// A policy with `mode` and the default versions, TLS 1.2 and 1.3.
    pub fn new(mode: TlsMode) -> Self {
        Self {
            mode,
            versions: vec![TlsVersion::Tls12, TlsVersion::Tls13],
        }
    }

    /// Replaces the allowed versions.
    pub fn with_versions(mut self, versions: impl IntoIterator<Item = TlsVersion>) -> Self {
        self.versions = versions.into_iter().collect();
        self.versions.sort();
        self.versions.dedup();
        self
    }

    /// Splits the allowed versions into the ones that will be offered and
    /// the ones this stack cannot speak.
    pub fn versions(&self) -> VersionReport {
        let (effective, unsupported) = self.versions.iter().partition(|v| is_supported(**v));
        VersionReport {
            effective,
            unsupported,
        }
    }
}

/// The versions a policy allows, as the TLS stack will apply them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionReport {
    /// Offered in the ClientHello, exactly these.
    pub effective: Vec<TlsVersion>,
    /// Named by the policy but not speakable here; not offered.
    pub unsupported: Vec<TlsVersion>,
}

impl VersionReport {
    /// One warning per unsupported version, stating the effective setting.
    pub fn warnings(&self) -> Vec<String> {
        let effective = if self.effective.is_empty() {
            "none (delivery on this route will fail)".to_owned()
        } else {
            join(&self.effective)
        };
        self.unsupported
            .iter()
            .map(|v| {
                format!(
                    "{v} is not supported by rustls and is ignored; effective versions: {effective}"
                )
            })
            .collect()
    }
}

pub(crate) fn join(versions: &[TlsVersion]) -> String {
    versions
        .iter()
        .map(|v| v.name())
        .collect::<Vec<_>>()
        .join(", ")
}
