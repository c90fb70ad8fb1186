//! The DANE certificate check (RFC 7672 §3.2) as a rustls
//! [`ServerCertVerifier`]: rustls declined to build DANE in (rustls#816),
//! so the relay plugs this in through the dangerous-configuration API.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, Der, DnsName, ServerName, TrustAnchor, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};

use super::der::{self, CertFields};
use super::tlsa::{TlsaMatching, TlsaRecord, TlsaSelector, TlsaUsage};
use super::usable::UsableTlsa;

/// Which TLSA record authenticated the server, for the delivery log and
/// the Received header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaneMatch {
    record: TlsaRecord,
    depth: Option<usize>,
    name: Option<DnsName<'static>>,
}

impl DaneMatch {
    /// The matching record.
    pub fn record(&self) -> &TlsaRecord {
        &self.record
    }

    /// The position in the presented chain of the certificate it matched
    /// (0 is the server's own), `None` for a DANE-TA record whose full
    /// certificate or key was not in the chain but anchored it anyway.
    pub fn depth(&self) -> Option<usize> {
        self.depth
    }

    /// The reference identifier the certificate was valid for: set for
    /// DANE-TA, `None` for DANE-EE, which checks no name (RFC 7672 §3.2.1).
    pub fn name(&self) -> Option<&DnsName<'static>> {
        self.name.as_ref()
    }
}

impl std::fmt::Display for DaneMatch {
    /// `DANE-EE(3) SPKI(1) SHA2-256(1) matched depth 0`, then the name for
    /// DANE-TA.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.record;
        write!(f, "{} {} {}", r.usage(), r.selector(), r.matching())?;
        match self.depth {
            Some(d) => write!(f, " matched depth {d}")?,
            None => f.write_str(" anchored the chain")?,
        }
        if let Some(name) = &self.name {
            write!(f, " for {}", name.as_ref())?;
        }
        Ok(())
    }
}

/// Why a chain did not authenticate under the TLSA records.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DaneError {
    /// No record matched any certificate in the chain.
    #[error("no TLSA record matches the server's certificate chain")]
    NoMatch,
    /// A DANE-TA record matched, but the chain from it to the server's
    /// certificate, the validity dates or the name check failed. The last
    /// such failure is reported.
    #[error("TLSA record {record} matched, but the chain does not verify: {reason}")]
    TrustAnchor {
        /// The matching DANE-TA record.
        record: TlsaRecord,
        /// What webpki or the name check refused.
        reason: rustls::Error,
    },
}

impl DaneError {
    /// The DANE failure inside a rustls handshake error, as
    /// [`DaneVerifier`] reports it to rustls (rustls prints only its
    /// debug form).
    pub fn from_rustls(error: &rustls::Error) -> Option<&DaneError> {
        match error {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
                inner.downcast_ref()
            }
            _ => None,
        }
    }
}

/// A [`ServerCertVerifier`] that authenticates a server by its TLSA
/// records (RFC 7672 §3.2), for one connection:
/// - DANE-EE(3) records are matched against the server's certificate only;
///   names and validity dates are ignored (§3.2.1).
/// - DANE-TA(2) records are matched against every certificate of the
///   presented chain; the chain from the matching one to the server's
///   certificate must then verify (signatures, validity dates, key usage)
///   and the server's certificate must be valid for one of the reference
///   identifiers (§3.2.2): the TLSA base domain and the MX host name.
///   A Full(0) record also anchors a chain that does not include it.
///
/// The handshake signature is checked with the crypto provider's
/// algorithms, as for any rustls connection. TLS session resumption skips
/// certificate verification, so a connection using this verifier must
/// disable resumption or [`matched`](Self::matched) stays empty.
#[derive(Debug)]
pub struct DaneVerifier {
    tlsa: UsableTlsa,
    names: Vec<DnsName<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
    matched: Mutex<Option<DaneMatch>>,
}

impl DaneVerifier {
    /// A verifier for `tlsa`, checking DANE-TA chains against
    /// `reference_names` (RFC 7672 §3.2.2), with `provider`'s signature
    /// algorithms.
    pub fn new(
        tlsa: UsableTlsa,
        reference_names: impl IntoIterator<Item = DnsName<'static>>,
        provider: &CryptoProvider,
    ) -> Self {
        Self {
            tlsa,
            names: reference_names.into_iter().collect(),
            algorithms: provider.signature_verification_algorithms,
            matched: Mutex::new(None),
        }
    }

    /// The TLSA records this verifier checks.
    pub fn tlsa(&self) -> &UsableTlsa {
        &self.tlsa
    }

