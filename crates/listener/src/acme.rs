//! Certificates obtained and renewed over ACME (RFC 8555), behind the
//! `acme` feature: what a listener needs to serve a CA's certificate
//! without an operator's certbot.
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
//! Storage, in one directory per certificate ([`AcmeFiles`]; directories
//! 0700, files 0600): `account.json` (the account key and URL), `key.pem`
//! and `cert.pem` (what the listeners serve, e.g. through
//! [`CertSpec::files`](crate::CertSpec::files)). Until the first
//! certificate is obtained a self-signed placeholder can be put there
//! ([`AcmeFiles::prepare`]), marked by the file `placeholder`, so the
//! listeners can start.
//!
//! Renewal ([`Renewer`]): when a third of the certificate's lifetime is
//! left (30 days of a 90-day certificate), a new key and certificate are
//! obtained, written (key first, each by rename) and swapped into every
//! listener of the certificate with [`Server::reload_certificates`]:
//! handshakes in flight finish with the old certificate, new ones get the
//! new one, no connection is dropped. A failure is logged with its reason
//! and retried with exponential backoff ([`AcmeConfig::retry`], doubling,
//! at most [`MAX_RETRY`]); the current certificate keeps serving.

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
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;

use crate::{ReloadError, Server, Validity, ValidityError, utc};

/// The longest wait between two attempts after failures.
pub const MAX_RETRY: Duration = Duration::from_secs(6 * 3600);

/// Where and for what to obtain a certificate.
///
/// Build it with [`AcmeConfig::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcmeConfig {
    /// The names the certificate is for (the MX host name(s)).
    pub domains: Vec<String>,
    /// Account contacts, e.g. `mailto:postmaster@example.org`.
    pub contact: Vec<String>,
    /// The CA's directory URL.
    pub directory: String,
    /// PEM trust anchors for the directory's HTTPS (a test CA such as
    /// pebble's); `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Where the http-01 responder listens while an order is validated
    /// (the CA connects to port 80 of each domain).
    pub challenge_address: SocketAddr,
    /// The first delay after a failure; doubled after each, up to
    /// [`MAX_RETRY`].
    pub retry: Duration,
}

impl AcmeConfig {
    /// A certificate for `domains` from the CA at `directory`, with no
    /// contact, the system's roots, the responder on `0.0.0.0:80` and a
    /// first retry after a minute.
    pub fn new(domains: Vec<String>, directory: impl Into<String>) -> Self {
        Self {
            domains,
            contact: Vec::new(),
            directory: directory.into(),
            ca_file: None,
            challenge_address: SocketAddr::from(([0, 0, 0, 0], 80)),
            retry: Duration::from_secs(60),
        }
    }

    /// A certificate from a configuration table's `domains` and
    /// `directory`, checked: at least one name, none blank, and an
    /// `https://` directory (RFC 8555 §6.1). `Err` names the field and
    /// says what is wrong.
    pub fn checked(
        domains: Option<Vec<String>>,
        directory: Option<String>,
    ) -> Result<Self, (&'static str, String)> {
        let domains = domains.unwrap_or_default();
        if domains.is_empty() || domains.iter().any(|d| d.trim().is_empty()) {
            let m = "an ACME certificate needs its names, e.g. domains = [\"mx.example.org\"]";
            return Err(("domains", m.into()));
        }
        let Some(directory) = directory else {
            let m = "missing: the CA's ACME directory URL, e.g. \"https://acme-v02.api.letsencrypt.org/directory\"";
            return Err(("directory", m.into()));
        };
        if !directory.starts_with("https://") {
            let m = format!("{directory:?}: ACME directories are https:// URLs (RFC 8555 §6.1)");
            return Err(("directory", m));
        }
        Ok(Self::new(domains, directory))
    }

    /// Account contacts (`mailto:` URLs).
    #[must_use]
    pub fn with_contact(mut self, contact: Vec<String>) -> Self {
        self.contact = contact;
        self
    }

    /// Trusts the PEM roots in `ca_file` for the directory's HTTPS.
    #[must_use]
    pub fn with_ca_file(mut self, ca_file: Option<PathBuf>) -> Self {
        self.ca_file = ca_file;
        self
    }

    /// The http-01 responder listens on `addr`.
    #[must_use]
    pub fn with_challenge_address(mut self, addr: SocketAddr) -> Self {
        self.challenge_address = addr;
        self
    }

    /// The first delay after a failure.
    #[must_use]
    pub fn with_retry(mut self, retry: Duration) -> Self {
        self.retry = retry;
        self
    }
}

/// The files of one ACME certificate, in one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcmeFiles {
    /// The directory (0700).
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

/// What is on disk for one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcmeState {
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
    /// The certificate cannot be read (an order is due); why.
    Unreadable(String),
}

