//! A route's TLS policy, checked and turned into rustls configuration once,
//! before any connection.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use crate::client::TlsRequirement;
use crate::dane::DaneVerifier;
use crate::error::RelayError;
use rustls::client::danger::ServerCertVerifier;

use crate::policy::{TlsMode, TlsPolicy, VersionReport};
use crate::tls::{client_config, dane_client_config};

/// How connections start TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// Plaintext, STARTTLS as the requirement says.
    StartTls(TlsRequirement),
    /// TLS from the first octet.
    Implicit,
}

/// A checked TLS policy: the rustls configuration with exactly the
/// policy's effective versions, and how to use it.
#[derive(Debug, Clone)]
pub struct Connector {
    pub(crate) start: Start,
    pub(crate) rustls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) verified: bool,
    /// The DANE verifier of this connector's TLS configuration, read after
    /// each handshake for the record that matched.
    pub(crate) dane: Option<Arc<DaneVerifier>>,
    /// A verifier run after each handshake without deciding it (MTA-STS
    /// `testing`, RFC 8461 §5): what it refuses is reported (TLS-RPT), the
    /// session goes on.
    pub(crate) audit: Option<Arc<dyn ServerCertVerifier>>,
    report: VersionReport,
}

impl Connector {
    /// Checks `policy` and builds its rustls configuration with `provider`.
    ///
    /// Fails with [`RelayError::NoUsableTlsVersion`] when the policy uses TLS
    /// and none of its versions can be spoken; unsupported versions next to
    /// supported ones are listed by [`Connector::report`].
    pub fn new(policy: &TlsPolicy, provider: Arc<CryptoProvider>) -> Result<Self, RelayError> {
        let start = match policy.mode.without_dane() {
            TlsMode::None => Start::StartTls(TlsRequirement::Plain),
            TlsMode::Opportunistic => Start::StartTls(TlsRequirement::Opportunistic),
            TlsMode::Required | TlsMode::Verified { .. } => {
                Start::StartTls(TlsRequirement::Required)
            }
            TlsMode::Implicit { .. } => Start::Implicit,
            // `without_dane` never returns a DANE mode.
            TlsMode::Dane { .. } | TlsMode::DaneOnly => Start::StartTls(TlsRequirement::Required),
        };
        Ok(Self {
            start,
            rustls: client_config(policy, provider)?,
            verified: policy.mode.anchors().is_some(),
            dane: None,
            audit: None,
            report: policy.versions(),
        })
    }

    /// This connector upgraded to DANE for one server whose TLSA RRset
    /// (and MX and address records) validated (RFC 7672 §2.2): TLS is
    /// required (STARTTLS, or implicit TLS if this connector uses it), the
    /// certificate is checked by `verifier` alone, whatever the route's
    /// mode, and the route's versions are kept. A handshake that does not
    /// authenticate fails the delivery transiently with nothing sent.
    pub fn with_dane(
        &self,
        verifier: Arc<DaneVerifier>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, RelayError> {
        let start = match self.start {
            Start::Implicit => Start::Implicit,
            Start::StartTls(_) => Start::StartTls(TlsRequirement::Required),
        };
        let config = dane_client_config(&self.report.effective, verifier.clone(), provider)?;
        Ok(Self {
            start,
            rustls: Some(config),
            verified: true,
            dane: Some(verifier),
            audit: None,
            report: self.report.clone(),
        })
    }

    /// This connector, also checking each server's certificate against
    /// `anchors` after the handshake without failing it: the result is
    /// only reported (MTA-STS `testing` mode, RFC 8461 §5).
    #[cfg(feature = "mta-sts-fetch")]
    pub(crate) fn with_audit(
        &self,
        anchors: &crate::policy::Anchors,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, RelayError> {
        let roots = Arc::new(crate::tls::root_store(anchors)?);
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| RelayError::Config(format!("trust anchors: {e}")))?;
        Ok(Self {
            audit: Some(verifier),
            ..self.clone()
        })
    }

    /// Whether connections try TLS at all (not [`TlsMode::None`]).
    pub(crate) fn attempts_tls(&self) -> bool {
        self.start != Start::StartTls(TlsRequirement::Plain)
    }

    /// The versions offered and those ignored as unsupported.
    pub fn report(&self) -> &VersionReport {
        &self.report
    }

    /// The rustls configuration, when the policy uses TLS.
    pub fn rustls_config(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.rustls.as_ref()
    }
}
