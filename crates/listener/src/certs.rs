//! Certificates: loading PEM chains and keys, SNI selection with a
//! default, and the atomic swap behind certificate reload.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Where PEM text comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum PemSource {
    /// A file, read at build time and again at each reload.
    File(PathBuf),
    /// PEM text held in memory.
    Inline(String),
}

impl fmt::Debug for PemSource {
    // Inline PEM may be a private key: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemSource::File(p) => write!(f, "File({})", p.display()),
            PemSource::Inline(s) => write!(f, "Inline({} octets)", s.len()),
        }
    }
}

impl fmt::Display for PemSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemSource::File(p) => write!(f, "{}", p.display()),
            PemSource::Inline(_) => f.write_str("<inline PEM>"),
        }
    }
}

impl PemSource {
    fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            PemSource::File(p) => {
                std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
            }
            PemSource::Inline(s) => Ok(s.as_bytes().to_vec()),
        }
    }
}

/// One certificate chain and its key, and the server names it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// Names (SNI) this certificate serves: exact host names, or
    /// `*.example.org` for one label. Matching ignores case and a trailing
    /// dot.
    pub names: Vec<String>,
    /// The PEM chain, end-entity certificate first.
    pub chain: PemSource,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PemSource,
    /// Serve this certificate to clients that send no SNI or an unknown
    /// name. When no certificate is marked, the first one is the default.
    pub default: bool,
}

impl CertSpec {
    /// A certificate from files.
    pub fn files(names: &[&str], chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            chain: PemSource::File(chain.into()),
            key: PemSource::File(key.into()),
            default: false,
        }
    }

    /// A certificate from PEM text.
    pub fn pem(names: &[&str], chain: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            chain: PemSource::Inline(chain.into()),
            key: PemSource::Inline(key.into()),
            default: false,
        }
    }

    /// Marks this certificate as the default.
    pub fn as_default(mut self) -> Self {
        self.default = true;
        self
    }

    /// The validity of the chain's end-entity certificate (read from its
    /// source now), for expiry warnings and renewal.
    pub fn validity(&self) -> Result<crate::Validity, String> {
        let pem = self.chain.read()?;
        crate::Validity::from_pem(&pem).map_err(|e| format!("chain {}: {e}", self.chain))
    }

    /// A short label for reports: the first name, or the chain's source.
    pub(crate) fn label(&self) -> String {
        self.names
            .first()
            .cloned()
            .unwrap_or_else(|| self.chain.to_string())
    }
}

/// A loaded certificate with its names.
#[derive(Debug)]
struct Entry {
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

/// The certificates of a listener, as one immutable set.
#[derive(Debug)]
pub(crate) struct CertSet {
    entries: Vec<Entry>,
    default: usize,
}

impl CertSet {
    /// Loads every certificate; the first failure names the certificate
    /// (by index and label) and the reason.
    pub(crate) fn load(
        field: &str,
        specs: &[CertSpec],
        provider: &CryptoProvider,
    ) -> Result<Self, String> {
        if specs.is_empty() {
            return Err(format!("{field}: no certificate configured"));
        }
        let defaults = specs.iter().filter(|s| s.default).count();
        if defaults > 1 {
            return Err(format!(
                "{field}: {defaults} certificates are marked default; mark one"
            ));
        }
        let mut entries = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let at = format!("{field}[{i}] ({})", spec.label());
            let key = load_one(spec, provider).map_err(|e| format!("{at}: {e}"))?;
            let names = spec.names.iter().map(|n| normalize(n)).collect::<Vec<_>>();
            if let Some(bad) = names.iter().find(|n| n.is_empty()) {
                return Err(format!("{at}: empty server name {bad:?}"));
            }
            entries.push(Entry { names, key });
        }
        let default = specs.iter().position(|s| s.default).unwrap_or(0);
        Ok(Self { entries, default })
    }

    fn select(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        if let Some(sni) = sni {
            let sni = normalize(sni);
            if let Some(e) = self.entries.iter().find(|e| e.names.contains(&sni)) {
                return &e.key;
            }
            if let Some((_, parent)) = sni.split_once('.') {
                let wildcard = format!("*.{parent}");
                if let Some(e) = self.entries.iter().find(|e| e.names.contains(&wildcard)) {
                    return &e.key;
                }
            }
        }
        &self.entries[self.default].key
    }

    /// Labels for reports, default first.
    pub(crate) fn labels(&self) -> Vec<String> {
        let mut out = Vec::new();
        let label = |e: &Entry| {
            e.names
                .first()
                .cloned()
                .unwrap_or_else(|| "<unnamed>".to_owned())
        };
        out.push(format!("{} (default)", label(&self.entries[self.default])));
        for (i, e) in self.entries.iter().enumerate() {
            if i != self.default {
                out.push(label(e));
            }
        }
        out
    }

    /// Key algorithms present (for checking suites against keys).
    pub(crate) fn algorithms(&self) -> Vec<rustls::SignatureAlgorithm> {
        self.entries.iter().map(|e| e.key.key.algorithm()).collect()
    }
}

fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn load_one(spec: &CertSpec, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, String> {
    let chain_pem = spec.chain.read()?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("chain {}: {e}", spec.chain))?;
    if chain.is_empty() {
        return Err(format!("chain {}: no CERTIFICATE block", spec.chain));
    }
    let key_pem = spec.key.read()?;
    let key =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| format!("key {}: {e}", spec.key))?;
    let certified = CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| format!("key {} does not fit chain {}: {e}", spec.key, spec.chain))?;
    Ok(Arc::new(certified))
}

/// The reloadable certificate set of a listener: rustls asks it for a
/// certificate on every handshake; reload swaps the whole set at once.
#[derive(Debug)]
pub(crate) struct CertStore {
    current: RwLock<Arc<CertSet>>,
}

impl CertStore {
    pub(crate) fn new(set: CertSet) -> Self {
        Self {
            current: RwLock::new(Arc::new(set)),
        }
    }

    pub(crate) fn current(&self) -> Arc<CertSet> {
        // A poisoned lock still holds a complete set (the swap is one
        // assignment), so it is used as is.
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub(crate) fn swap(&self, set: CertSet) {
        let set = Arc::new(set);
        match self.current.write() {
            Ok(mut g) => *g = set,
            Err(p) => *p.into_inner() = set,
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().select(hello.server_name()).clone())
    }
}
