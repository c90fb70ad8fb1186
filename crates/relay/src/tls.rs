//! rustls configuration from a [`TlsPolicy`], and the facts of a negotiated
//! session ([`OutboundTls`]) for logs and Received headers.
//!
//! The config offers exactly the policy's effective versions: rustls then
//! refuses to complete a handshake on any other, so "never over a version
//! the policy excludes" holds by construction rather than by a check after
//! the fact.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::dane::{DaneMatch, DaneVerifier};
use crate::error::RelayError;
use postern_proto::TlsVersion;

use crate::policy::{self, Anchors, TlsMode, TlsPolicy};

/// The facts of an established outbound TLS session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboundTls {
    /// The negotiated protocol version.
    pub version: TlsVersion,
    /// The negotiated cipher suite, as rustls names it
    /// (e.g. `TLS13_AES_256_GCM_SHA384`).
    pub cipher: String,
    /// The key-exchange group (e.g. `X25519MLKEM768`, `X25519`, `P-256`),
    /// when one was negotiated and is known.
    pub group: Option<String>,
    /// True when the certificate chain and host name were verified.
    pub verified: bool,
    /// The name the certificate was (or would have been) checked against.
    pub server_name: String,
    /// The TLSA record that authenticated the server, when the connection
    /// was made under DANE (RFC 7672).
    pub dane: Option<DaneMatch>,
}

impl OutboundTls {
    /// The facts of a session negotiated by a TLS stack other than the
    /// driver's (a caller driving [`Client`](crate::Client) itself).
    pub fn new(
        version: TlsVersion,
        cipher: impl Into<String>,
        verified: bool,
        server_name: impl Into<String>,
    ) -> Self {
        Self {
            version,
            cipher: cipher.into(),
            group: None,
            verified,
            server_name: server_name.into(),
            dane: None,
        }
    }

    /// Reads the facts from a connection whose handshake has completed.
    pub fn from_connection(
        conn: &rustls::ClientConnection,
        verified: bool,
        server_name: &str,
    ) -> Option<Self> {
        let version = policy::from_rustls(conn.protocol_version()?)?;
        let cipher = conn.negotiated_cipher_suite()?.suite();
        Some(Self {
            version,
            cipher: format!("{cipher:?}"),
            group: conn
                .negotiated_key_exchange_group()
                .map(|g| group_name(g.name())),
            verified,
            server_name: server_name.to_owned(),
            dane: None,
        })
    }
}

/// A group by the name OpenSSL and the listener's policy give it.
fn group_name(group: rustls::NamedGroup) -> String {
    match group {
        rustls::NamedGroup::secp256r1 => "P-256".to_owned(),
        rustls::NamedGroup::secp384r1 => "P-384".to_owned(),
        rustls::NamedGroup::secp521r1 => "P-521".to_owned(),
        rustls::NamedGroup::secp256r1MLKEM768 => "SecP256r1MLKEM768".to_owned(),
        other => format!("{other:?}"),
    }
}

impl fmt::Display for OutboundTls {
    /// The clause for a Received header or a log line, e.g.
    /// `using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384 key-exchange
    /// X25519MLKEM768 (verified)`, or
    /// under DANE `(DANE: DANE-EE(3) SPKI(1) SHA2-256(1) matched depth 0)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "using {} with cipher {} ", self.version, self.cipher)?;
        if let Some(group) = &self.group {
            write!(f, "key-exchange {group} ")?;
        }
        match &self.dane {
            Some(m) => write!(f, "(DANE: {m})"),
            None if self.verified => f.write_str("(verified)"),
            None => f.write_str("(not verified)"),
        }
    }
}

/// Builds the rustls client configuration for `policy`, or `None` for
/// [`TlsMode::None`].
///
/// Fails when the policy's effective version set is empty (the unsupported
/// versions are named in the error, never replaced by supported ones).
pub fn client_config(
    policy: &TlsPolicy,
    provider: Arc<CryptoProvider>,
) -> Result<Option<Arc<rustls::ClientConfig>>, RelayError> {
    if *policy.mode.without_dane() == TlsMode::None {
        return Ok(None);
    }
    let builder = builder(&policy.versions, provider.clone())?;
    let config = match policy.mode.anchors() {
        Some(anchors) => builder
            .with_root_certificates(root_store(anchors)?)
            .with_no_client_auth(),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateCheck(provider)))
            .with_no_client_auth(),
    };
    Ok(Some(Arc::new(config)))
}

/// A builder offering exactly the speakable ones of `requested`.
fn builder(
    requested: &[TlsVersion],
    provider: Arc<CryptoProvider>,
) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>, RelayError> {
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = requested
        .iter()
        .filter_map(|v| policy::rustls_version(*v))
        .collect();
    if versions.is_empty() {
        return Err(RelayError::NoUsableTlsVersion {
            requested: requested.to_vec(),
        });
    }
    rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| RelayError::Config(format!("TLS versions: {e}")))
}

/// The rustls configuration for a DANE connection (RFC 7672): `versions`
/// as a policy would offer them, the certificate checked by `verifier`
/// alone, and no session resumption, since a resumed session skips the
/// certificate check and would leave [`DaneVerifier::matched`] empty.
pub fn dane_client_config(
    versions: &[TlsVersion],
    verifier: Arc<DaneVerifier>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<rustls::ClientConfig>, RelayError> {
    let mut config = builder(versions, provider)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

pub(crate) fn root_store(anchors: &Anchors) -> Result<RootCertStore, RelayError> {
    match anchors {
        #[cfg(feature = "webpki-roots")]
        Anchors::WebPki => Ok(RootCertStore::from_iter(
            webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
        )),
        Anchors::Custom(certs) => {
            let mut store = RootCertStore::empty();
            for cert in certs {
                store
                    .add(cert.clone())
                    .map_err(|e| RelayError::Config(format!("trust anchor: {e}")))?;
            }
            Ok(store)
        }
    }
}

/// Accepts any certificate (opportunistic and required modes, RFC 7435),
/// while still checking the handshake signatures, so the session key is
/// bound to the key in the presented certificate.
#[derive(Debug)]
struct NoCertificateCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The name to verify a server's certificate against: a DNS name, or an IP
/// address for address literals.
#[cfg(feature = "tokio")]
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, RelayError> {
    let trimmed = name.trim_end_matches('.');
    ServerName::try_from(trimmed.to_owned())
        .map_err(|e| RelayError::Config(format!("invalid TLS server name {name:?}: {e}")))
}
