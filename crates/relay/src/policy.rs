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

    /// Reads every certificate of these PEM files (a CA bundle may be
    /// split over several). A file that cannot be read, or no certificate
    /// at all, is an error naming it: trust is never widened to make up
    /// for a missing file.
    pub fn from_pem_files<P: AsRef<std::path::Path>>(
        files: impl IntoIterator<Item = P>,
    ) -> Result<Self, AnchorFileError> {
        let mut certs = Vec::new();
        for f in files {
            let path = f.as_ref();
            let bytes = std::fs::read(path).map_err(|source| AnchorFileError::Read {
                path: path.to_owned(),
                source,
            })?;
            // Each file on its own, so a bad one is named.
            match Anchors::from_pem(&bytes) {
                Ok(Anchors::Custom(c)) => certs.extend(c),
                #[cfg(feature = "webpki-roots")]
                Ok(Anchors::WebPki) => {}
                Err(source) => {
                    return Err(AnchorFileError::BadFile {
                        path: path.to_owned(),
                        source,
                    });
                }
            }
        }
        if certs.is_empty() {
            return Err(AnchorFileError::Pem(RelayError::Config(
                "trust anchors: no file given".into(),
            )));
        }
        Ok(Anchors::Custom(certs))
    }
}

/// Why trust anchor files could not be used ([`Anchors::from_pem_files`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorFileError {
    /// A file could not be read.
    #[error("cannot read trust anchors {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no certificate, or a malformed one.
    #[error("trust anchors {}: {source}", path.display())]
    BadFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        source: RelayError,
    },
    /// No file was given.
    #[error("{0}")]
    Pem(RelayError),
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
    /// DANE (RFC 7672, Postfix's `dane`) for MX delivery: a host whose MX
    /// RRset, address records and TLSA RRset validate gets TLS
    /// authenticated by its TLSA records only; a destination that is not
    /// signed gets `fallback` (opportunistic by default). A TLSA lookup
    /// that fails, or bogus or indeterminate DNSSEC data, defers the
    /// delivery instead of falling back: falling back would let an active
    /// attacker downgrade the connection. Needs a
    /// [`DaneResolver`](crate::DaneResolver) on the relay; without one,
    /// and for smart hosts, `fallback` applies.
    Dane {
        /// The mode for destinations DANE does not cover; never DANE
        /// itself.
        fallback: Box<TlsMode>,
    },
    /// DANE or nothing (Postfix's `dane-only`): mail goes only to hosts
    /// authenticated by validated TLSA records; every other outcome
    /// defers with nothing sent.
    DaneOnly,
}

impl TlsMode {
    /// [`TlsMode::Dane`] with the opportunistic fallback (Postfix's
    /// `dane`).
    pub fn dane() -> Self {
        TlsMode::Dane {
            fallback: Box::new(TlsMode::Opportunistic),
        }
    }

    /// [`TlsMode::Dane`] falling back to `fallback` (unwrapped when it is
    /// DANE itself, so DANE never nests).
    pub fn dane_or(fallback: TlsMode) -> Self {
        match fallback {
            TlsMode::Dane { .. } | TlsMode::DaneOnly => fallback,
            other => TlsMode::Dane {
                fallback: Box::new(other),
            },
        }
    }

    /// This mode with DANE taking precedence for signed destinations
    /// (issue 13: DANE wins over a rule's weaker setting): `none`,
    /// `opportunistic` and `required` become [`TlsMode::Dane`] falling
    /// back to themselves. Modes that already authenticate (`verified`
    /// with the operator's anchors, `implicit` for smart hosts) and the
    /// DANE modes are kept.
    pub fn under_dane(self) -> Self {
        match self {
            TlsMode::None | TlsMode::Opportunistic | TlsMode::Required => Self::dane_or(self),
            other => other,
        }
    }

    /// This mode for a message whose sender asked, with a `TLS-Required:
    /// No` header field (RFC 8689 §4.1), that the recipient domain's
    /// published TLS policy be ignored: the DANE modes become
    /// [`TlsMode::Opportunistic`] (TLS is still attempted); the operator's
    /// own modes (`required`, `verified`, `implicit`, `none`) are kept.
    pub fn ignoring_recipient_policy(self) -> Self {
        match self {
            TlsMode::Dane { .. } | TlsMode::DaneOnly => TlsMode::Opportunistic,
            other => other,
        }
    }

    /// True for [`TlsMode::Dane`] and [`TlsMode::DaneOnly`].
    pub fn is_dane(&self) -> bool {
        matches!(self, TlsMode::Dane { .. } | TlsMode::DaneOnly)
    }

    /// The mode connections use when DANE does not apply: the fallback of
    /// [`TlsMode::Dane`], [`TlsMode::Required`] for [`TlsMode::DaneOnly`]
    /// (whose hosts without DANE get no connection at all), else the mode
    /// itself.
    pub fn without_dane(&self) -> &TlsMode {
        match self {
            TlsMode::Dane { fallback } => fallback.without_dane(),
            TlsMode::DaneOnly => &TlsMode::Required,
            other => other,
        }
    }

