//! TLS policy in an operator's terms, built honestly into a rustls
//! [`rustls::ServerConfig`].
//!
//! rustls speaks TLS 1.2 and 1.3 with AEAD suites and ECDHE only. What a
//! policy asks beyond that is never silently dropped or widened: it is an
//! error ([`PolicyError`]) when nothing usable is left, and otherwise a
//! [`Warning`] in the [`TlsPolicyReport`] that states the effective value.

mod ciphers;
mod dh;
mod groups;
mod report;
mod versions;

use std::path::PathBuf;
use std::sync::Arc;

use postern_proto::TlsVersion;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SignatureAlgorithm};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

pub(crate) use groups::name_of as group_name;
pub use report::{PolicyError, Problem, TlsPolicyReport, Warning};

use crate::certs::{CertSet, CertSpec, CertStore, PemSource};

/// The TLS settings of a listener, as the guide (and OpenSSL) state them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsSettings {
    /// Protocol versions: `SSLv2`, `SSLv3`, `TLSv1`, `TLSv1.1`, `TLSv1.2`,
    /// `TLSv1.3`. Only 1.2 and 1.3 can be offered; the others are reported.
    pub versions: Vec<String>,
    /// Cipher list in OpenSSL notation (`ECDHE-RSA-AES128-GCM-SHA256:...`,
    /// keywords, `!`/`-`/`+` operators), IANA or rustls names. `None`: all
    /// suites of the provider for the enabled versions.
    pub ciphers: Option<String>,
    /// Key-exchange groups in preference order, OpenSSL names
    /// (`X25519MLKEM768`, `X25519`, `P-256`/`prime256v1`/`secp256r1`,
    /// `P-384`/`secp384r1`...; an entry may be a `:`-separated list).
    /// `None`: the provider's groups, which with aws-lc-rs put the
    /// post-quantum hybrid `X25519MLKEM768` first.
    pub groups: Option<Vec<String>>,
    /// A PEM `DH PARAMETERS` file for DHE suites. Parsed and validated
    /// (prime of at least 2048 bits), then reported as unused: rustls has
    /// no finite-field DHE.
    pub dh_params: Option<PathBuf>,
    /// Certificates, chosen by SNI; see [`CertSpec::default`].
    pub certificates: Vec<CertSpec>,
    /// Client-certificate verification.
    pub client_auth: ClientAuth,
    /// Choose the suite by the server's order rather than the client's.
    pub prefer_server_ciphers: bool,
}

impl Default for TlsSettings {
    /// TLS 1.2 and 1.3, all rustls suites, no certificate yet, server order.
    fn default() -> Self {
        Self {
            versions: vec!["TLSv1.2".into(), "TLSv1.3".into()],
            ciphers: None,
            groups: None,
            dh_params: None,
            certificates: Vec::new(),
            client_auth: ClientAuth::None,
            prefer_server_ciphers: true,
        }
    }
}

/// Whether clients are asked for a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// No client certificate is requested.
    #[default]
    None,
    /// A certificate is requested; one that is presented must verify
    /// against `roots`, but clients without one are served.
    Optional {
        /// PEM trust anchors for client certificates.
        roots: PemSource,
    },
    /// A certificate verifying against `roots` is required.
    Required {
        /// PEM trust anchors for client certificates.
        roots: PemSource,
    },
}

/// A built policy: the rustls configuration and the certificate store
/// that reloads swap.
#[derive(Debug, Clone)]
pub struct BuiltTls {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) certs: Arc<CertStore>,
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) client_auth: bool,
}

impl BuiltTls {
    /// The rustls server configuration.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }
}

impl TlsSettings {
    /// TLS 1.2 and 1.3 with these certificates.
    pub fn new(certificates: Vec<CertSpec>) -> Self {
        Self {
            certificates,
            ..Self::default()
        }
    }

