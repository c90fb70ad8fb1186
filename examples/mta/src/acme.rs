//! Certificates obtained and renewed over ACME (RFC 8555), for
//! `certificate = "acme"` in a `[tls.NAME]` table.
//!
//! Challenge: **http-01** (RFC 8555 §8.3). The CA proves control of a
//! domain by connecting to it, and port 25 is no challenge port: http-01
//! uses port 80, tls-alpn-01 port 443, dns-01 a DNS API. An MX host
//! usually runs no web server, so port 80 is free; the responder here
//! binds it only while an order is being validated and answers nothing but
//! `/.well-known/acme-challenge/TOKEN`. (tls-alpn-01 would need port 443
//! and a listener that answers the `acme-tls/1` ALPN with a special
//! certificate; dns-01 would need a DNS provider's API. Neither is
//! implemented.)
//!
//! Storage, under `DATA_DIR/acme/NAME/` (directories 0700, files 0600):
//! `account.json` (the account key and URL), `key.pem` and `cert.pem`
//! (what the listeners serve). Until the first certificate is obtained a
//! self-signed placeholder is there, marked by the file `placeholder`, so
//! the listeners can start.
//!
//! Renewal: when a third of the certificate's lifetime is left (30 days of
//! a 90-day certificate), a new key and certificate are obtained, written
//! (key first, each by rename) and swapped into every listener of the
//! table with the listener's atomic reload: handshakes in flight finish
//! with the old certificate, new ones get the new one, no connection is
//! dropped. A failure is logged with its reason and retried with
//! exponential backoff (`retry`, doubling, at most six hours); the current
//! certificate keeps serving.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use postern_listener::Validity;
use postern_queue::write_atomically;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;

use crate::config::{AcmeSpec, CertSource, MtaConfig};

/// The longest wait between two attempts after failures.
pub const MAX_RETRY: Duration = Duration::from_secs(6 * 3600);

/// The files of one `[tls.NAME]` table's ACME certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeFiles {
    /// `DATA_DIR/acme/NAME`.
    pub dir: PathBuf,
    /// The account's credentials (its private key and URL), JSON.
    pub account: PathBuf,
    /// The certificate chain served, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// Present while `cert` is the self-signed placeholder.
    pub placeholder: PathBuf,
}

impl AcmeFiles {
    /// The files of `[tls.table]` under `config`'s data directory.
    pub fn of(config: &MtaConfig, table: &str) -> Self {
        let dir = config.data_dir.join("acme").join(table);
        Self {
            account: dir.join("account.json"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            placeholder: dir.join("placeholder"),
            dir,
        }
    }
}

/// Why obtaining a certificate failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    /// The ACME server or the HTTP exchange with it failed.
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    /// The CA could not validate a domain; `detail` is its problem
    /// document (e.g. the connection it could not make).
    #[error("the CA could not validate {domain} over http-01: {detail}")]
    Challenge {
        /// The domain.
        domain: String,
        /// What the CA says.
        detail: String,
    },
    /// The CA offered no http-01 challenge for a domain.
    #[error("the CA offers no http-01 challenge for {0}")]
    NoHttp01(String),
    /// The order ended in another state than ready or valid.
    #[error("the order ended {0}")]
    Order(String),
    /// The http-01 responder could not listen.
    #[error("the http-01 responder cannot listen on {addr}: {source}")]
    Bind {
        /// The configured `challenge_address`.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// Reading or writing the stored files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The stored account could not be read.
    #[error("{path}: {source}")]
    Account {
        /// The file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
    /// The issued certificate's dates could not be read.
    #[error("the issued certificate: {0}")]
    Validity(#[from] postern_listener::ValidityError),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> AcmeError + '_ {
    move |source| AcmeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates `dir` (and parents) with mode 0700.
fn private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    fs::create_dir_all(dir)
}

/// The `[tls.NAME]` tables with `certificate = "acme"`.
pub fn tables(config: &MtaConfig) -> Vec<(String, AcmeSpec)> {
    let mut out: Vec<(String, AcmeSpec)> = Vec::new();
    for l in &config.listeners {
        if let Some(t) = &l.tls
            && let CertSource::Acme(spec) = &t.certificate
            && !out.iter().any(|(n, _)| *n == t.name)
        {
            out.push((t.name.clone(), spec.clone()));
        }
    }
    out
}

/// Before the listeners start: the directories, and a self-signed
/// placeholder for each table that has no certificate yet (replaced by
/// the first issuance, moments later when the CA is reachable).
pub fn prepare(config: &MtaConfig) -> io::Result<()> {
    for (name, spec) in tables(config) {
        let files = AcmeFiles::of(config, &name);
        private_dir(&files.dir)?;
        if files.cert.exists() && files.key.exists() {
            continue;
        }
        let (cert, key) = crate::tls::generate_self_signed(&spec.domains)?;
        write_atomically(
            &files.placeholder,
            b"self-signed until the first ACME issuance\n",
            0o600,
        )?;
        write_atomically(&files.key, key.as_bytes(), 0o600)?;
        write_atomically(&files.cert, cert.as_bytes(), 0o600)?;
        tracing::info!(tls = %name, cert = %files.cert.display(), "ACME: a self-signed placeholder serves until the first certificate is issued");
    }
    Ok(())
}

/// When a certificate is renewed: a third of its lifetime before it
/// expires.
pub fn renew_at(validity: &Validity) -> SystemTime {
    validity.not_after - validity.lifetime() / 3
}

/// What is on disk for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Nothing yet (before the first start).
    Missing,
    /// The self-signed placeholder: an order is due.
    Placeholder,
    /// An issued certificate.
    Issued {
        /// Its dates.
        validity: Validity,
        /// When it is renewed.
        renew_at: SystemTime,
    },
    /// The certificate cannot be read (an order is due).
    Unreadable(String),
}

/// The state of `[tls.table]`'s certificate.
pub fn state(files: &AcmeFiles) -> State {
    if files.placeholder.exists() {
        return State::Placeholder;
    }
    match fs::read(&files.cert) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => State::Missing,
        Err(e) => State::Unreadable(e.to_string()),
        Ok(pem) => match Validity::from_pem(&pem) {
            Ok(validity) => State::Issued {
                renew_at: renew_at(&validity),
                validity,
            },
            Err(e) => State::Unreadable(e.to_string()),
        },
    }
}

/// Serves http-01 key authorizations until dropped.
struct Responder {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Tokens = Arc<Mutex<HashMap<String, String>>>;

impl Responder {
    async fn start(addr: SocketAddr, tokens: Tokens) -> Result<Self, AcmeError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AcmeError::Bind { addr, source })?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let tokens = tokens.clone();
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(10), answer(stream, tokens)).await;
                });
            }
        });
        Ok(Self { task })
    }
}