    /// True when the mode never lets mail go out in plaintext.
    pub fn requires_tls(&self) -> bool {
        !matches!(self.without_dane(), TlsMode::None | TlsMode::Opportunistic)
    }

    /// The anchors certificates are verified against, if any (for DANE,
    /// those of the fallback).
    pub fn anchors(&self) -> Option<&Anchors> {
        match self.without_dane() {
            TlsMode::Verified { anchors } => Some(anchors),
            TlsMode::Implicit { anchors } => anchors.as_ref(),
            _ => None,
        }
    }

    /// The mode's name as rules and configuration spell it: `none`,
    /// `opportunistic`, `required`, `verified`, `implicit`, `dane`,
    /// `dane-only`.
    pub fn name(&self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::Opportunistic => "opportunistic",
            TlsMode::Required => "required",
            TlsMode::Verified { .. } => "verified",
            TlsMode::Implicit { .. } => "implicit",
            TlsMode::Dane { .. } => "dane",
            TlsMode::DaneOnly => "dane-only",
        }
    }
}

impl fmt::Display for TlsMode {
    /// The [`name`](Self::name); DANE with a fallback other than
    /// opportunistic adds it: `dane (else required)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsMode::Dane { fallback } if **fallback != TlsMode::Opportunistic => {
                write!(f, "dane (else {fallback})")
            }
            other => f.write_str(other.name()),
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
    /// MTA-STS (RFC 8461) on MX routes whose mode does not authenticate
    /// by itself (`none`, `opportunistic`, `required`, and DANE's
    /// fallback): where the recipient domain has a policy and DANE does
    /// not authenticate a host, an `enforce` policy allows only the MX
    /// hosts matching it, over TLS verified for the MX name against the
    /// relay's MTA-STS anchors; `testing` delivers under the mode and
    /// logs what would have failed. Needs an
    /// [`StsResolver`](crate::mta_sts::StsResolver) on the relay
    /// (`Relay::with_mta_sts`); without one it is ignored.
    pub mta_sts: bool,
}

impl TlsPolicy {
    /// A policy with `mode` and the default versions, TLS 1.2 and 1.3.
    pub fn new(mode: TlsMode) -> Self {
        Self {
            mode,
            versions: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            mta_sts: false,
        }
    }

    /// The same policy with MTA-STS on or off (see [`TlsPolicy::mta_sts`]).
    #[must_use]
    pub fn with_mta_sts(mut self, on: bool) -> Self {
        self.mta_sts = on;
        self
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_files_that_are_missing_or_empty_are_errors() {
        let dir = std::env::temp_dir().join(format!("postern-anchors-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = Anchors::from_pem_files([&missing]).unwrap_err().to_string();
        assert!(
            e.contains("cannot read trust anchors") && e.contains("missing.pem"),
            "{e}"
        );
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert!(Anchors::from_pem_files([&empty]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tls_required_no_drops_the_dane_modes_only() {
        assert_eq!(
            TlsMode::dane().ignoring_recipient_policy(),
            TlsMode::Opportunistic
        );
        assert_eq!(
            TlsMode::DaneOnly.ignoring_recipient_policy(),
            TlsMode::Opportunistic
        );
        for kept in [TlsMode::None, TlsMode::Opportunistic, TlsMode::Required] {
            assert_eq!(kept.clone().ignoring_recipient_policy(), kept);
        }
    }

    #[test]
    fn dane_modes_fall_back_and_take_precedence() {
        let dane = TlsMode::dane();
        assert_eq!(dane.without_dane(), &TlsMode::Opportunistic);
        assert!(!dane.requires_tls() && dane.is_dane());
        assert_eq!(TlsMode::DaneOnly.without_dane(), &TlsMode::Required);
        assert!(TlsMode::DaneOnly.requires_tls());
        // DANE never nests.
        assert_eq!(TlsMode::dane_or(TlsMode::DaneOnly), TlsMode::DaneOnly);
        assert_eq!(TlsMode::dane_or(dane.clone()), dane);
        // Weaker rule settings are upgraded; authenticating ones are kept.
        assert_eq!(TlsMode::Opportunistic.under_dane(), dane);
        assert_eq!(
            TlsMode::Required.under_dane(),
            TlsMode::Dane {
                fallback: Box::new(TlsMode::Required)
            }
        );
        let verified = TlsMode::Verified {
            anchors: Anchors::Custom(Vec::new()),
        };
        assert_eq!(verified.clone().under_dane(), verified);
        assert_eq!(dane.to_string(), "dane");
        assert_eq!(
            TlsMode::Required.under_dane().to_string(),
            "dane (else required)"
        );
        assert_eq!(TlsMode::DaneOnly.to_string(), "dane-only");
    }
}