    /// Sets the protocol versions, by name (see [`versions`](Self::versions)).
    pub fn with_versions<I, V>(mut self, versions: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        self.versions = versions.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the cipher list (see [`ciphers`](Self::ciphers)).
    pub fn with_ciphers(mut self, ciphers: impl Into<String>) -> Self {
        self.ciphers = Some(ciphers.into());
        self
    }

    /// Sets the key-exchange groups (see [`groups`](Self::groups)).
    pub fn with_groups<I, G>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = G>,
        G: Into<String>,
    {
        self.groups = Some(groups.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the DH parameter file (see [`dh_params`](Self::dh_params)).
    pub fn with_dh_params(mut self, path: impl Into<PathBuf>) -> Self {
        self.dh_params = Some(path.into());
        self
    }

    /// Sets client-certificate verification.
    pub fn with_client_auth(mut self, client_auth: ClientAuth) -> Self {
        self.client_auth = client_auth;
        self
    }

    /// Chooses the suite by the server's order (`true`) or the client's.
    pub fn with_prefer_server_ciphers(mut self, prefer: bool) -> Self {
        self.prefer_server_ciphers = prefer;
        self
    }

    /// Builds the rustls configuration with `provider` (never the process
    /// default), or every error found. Field names in the report start
    /// with `tls.`.
    pub fn build(
        &self,
        provider: Arc<CryptoProvider>,
    ) -> Result<(BuiltTls, TlsPolicyReport), PolicyError> {
        let mut warnings = Vec::new();
        let mut errors = Vec::new();

        let versions =
            versions::resolve("tls.versions", &self.versions, &mut warnings, &mut errors);
        let selection = ciphers::resolve(
            "tls.ciphers",
            self.ciphers.as_deref(),
            &versions,
            &provider,
            &mut warnings,
            &mut errors,
        );

        let kx_groups = groups::resolve(
            "tls.groups",
            self.groups.as_deref(),
            &provider,
            &mut warnings,
            &mut errors,
        );
        // The hybrids (and pure ML-KEM) exist only in TLS 1.3: a TLS 1.2
        // client would find no group in common.
        if versions.contains(&TlsVersion::Tls12)
            && !kx_groups.is_empty()
            && !kx_groups
                .iter()
                .any(|g| g.usable_for_version(rustls::ProtocolVersion::TLSv1_2))
        {
            warnings.push(Warning::new(
                "tls.groups",
                format!(
                    "{} exist only in TLS 1.3, so TLS 1.2 clients find no group in common; \
                     add X25519 or P-256 to serve them",
                    groups::names(&kx_groups)
                ),
            ));
        }

        // DH parameters: required by DHE in the list, and never used.
        match (&self.dh_params, selection.dhe.is_empty()) {
            (None, false) => errors.push(Problem::new(
                "tls.dh_params",
                format!(
                    "tls.ciphers lists DHE ({}) but no DH parameter file is set; \
                     set one (it is validated, though rustls offers no DHE) or drop DHE",
                    selection.dhe.join(", ")
                ),
            )),
            (Some(path), _) => match dh::load(path) {
                Ok(params) => warnings.push(Warning::new(
                    "tls.dh_params",
                    format!(
                        "{}: valid {}-bit group, unused: rustls offers no finite-field DHE; \
                         effective key exchange: ECDHE ({})",
                        path.display(),
                        params.bits,
                        groups::names(&kx_groups)
                    ),
                )),
                Err(e) => errors.push(Problem::new("tls.dh_params", e)),
            },
            (None, true) => {}
        }

        let certs = match CertSet::load("tls.certificates", &self.certificates, &provider) {
            Ok(set) => Some(set),
            Err(e) => {
                errors.push(Problem::new("tls.certificates", e));
                None
            }
        };

        // TLS 1.2 suites name the key type; say which of those listed cannot
        // be used.
        if let (Some(set), Some(_)) = (&certs, &self.ciphers) {
            let algs = set.algorithms();
            let has_rsa = algs.contains(&SignatureAlgorithm::RSA);
            let has_ec = algs
                .iter()
                .any(|a| matches!(a, SignatureAlgorithm::ECDSA | SignatureAlgorithm::ED25519));
            let unusable: Vec<String> = selection
                .suites
                .iter()
                .filter_map(|s| match s {
                    rustls::SupportedCipherSuite::Tls12(_) => {
                        let rsa_suite = format!("{:?}", s.suite()).contains("_RSA_");
                        let ok = if rsa_suite { has_rsa } else { has_ec };
                        (!ok).then(|| ciphers::name_of(s))
                    }
                    rustls::SupportedCipherSuite::Tls13(_) => None,
                })
                .collect();
            if !unusable.is_empty() {
                warnings.push(Warning::new(
                    "tls.ciphers",
                    format!(
                        "no certificate has the key type these TLS 1.2 suites need, so they are never negotiated: {}",
                        unusable.join(":")
                    ),
                ));
            }
        }

        let verifier = match &self.client_auth {
            ClientAuth::None => None,
            ClientAuth::Optional { roots } | ClientAuth::Required { roots } => {
                let optional = matches!(self.client_auth, ClientAuth::Optional { .. });
                match client_verifier(roots, optional, &provider) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        errors.push(Problem::new("tls.client_auth", e));
                        None
                    }
                }
            }
        };

        if !errors.is_empty() {
            return Err(PolicyError { errors, warnings });
        }
        let Some(certs) = certs else {
            return Err(PolicyError { errors, warnings });
        };

        let suites = selection.suites;
        let report_suites = suites.iter().map(ciphers::name_of).collect();
        let report_groups = kx_groups
            .iter()
            .map(|g| groups::name_of(g.name()))
            .collect();
        let restricted = Arc::new(CryptoProvider {
            cipher_suites: suites,
            kx_groups,
            ..(*provider).clone()
        });
        let rustls_versions: Vec<&'static rustls::SupportedProtocolVersion> = versions
            .iter()
            .filter_map(|v| versions::rustls_version(*v))
            .collect();
        let builder = ServerConfig::builder_with_provider(restricted)
            .with_protocol_versions(&rustls_versions)
            .map_err(|e| PolicyError::one("tls", format!("rustls refused the policy: {e}")))?;
        let builder = match verifier {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        };
        let labels = certs.labels();
        let store = Arc::new(CertStore::new(certs));
        let mut config = builder.with_cert_resolver(store.clone());
        config.ignore_client_order = self.prefer_server_ciphers;
        let report = TlsPolicyReport {
            warnings,
            versions: versions.clone(),
            suites: report_suites,
            groups: report_groups,
            certificates: labels,
        };
        Ok((
            BuiltTls {
                config: Arc::new(config),
                certs: store,
                provider,
                client_auth: !matches!(self.client_auth, ClientAuth::None),
            },
            report,
        ))
    }
}

fn client_verifier(
    roots: &PemSource,
    optional: bool,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let pem = match roots {
        PemSource::File(p) => {
            std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?
        }
        PemSource::Inline(s) => s.as_bytes().to_vec(),
    };
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("roots {roots}: {e}"))?;
        store.add(cert).map_err(|e| format!("roots {roots}: {e}"))?;
    }
    if store.is_empty() {
        return Err(format!("roots {roots}: no CERTIFICATE block"));
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider.clone());
    let builder = if optional {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    builder.build().map_err(|e| format!("roots {roots}: {e}"))
}

/// Reads and validates a DH parameter file alone (PEM `DH PARAMETERS`,
/// prime of at least 2048 bits); returns the prime's size in bits.
pub fn validate_dh_params(path: &std::path::Path) -> Result<u64, String> {
    dh::load(path).map(|p| p.bits)
}

/// Loads `specs` and swaps them into `tls` at once; on any failure the old
/// set keeps serving. Returns the new set's labels.
pub(crate) fn reload(tls: &BuiltTls, specs: &[CertSpec]) -> Result<Vec<String>, String> {
    let set = CertSet::load("tls.certificates", specs, &tls.provider)?;
    let labels = set.labels();
    tls.certs.swap(set);
    Ok(labels)
}