/// One HTTP/1.x request: the key authorization for a known token, 404 for
/// anything else. The request head is bounded to 8 KiB.
async fn answer(mut stream: tokio::net::TcpStream, tokens: Tokens) -> io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > 8192 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_ascii_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let body = path
        .strip_prefix("/.well-known/acme-challenge/")
        .filter(|_| method == "GET")
        .and_then(|token| tokens.lock().ok()?.get(token).cloned());
    let response = match body {
        Some(b) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
            b.len()
        ),
        None => {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
        }
    };
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

fn builder(spec: &AcmeSpec) -> Result<instant_acme::AccountBuilder, instant_acme::Error> {
    match &spec.ca_file {
        Some(path) => Account::builder_with_root(path),
        None => Account::builder(),
    }
}

/// The stored account, or a new one (stored at once).
async fn account(spec: &AcmeSpec, files: &AcmeFiles, fresh: bool) -> Result<Account, AcmeError> {
    if !fresh && let Ok(text) = fs::read(&files.account) {
        let credentials: AccountCredentials =
            serde_json::from_slice(&text).map_err(|source| AcmeError::Account {
                path: files.account.clone(),
                source,
            })?;
        return Ok(builder(spec)?.from_credentials(credentials).await?);
    }
    let contact: Vec<&str> = spec.contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder(spec)?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            spec.directory.clone(),
            None,
        )
        .await?;
    let json = serde_json::to_vec_pretty(&credentials).map_err(|source| AcmeError::Account {
        path: files.account.clone(),
        source,
    })?;
    write_atomically(&files.account, &json, 0o600).map_err(io_at(&files.account))?;
    tracing::info!(directory = %spec.directory, account = %account.id(), "ACME account created");
    Ok(account)
}

