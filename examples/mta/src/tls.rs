//! Certificates and listener wiring: the self-signed certificate of the
//! default, `[tls.NAME]` → `postern_listener::TlsSettings`, and the session
//! policy of each listener (AUTH allowed up to what the session can run; the
//! rules narrow it per connection, see `crate::server`).

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use postern_listener::acme::AcmeState;
use postern_listener::{CertSpec, ConnLimits, ListenerConfig, TlsSettings, Validity};
use postern_rules::{Facts, Stage};

use crate::config::{CertSource, ListenerSpec, MtaConfig, TlsSpec};

pub use postern_listener::self_signed::{
    SELF_SIGNED_RENEW_BEFORE, SELF_SIGNED_VALIDITY, SelfSignedFiles, ensure_self_signed,
    generate_self_signed,
};

/// Any configured certificate with less than this left is a warning in
/// `check` (and in the log at start).
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

/// The names a self-signed certificate is made for.
pub fn self_signed_names(config: &MtaConfig) -> Vec<String> {
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
    Files(SelfSignedFiles),
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
    config: &MtaConfig,
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
        (CertSource::Acme(_), source) => {
            let files = crate::acme::files(config, &spec.name);
            match source {
                // `check` before the first start: the stand-in.
                SelfSignedSource::Inline { cert, key }
                    if !files.cert.exists() && !cert.is_empty() =>
                {
                    CertSpec::pem(&[name], cert.clone(), key.clone())
                }
                // Serving: `acme::prepare` has put a placeholder there.
                _ => CertSpec::files(&[name], &files.cert, &files.key),
            }
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
/// own facts, see `crate::server`); mechanisms the session cannot run
/// (`SaslMechanisms::with_scram`: SCRAM-SHA-256(-PLUS), PLAIN, LOGIN) are
/// left out and returned as the second value.
pub fn auth_policy(
    config: &MtaConfig,
    listener: &ListenerSpec,
) -> (postern_session::AuthPolicy, Vec<String>) {
    let builtin = postern_session::SaslMechanisms::with_scram(Arc::new(()));
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
pub fn session_config(
    config: &MtaConfig,
    listener: &ListenerSpec,
    mechanisms: &postern_session::SaslMechanisms,
) -> postern_session::Config {
    let mut s = postern_session::Config::new(config.hostname.clone());
    s.mechanisms = mechanisms.clone();
    s.banner = "Postern MTA".into();
    s.require_auth = listener.require_auth;
    let runnable = s.mechanisms.names();
    s.auth = postern_session::AuthPolicy::new(runnable.clone(), runnable);
    // Not offered: a BINARYMIME body cannot go through the Maildir
    // line-ending conversion unchanged. (REQUIRETLS is offered after TLS:
    // the queue keeps the flag and the relay enforces it, RFC 8689.)
    s.extensions.binary_mime = false;
    s.limits.max_message_size = config.limits.max_message_size;
    s.limits.max_recipients = config.limits.max_recipients;
    s
}

/// Every listener of `config`, ready for `postern_listener::Server::bind`.
///
/// The global `[connection_rate]` is one limiter shared by every listener
/// without windows of its own (their connections count together); a
/// listener with its own windows has its own limiter (with the global
/// allowlist).
pub fn listener_configs(
    config: &MtaConfig,
    self_signed: &SelfSignedSource,
    mechanisms: &postern_session::SaslMechanisms,
) -> Vec<ListenerConfig> {
    use postern_listener::guard::{ConnectionRate, MemoryStore, RateLimits};
    let global = config.connection_rate.as_ref().map(|r| {
        Arc::new(ConnectionRate::with_store(
            r.limits.clone(),
            MemoryStore::new(r.max_entries),
        ))
    });
    config
        .listeners
        .iter()
        .map(|l| {
            let rate = match (&l.connection_rate, &config.connection_rate) {
                (None, _) => global.clone(),
                (Some(w), _) if w.is_empty() => None,
                (Some(w), settings) => {
                    let mut limits = RateLimits::unlimited();
                    limits.windows = w.clone();
                    if let Some(s) = settings {
                        limits.allow = s.limits.allow.clone();
                    }
                    let capacity = settings
                        .as_ref()
                        .map_or(MemoryStore::DEFAULT_CAPACITY, |s| s.max_entries);
                    Some(Arc::new(ConnectionRate::with_store(
                        limits,
                        MemoryStore::new(capacity),
                    )))
                }
            };
            let mut lc = ListenerConfig::new(l.name.clone(), l.addr, l.mode)
                .with_connection_rate(rate)
                .with_bare_lf_networks(config.bare_lf_networks.clone())
                .with_session(Arc::new(session_config(config, l, mechanisms)))
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
            if let Some(p) = &l.proxy {
                lc = lc.with_proxy_protocol(p.clone());
            }
            lc
        })
        .collect()
}

/// Whether any listener uses a self-signed certificate.
pub fn needs_self_signed(config: &MtaConfig) -> bool {
    config.listeners.iter().any(|l| {
        matches!(
            l.tls.as_ref().map(|t| &t.certificate),
            Some(CertSource::SelfSigned)
        )
    })
}

/// One line `check` prints about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertNote {
    /// A fact: where it is, until when it is valid.
    Info(String),
    /// Expires within [`EXPIRY_WARNING`], or its dates cannot be read.
    Warning(String),
    /// Expired: clients that verify refuse it.
    Error(String),
}

impl std::fmt::Display for CertNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertNote::Info(s) => f.write_str(s),
            CertNote::Warning(s) => write!(f, "warning: {s}"),
            CertNote::Error(s) => write!(f, "error: {s}"),
        }
    }
}

