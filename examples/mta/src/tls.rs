//! Certificates and listener wiring: the self-signed certificate of the
//! default, `[tls.NAME]` → `postern_listener::TlsSettings`, and the session
//! policy of each listener (AUTH allowed up to what the session can run; the
//! rules narrow it per connection, see `crate::server`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postern_listener::{CertSpec, ConnLimits, ListenerConfig, TlsSettings};
use postern_rules::{Facts, Stage};

use crate::config::{CertSource, Config, ListenerSpec, TlsSpec};

/// The self-signed certificate files in `DATA_DIR/tls/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfSigned {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// Generates a self-signed certificate for `names` into `dir` unless one
/// is already there (first start). The key file is mode 0600.
pub fn ensure_self_signed(dir: &Path, names: &[String]) -> io::Result<SelfSigned> {
    let files = SelfSigned {
        cert: dir.join("self-signed.pem"),
        key: dir.join("self-signed.key"),
    };
    if files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    fs::create_dir_all(dir)?;
    let (cert, key) = generate(names)?;
    let write = |path: &Path, text: &str, private: bool| -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        let mut f = fs::File::create(&tmp)?;
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        #[cfg(not(unix))]
        let _ = private;
        io::Write::write_all(&mut f, text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write(&files.key, &key, true)?;
    write(&files.cert, &cert, false)?;
    crate::spool::sync_dir(dir)?;
    Ok(files)
}

/// A fresh self-signed certificate and key (PEM) for `names`.
pub fn generate(names: &[String]) -> io::Result<(String, String)> {
    let key = rcgen::KeyPair::generate().map_err(io::Error::other)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(io::Error::other)?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        names.first().map_or("localhost", String::as_str),
    );
    let cert = params.self_signed(&key).map_err(io::Error::other)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The names a self-signed certificate is made for.
pub fn self_signed_names(config: &Config) -> Vec<String> {
    let mut names = vec![config.hostname.clone()];
    for n in ["localhost", "127.0.0.1"] {
        if !names.iter().any(|x| x == n) {
            names.push(n.to_owned());
        }
    }
    names
}

/// How self-signed certificates are supplied while building listeners.
#[derive(Debug, Clone)]
pub enum SelfSignedSource {
    /// The files in `DATA_DIR/tls` (serving).
    Files(SelfSigned),
    /// An in-memory certificate (`check`, which writes nothing).
    Inline {
        /// PEM certificate.
        cert: String,
        /// PEM key.
        key: String,
    },
}

/// `[tls.NAME]` as listener TLS settings.
pub fn tls_settings(
    spec: &TlsSpec,
    config: &Config,
    self_signed: &SelfSignedSource,
) -> TlsSettings {
    let name = config.hostname.as_str();
    let cert = match (&spec.certificate, self_signed) {
        (CertSource::Files { chain, key }, _) => CertSpec::files(&[name], chain, key),
        (CertSource::SelfSigned, SelfSignedSource::Files(f)) => {
            CertSpec::files(&[name], &f.cert, &f.key)
        }
        (CertSource::SelfSigned, SelfSignedSource::Inline { cert, key }) => {
            CertSpec::pem(&[name], cert.clone(), key.clone())
        }
    }
    .as_default();
    let mut settings = TlsSettings::new(vec![cert])
        .with_versions(spec.versions.iter().cloned())
        .with_prefer_server_ciphers(spec.prefer_server_ciphers);
    settings.ciphers = spec.ciphers.clone();
    settings.groups = spec.groups.clone();
    settings.dh_params = spec.dh_params.clone();
    settings
}

/// The AUTH mechanisms the rules allow at EHLO on `listener` for a
/// plaintext and a TLS connection, knowing only the listener (what
/// `postern-mta check` prints; each connection's EHLO is decided from its
/// own facts, see `crate::server`); mechanisms the session cannot run (only
/// PLAIN and LOGIN are built in) are left out and returned as the second
/// value.
pub fn auth_policy(
    config: &Config,
    listener: &ListenerSpec,
) -> (postern_session::AuthPolicy, Vec<String>) {
    let builtin = postern_session::SaslMechanisms::builtin();
    let mut skipped = Vec::new();
    let mut for_tls = |tls: bool| {
        let facts = Facts::new()
            .tls(tls)
            .listener(&listener.name)
            .local_port(listener.addr.port());
        let plan = config.rules().evaluate(Stage::Helo, &facts).auth;
        plan.for_connection(tls)
            .mechanisms()
            .iter()
            .filter_map(|m| {
                if builtin.contains(&m) {
                    Some(m)
                } else {
                    let s = m.as_str().to_owned();
                    if !skipped.contains(&s) {
                        skipped.push(s);
                    }
                    None
                }
            })
            .collect()
    };
    let plaintext = for_tls(false);
    let tls = for_tls(true);
    (postern_session::AuthPolicy::new(plaintext, tls), skipped)
}

/// The session policy of a listener.
///
/// AUTH is allowed by the session on both transports with every mechanism
/// it can run: the rules are the one source of truth, and they decide per
/// connection, from its facts, what the EHLO reply offers (the session
/// then refuses anything else) and whether an AUTH succeeds.
pub fn session_config(config: &Config, listener: &ListenerSpec) -> postern_session::Config {
    let mut s = postern_session::Config::new(config.hostname.clone());
    s.banner = "Postern MTA".into();
    s.require_auth = listener.require_auth;
    let runnable = s.mechanisms.names();
    s.auth = postern_session::AuthPolicy::new(runnable.clone(), runnable);
    // Not offered, because nothing downstream would honour them: REQUIRETLS
    // (RFC 8689) would oblige every onward hop to use TLS, and a
    // BINARYMIME body cannot go through the Maildir line-ending
    // conversion unchanged.
    s.extensions.requiretls = false;
    s.extensions.binary_mime = false;
    s.limits.max_message_size = config.limits.max_message_size;
    s.limits.max_recipients = config.limits.max_recipients;
    s
}

/// Every listener of `config`, ready for `postern_listener::Server::bind`.
pub fn listener_configs(config: &Config, self_signed: &SelfSignedSource) -> Vec<ListenerConfig> {
    config
        .listeners
        .iter()
        .map(|l| {
            let mut lc = ListenerConfig::new(l.name.clone(), l.addr, l.mode)
                .with_session(Arc::new(session_config(config, l)))
                .with_limits({
                    let mut limits = ConnLimits::default();
                    limits.global = l.max_connections;
                    limits.per_ip = l.max_connections_per_ip;
                    limits.command_timeout = config.limits.command_timeout;
                    limits.data_timeout = config.limits.data_timeout;
                    limits.handshake_timeout = config.limits.handshake_timeout;
                    limits
                });
            if let Some(t) = &l.tls {
                lc = lc.with_tls(tls_settings(t, config, self_signed));
            }
            lc
        })
        .collect()
}

/// Whether any listener uses a self-signed certificate.
pub fn needs_self_signed(config: &Config) -> bool {
    config.listeners.iter().any(|l| {
        matches!(
            l.tls.as_ref().map(|t| &t.certificate),
            Some(CertSource::SelfSigned)
        )
    })
}