fn account_unknown(e: &instant_acme::Error) -> bool {
    matches!(e, instant_acme::Error::Api(p)
        if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist"))
}

/// One order: validates every domain over http-01, then writes the new key
/// and certificate. The files are untouched on any failure.
pub async fn obtain(spec: &AcmeSpec, files: &AcmeFiles) -> Result<Validity, AcmeError> {
    private_dir(&files.dir).map_err(io_at(&files.dir))?;
    let identifiers: Vec<Identifier> = spec
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut acct = account(spec, files, false).await?;
    let mut order = match acct.new_order(&NewOrder::new(&identifiers)).await {
        // The CA forgot the account (a test CA restarted, or it was
        // deactivated): a new one.
        Err(e) if account_unknown(&e) => {
            tracing::warn!(directory = %spec.directory, "ACME account unknown to the CA; creating a new one");
            acct = account(spec, files, true).await?;
            acct.new_order(&NewOrder::new(&identifiers)).await?
        }
        other => other?,
    };

    let tokens: Tokens = Arc::default();
    let _responder = Responder::start(spec.challenge_address, tokens.clone()).await?;
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        let domain = authz.identifier().to_string();
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .ok_or(AcmeError::NoHttp01(domain))?;
        let token = challenge.token.clone();
        let value = challenge.key_authorization().as_str().to_owned();
        if let Ok(mut t) = tokens.lock() {
            t.insert(token, value);
        }
        challenge.set_ready().await?;
    }

    let retry = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(Duration::from_secs(90));
    let status = match order.poll_ready(&retry).await {
        Ok(status) => status,
        // An invalid order comes back as the CA's problem document: name
        // the domain and the challenge's own error where the CA has one.
        Err(instant_acme::Error::Api(problem)) => {
            return Err(challenge_error(&mut order)
                .await
                .unwrap_or(AcmeError::Acme(instant_acme::Error::Api(problem))));
        }
        Err(e) => return Err(e.into()),
    };
    if status != OrderStatus::Ready {
        return Err(challenge_error(&mut order)
            .await
            .unwrap_or_else(|| AcmeError::Order(format!("{status:?}"))));
    }
    let key = order.finalize().await?;
    let chain = order.poll_certificate(&retry).await?;
    let validity = Validity::from_pem(chain.as_bytes())?;
    // Key first: until the certificate is renamed, a reload loads the old
    // pair or fails on a mismatch and keeps serving the old one.
    write_atomically(&files.key, key.as_bytes(), 0o600).map_err(io_at(&files.key))?;
    write_atomically(&files.cert, chain.as_bytes(), 0o600).map_err(io_at(&files.cert))?;
    match fs::remove_file(&files.placeholder) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(io_at(&files.placeholder)(e));
        }
        _ => {}
    }
    Ok(validity)
}

/// The CA's reason for the first failed authorization.
async fn challenge_error(order: &mut instant_acme::Order) -> Option<AcmeError> {
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        if authz.status == AuthorizationStatus::Valid {
            continue;
        }
        let domain = authz.identifier().to_string();
        let detail = authz
            .challenges
            .iter()
            .find_map(|c| c.error.as_ref().map(ToString::to_string))
            .unwrap_or_else(|| format!("authorization {:?}", authz.status));
        return Some(AcmeError::Challenge { domain, detail });
    }
    None
}

/// Something that swaps certificates into listeners (the listener
/// server; a test's recorder).
pub trait Reload: Send + Sync + 'static {
    /// Re-reads the certificate files of listener `name`.
    fn reload(&self, name: &str) -> Result<(), String>;
}

impl Reload for postern_listener::Server {
    fn reload(&self, name: &str) -> Result<(), String> {
        self.reload_certificates(name, None)
            .map_err(|e| e.to_string())
    }
}

/// Runs issuance and renewal for every ACME table until `shutdown`.
pub fn spawn<R: Reload + Clone>(
    config: Arc<MtaConfig>,
    reload: R,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    tables(&config)
        .into_iter()
        .map(|(name, spec)| {
            let listeners: Vec<String> = config
                .listeners
                .iter()
                .filter(|l| l.tls.as_ref().is_some_and(|t| t.name == name))
                .map(|l| l.name.clone())
                .collect();
            let files = AcmeFiles::of(&config, &name);
            tokio::spawn(renew_loop(
                name,
                spec,
                files,
                listeners,
                reload.clone(),
                shutdown.clone(),
            ))
        })
        .collect()
}

/// Sleeps `d`; false when shut down first.
async fn sleep(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        _ = shutdown.changed() => false,
    }
}

async fn renew_loop<R: Reload>(
    table: String,
    spec: AcmeSpec,
    files: AcmeFiles,
    listeners: Vec<String>,
    reload: R,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = spec.retry;
    loop {
        let wait = match state(&files) {
            State::Issued { renew_at, .. } => renew_at
                .duration_since(SystemTime::now())
                .unwrap_or_default(),
            _ => Duration::ZERO,
        };
        if !wait.is_zero() {
            tracing::info!(tls = %table, renew_at = %postern_listener::utc(SystemTime::now() + wait), "ACME: next renewal");
        }
        if !sleep(wait, &mut shutdown).await {
            return;
        }
        match obtain(&spec, &files).await {
            Ok(validity) => {
                backoff = spec.retry;
                tracing::info!(
                    tls = %table,
                    domains = %spec.domains.join(","),
                    not_after = %postern_listener::utc(validity.not_after),
                    renew_at = %postern_listener::utc(renew_at(&validity)),
                    "ACME certificate issued"
                );
                for l in &listeners {
                    if let Err(e) = reload.reload(l) {
                        tracing::error!(tls = %table, listener = %l, error = %e, "the new ACME certificate could not be loaded; the previous one keeps serving");
                    }
                }
            }
            Err(e) => {
                tracing::error!(
                    tls = %table,
                    error = %e,
                    retry_in_secs = backoff.as_secs(),
                    "ACME order failed; the current certificate keeps serving"
                );
                if !sleep(backoff, &mut shutdown).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_RETRY);
            }
        }
    }
}