fn days(d: Duration) -> u64 {
    d.as_secs() / 86_400
}

/// The expiry of the certificate in the PEM file `path`, as `check`
/// reports it.
pub fn expiry_notes(what: &str, path: &Path, now: SystemTime) -> Vec<CertNote> {
    let validity = match fs::read(path) {
        Ok(pem) => match Validity::from_pem(&pem) {
            Ok(v) => v,
            Err(e) => {
                return vec![CertNote::Warning(format!(
                    "{what} {}: cannot read its validity: {e}",
                    path.display()
                ))];
            }
        },
        // The policy build reports the unreadable file.
        Err(_) => return Vec::new(),
    };
    let until = postern_listener::utc(validity.not_after);
    let mut notes = vec![CertNote::Info(format!(
        "{what} {}: valid {validity} ({} days left)",
        path.display(),
        days(validity.remaining(now))
    ))];
    if validity.is_expired(now) {
        notes.push(CertNote::Error(format!(
            "{what} {} expired at {until}",
            path.display()
        )));
    } else if validity.remaining(now) < EXPIRY_WARNING {
        notes.push(CertNote::Warning(format!(
            "{what} {} expires in {} days, at {until}: renew it",
            path.display(),
            days(validity.remaining(now))
        )));
    }
    notes
}

/// What `check` says about the certificate of `[tls.NAME]` at `now`.
pub fn certificate_notes(spec: &TlsSpec, config: &MtaConfig, now: SystemTime) -> Vec<CertNote> {
    match &spec.certificate {
        CertSource::Files { chain, .. } => expiry_notes("certificate", chain, now),
        CertSource::Acme(acme) => {
            let files = crate::acme::files(config, &spec.name);
            let mut notes = vec![CertNote::Info(format!(
                "ACME (http-01 on {}) for {} from {}",
                acme.challenge_address,
                acme.domains.join(", "),
                acme.directory
            ))];
            match files.state() {
                AcmeState::Missing => notes.push(CertNote::Info(
                    "state: not obtained yet; requested at start (a self-signed placeholder serves until then)".to_owned(),
                )),
                AcmeState::Placeholder => notes.push(CertNote::Warning(format!(
                    "state: {} is the self-signed placeholder: the first issuance has not succeeded yet (see the log)",
                    files.cert.display()
                ))),
                AcmeState::Unreadable(e) => notes.push(CertNote::Warning(format!(
                    "state: {}: {e}; a new certificate is requested at start",
                    files.cert.display()
                ))),
                AcmeState::Issued { renew_at, .. } => {
                    notes.push(CertNote::Info(format!(
                        "state: issued; renewed from {} (a third of its lifetime before expiry)",
                        postern_listener::utc(renew_at)
                    )));
                    notes.extend(expiry_notes("certificate", &files.cert, now));
                }
                other => notes.push(CertNote::Info(format!("state: {other:?}"))),
            }
            notes
        }
        CertSource::SelfSigned => {
            let files = SelfSignedFiles::in_dir(&config.tls_dir());
            let policy = format!(
                "self-signed, valid {} days, made again at start when fewer than {} are left",
                days(SELF_SIGNED_VALIDITY),
                days(SELF_SIGNED_RENEW_BEFORE)
            );
            match files.regeneration(now) {
                None => {
                    let mut notes = vec![CertNote::Info(policy)];
                    notes.extend(expiry_notes("certificate", &files.cert, now));
                    notes
                }
                Some(reason) => vec![CertNote::Info(format!(
                    "{policy}; {}: generated at the next start ({reason})",
                    files.cert.display()
                ))],
            }
        }
    }
}