impl AcmeState {
    /// What a configuration check says about this state of `files`, with
    /// the certificate's expiry once issued.
    pub fn notes(&self, files: &AcmeFiles, now: SystemTime) -> Vec<crate::CertNote> {
        use crate::CertNote::{Info, Warning};
        let cert = files.cert.display();
        match self {
            AcmeState::Missing => vec![Info(
                "state: not obtained yet; requested at start (a self-signed placeholder serves until then)".to_owned(),
            )],
            AcmeState::Placeholder => vec![Warning(format!(
                "state: {cert} is the self-signed placeholder: the first issuance has not succeeded yet (see the log)"
            ))],
            AcmeState::Unreadable(e) => vec![Warning(format!(
                "state: {cert}: {e}; a new certificate is requested at start"
            ))],
            AcmeState::Issued { renew_at, .. } => {
                let mut notes = vec![Info(format!(
                    "state: issued; renewed from {} (a third of its lifetime before expiry)",
                    crate::utc(*renew_at)
                ))];
                notes.extend(crate::expiry_notes("certificate", &files.cert, now));
                notes
            }
        }
    }
}

impl AcmeFiles {
    /// The files in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self {
            account: dir.join("account.json"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            placeholder: dir.join("placeholder"),
            dir,
        }
    }

    /// Before the listeners start: the directory, and when there is no
    /// certificate yet, the placeholder `make()` returns (certificate and
    /// key PEM), replaced by the first issuance. True when one was
    /// written.
    pub fn prepare(&self, make: impl FnOnce() -> io::Result<(String, String)>) -> io::Result<bool> {
        private_dir(&self.dir)?;
        if self.cert.exists() && self.key.exists() {
            return Ok(false);
        }
        let (cert, key) = make()?;
        write_private(
            &self.placeholder,
            b"self-signed until the first ACME issuance\n",
        )?;
        write_private(&self.key, key.as_bytes())?;
        write_private(&self.cert, cert.as_bytes())?;
        Ok(true)
    }

    /// What is there now.
    pub fn state(&self) -> AcmeState {
        if self.placeholder.exists() {
            return AcmeState::Placeholder;
        }
        match fs::read(&self.cert) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => AcmeState::Missing,
            Err(e) => AcmeState::Unreadable(e.to_string()),
            Ok(pem) => match Validity::from_pem(&pem) {
                Ok(validity) => AcmeState::Issued {
                    renew_at: renew_at(&validity),
                    validity,
                },
                Err(e) => AcmeState::Unreadable(e.to_string()),
            },
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
        /// The configured challenge address.
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
    Validity(#[from] ValidityError),
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

/// Writes `text` to `path` with mode 0600, by rename and durably, so a
/// reader (a reload, a restart after a crash) sees the old file or the new
/// one, never a part.
fn write_private(path: &Path, text: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        io::Write::write_all(&mut f, text)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) => fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// When a certificate is renewed: a third of its lifetime before it
/// expires.
pub fn renew_at(validity: &Validity) -> SystemTime {
    validity.not_after - validity.lifetime() / 3
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
async fn answer<S>(mut stream: S, tokens: Tokens) -> io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
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

fn builder(config: &AcmeConfig) -> Result<instant_acme::AccountBuilder, instant_acme::Error> {
    match &config.ca_file {
        Some(path) => Account::builder_with_root(path),
        None => Account::builder(),
    }
}

/// The stored account, or a new one (stored at once).
async fn account(
    config: &AcmeConfig,
    files: &AcmeFiles,
    fresh: bool,
) -> Result<Account, AcmeError> {
    if !fresh && let Ok(text) = fs::read(&files.account) {
        let credentials: AccountCredentials =
            serde_json::from_slice(&text).map_err(|source| AcmeError::Account {
                path: files.account.clone(),
                source,
            })?;
        return Ok(builder(config)?.from_credentials(credentials).await?);
    }
    let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder(config)?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            config.directory.clone(),
            None,
        )
        .await?;
    let json = serde_json::to_vec_pretty(&credentials).map_err(|source| AcmeError::Account {
        path: files.account.clone(),
        source,
    })?;
    write_private(&files.account, &json).map_err(io_at(&files.account))?;
    tracing::info!(directory = %config.directory, account = %account.id(), "ACME account created");
    Ok(account)
}

fn account_unknown(e: &instant_acme::Error) -> bool {
    matches!(e, instant_acme::Error::Api(p)
        if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist"))
}

/// One order: validates every domain over http-01, then writes the new key
/// and certificate into `files` and removes the placeholder mark. The files
/// are untouched on any failure.
pub async fn obtain(config: &AcmeConfig, files: &AcmeFiles) -> Result<Validity, AcmeError> {
    private_dir(&files.dir).map_err(io_at(&files.dir))?;
    let identifiers: Vec<Identifier> = config
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut acct = account(config, files, false).await?;
    let mut order = match acct.new_order(&NewOrder::new(&identifiers)).await {
        // The CA forgot the account (a test CA restarted, or it was
        // deactivated): a new one.
        Err(e) if account_unknown(&e) => {
            tracing::warn!(directory = %config.directory, "ACME account unknown to the CA; creating a new one");
            acct = account(config, files, true).await?;
            acct.new_order(&NewOrder::new(&identifiers)).await?
        }
        other => other?,
    };

    let tokens: Tokens = Arc::default();
    let _responder = Responder::start(config.challenge_address, tokens.clone()).await?;
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
    write_private(&files.key, key.as_bytes()).map_err(io_at(&files.key))?;
    write_private(&files.cert, chain.as_bytes()).map_err(io_at(&files.cert))?;
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

/// Something that swaps certificates into listeners: the [`Server`], or a
/// test's recorder.
pub trait Reload: Send + Sync + 'static {
    /// Re-reads the certificate files of listener `name`.
    fn reload(&self, name: &str) -> Result<(), ReloadError>;
}

impl Reload for Server {
    fn reload(&self, name: &str) -> Result<(), ReloadError> {
        self.reload_certificates(name, None)
    }
}

/// Issuance and renewal of one certificate, swapped into its listeners.
#[derive(Debug, Clone)]
pub struct Renewer {
    name: String,
    config: AcmeConfig,
    files: AcmeFiles,
    listeners: Vec<String>,
}

impl Renewer {
    /// The certificate called `name` (in logs) per `config`, stored in
    /// `files`, reloaded into the listeners named `listeners`.
    pub fn new(
        name: impl Into<String>,
        config: AcmeConfig,
        files: AcmeFiles,
        listeners: Vec<String>,
    ) -> Self {
        Self {
            name: name.into(),
            config,
            files,
            listeners,
        }
    }

    /// Runs until `shutdown` turns true: an order at once when there is no
    /// issued certificate, then one a third of each lifetime before
    /// expiry; failures are logged and retried with doubling backoff.
    pub async fn run<R: Reload>(self, reload: R, mut shutdown: watch::Receiver<bool>) {
        let Self {
            name,
            config,
            files,
            listeners,
        } = self;
        let mut backoff = config.retry;
        loop {
            let wait = match files.state() {
                AcmeState::Issued { renew_at, .. } => renew_at
                    .duration_since(SystemTime::now())
                    .unwrap_or_default(),
                _ => Duration::ZERO,
            };
            if !wait.is_zero() {
                tracing::info!(tls = %name, renew_at = %utc(SystemTime::now() + wait), "ACME: next renewal");
            }
            if !sleep(wait, &mut shutdown).await {
                return;
            }
            match obtain(&config, &files).await {
                Ok(validity) => {
                    backoff = config.retry;
                    tracing::info!(
                        tls = %name,
                        domains = %config.domains.join(","),
                        not_after = %utc(validity.not_after),
                        renew_at = %utc(renew_at(&validity)),
                        "ACME certificate issued"
                    );
                    for l in &listeners {
                        if let Err(e) = reload.reload(l) {
                            tracing::error!(tls = %name, listener = %l, error = %e, "the new ACME certificate could not be loaded; the previous one keeps serving");
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(
                        tls = %name,
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn ask(request: &[u8], tokens: &Tokens) -> String {
        let (mut client, server) = tokio::io::duplex(16 * 1024);
        let task = tokio::spawn(answer(server, tokens.clone()));
        client.write_all(request).await.unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        task.await.unwrap().unwrap();
        out
    }

    #[tokio::test]
    async fn the_responder_answers_known_tokens_only() {
        let tokens: Tokens = Arc::default();
        tokens
            .lock()
            .unwrap()
            .insert("tok".into(), "tok.thumbprint".into());
        let ok = ask(
            b"GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: mx\r\n\r\n",
            &tokens,
        )
        .await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\ntok.thumbprint"), "{ok}");
        for bad in [
            &b"GET /.well-known/acme-challenge/other HTTP/1.1\r\n\r\n"[..],
            b"POST /.well-known/acme-challenge/tok HTTP/1.1\r\n\r\n",
            b"GET /tok HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
        ] {
            let no = ask(bad, &tokens).await;
            assert!(no.starts_with("HTTP/1.1 404 "), "{no}");
        }
        // An endless head is cut at 8 KiB without an answer.
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(answer(server, tokens.clone()));
        client.write_all(&[b'A'; 9000]).await.unwrap();
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        task.await.unwrap().unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn renewal_is_due_a_third_of_the_lifetime_before_expiry() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let v = Validity {
            not_before: start,
            not_after: start + Duration::from_secs(90 * 86_400),
        };
        assert_eq!(renew_at(&v), start + Duration::from_secs(60 * 86_400));
    }

    #[test]
    fn state_and_placeholder_follow_the_files() {
        let dir = std::env::temp_dir().join(format!("postern-acme-state-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let files = AcmeFiles::in_dir(dir.join("default"));
        assert_eq!(files.state(), AcmeState::Missing);
        let wrote = files
            .prepare(|| Ok(("not pem".to_owned(), "key".to_owned())))
            .unwrap();
        assert!(wrote);
        assert_eq!(files.state(), AcmeState::Placeholder);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&files.dir), 0o700);
            for f in [&files.cert, &files.key, &files.placeholder] {
                assert_eq!(mode(f), 0o600, "{}", f.display());
            }
        }
        // Present files are kept.
        assert!(!files.prepare(|| unreachable!()).unwrap());
        fs::remove_file(&files.placeholder).unwrap();
        assert!(matches!(files.state(), AcmeState::Unreadable(_)));
        let _ = fs::remove_dir_all(&dir);
    }
}