    /// The record that authenticated the last verified handshake.
    pub fn matched(&self) -> Option<DaneMatch> {
        self.matched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Authenticates a presented chain at time `now`, without a handshake:
    /// the sans-IO core of [`ServerCertVerifier::verify_server_cert`].
    pub fn authenticate(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<DaneMatch, DaneError> {
        if let Some(record) = self
            .tlsa
            .with_usage(TlsaUsage::DaneEe)
            .find(|r| r.matches(end_entity))
        {
            return Ok(DaneMatch {
                record: record.clone(),
                depth: Some(0),
                name: None,
            });
        }
        let chain: Vec<&CertificateDer<'_>> =
            std::iter::once(end_entity).chain(intermediates).collect();
        let mut failure = None;
        let in_chain = |record: &TlsaRecord| chain.iter().position(|c| record.matches(c));
        for record in self.tlsa.with_usage(TlsaUsage::DaneTa) {
            let result = match in_chain(record) {
                Some(0) => self
                    .leaf_as_anchor(end_entity, now)
                    .map(|name| (Some(0), name)),
                Some(depth) => {
                    let mut roots = RootCertStore::empty();
                    roots
                        .add(chain[depth].clone())
                        .and_then(|()| {
                            self.chain_to(&roots, end_entity, &intermediates[..depth - 1], now)
                        })
                        .map(|name| (Some(depth), name))
                }
                None => match out_of_band_anchors(record, &chain) {
                    Some(roots) => self
                        .chain_to(&roots, end_entity, intermediates, now)
                        .map(|name| (None, name)),
                    None => continue,
                },
            };
            match result {
                Ok((depth, name)) => {
                    return Ok(DaneMatch {
                        record: record.clone(),
                        depth,
                        name: Some(name),
                    });
                }
                Err(reason) => {
                    failure = Some(DaneError::TrustAnchor {
                        record: record.clone(),
                        reason,
                    })
                }
            }
        }
        Err(failure.unwrap_or(DaneError::NoMatch))
    }

    /// A chain from one of `roots` to the server's certificate, then the
    /// name check.
    fn chain_to(
        &self,
        roots: &RootCertStore,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<DnsName<'static>, rustls::Error> {
        let leaf = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &leaf,
            roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        self.valid_name(&leaf)
    }

    /// A DANE-TA record matching the server's own certificate makes it its
    /// own trust anchor: only a self-issued certificate can be one (the
    /// ssl_dane "depth 0 TA" case), and its dates and name still count.
    fn leaf_as_anchor(
        &self,
        end_entity: &CertificateDer<'_>,
        now: UnixTime,
    ) -> Result<DnsName<'static>, rustls::Error> {
        let fields = CertFields::parse(end_entity).ok_or(CertificateError::BadEncoding)?;
        if !fields.is_self_issued() {
            return Err(CertificateError::UnknownIssuer.into());
        }
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now < fields.not_before {
            return Err(CertificateError::NotValidYet.into());
        }
        if !fields.is_valid_at(now) {
            return Err(CertificateError::Expired.into());
        }
        self.valid_name(&ParsedCertificate::try_from(end_entity)?)
    }

    /// The first reference identifier the certificate is valid for.
    fn valid_name(&self, leaf: &ParsedCertificate<'_>) -> Result<DnsName<'static>, rustls::Error> {
        self.names
            .iter()
            .find(|name| verify_server_name(leaf, &ServerName::DnsName((*name).clone())).is_ok())
            .cloned()
            .ok_or_else(|| CertificateError::NotValidForName.into())
    }
}

/// Trust anchors built from a Full(0) DANE-TA record's own data, for a
/// server that did not include the anchor in its chain: the certificate
/// itself, or for SPKI(1) the key under each issuer name the chain uses.
fn out_of_band_anchors(
    record: &TlsaRecord,
    chain: &[&CertificateDer<'_>],
) -> Option<RootCertStore> {
    if record.matching() != TlsaMatching::Full {
        return None;
    }
    let mut roots = RootCertStore::empty();
    match record.selector() {
        TlsaSelector::Cert => roots
            .add(CertificateDer::from(record.data().to_vec()))
            .ok()?,
        TlsaSelector::Spki => {
            let (spki, rest) = der::element(record.data())?;
            if !rest.is_empty() {
                return None;
            }
            for cert in chain {
                let fields = CertFields::parse(cert)?;
                roots.roots.push(TrustAnchor {
                    subject: Der::from(fields.issuer.contents.to_vec()),
                    subject_public_key_info: Der::from(spki.contents.to_vec()),
                    name_constraints: None,
                });
            }
        }
        TlsaSelector::Unassigned(_) => return None,
    }
    Some(roots)
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The SNI name is not a reference identifier by itself: the names
        // given to `new` are (the caller sends the TLSA base domain as SNI).
        let result = self.authenticate(end_entity, intermediates, now);
        let mut matched = self.matched.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(found) => {
                *matched = Some(found);
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => {
                // A refused handshake must not leave an earlier match behind.
                *matched = None;
                Err(CertificateError::Other(OtherError(Arc::new(e))).into())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
