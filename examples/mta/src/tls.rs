//! Certificates and listener wiring: the self-signed certificate of the
//! default, `[tls.NAME]` → `postern_listener::TlsSettings`, and the session
//! policy of each listener (AUTH allowed up to what the session can run; the
//! rules narrow it per connection, see `crate::server`).

use std::sync::Arc;
use std::time::SystemTime;

use postern_listener::{CertSpec, ConnLimits, ListenerConfig, TlsSettings};
use postern_rules::{Facts, Stage};

use postern_listener::ListenerTable;

use crate::config::{CertSource, MtaConfig, TlsSpec};

pub use postern_listener::self_signed::{
    SELF_SIGNED_RENEW_BEFORE, SELF_SIGNED_VALIDITY, SelfSignedFiles, ensure_self_signed,
    generate_self_signed,
};

pub use postern_listener::{CertNote, EXPIRY_WARNING, expiry_notes};

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
    listener: &ListenerTable,
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
    listener: &ListenerTable,
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
    config.limits.apply_to_session(&mut s);
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
    let global = config
        .connection_rate
        .as_ref()
        .and_then(|r| r.limiter().map(Arc::new));
    config
        .listeners
        .iter()
        .map(|l| {
            let rate = match &l.connection_rate {
                None => global.clone(),
                // Its own windows, with the global allowlist and capacity.
                Some(w) => {
                    let settings = config.connection_rate.clone().unwrap_or_default();
                    settings.limiter_with_windows(w).map(Arc::new)
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
                    config.limits.apply_to_connections(&mut limits);
                    limits
                });
            if let Some(t) = config.tls_of(l) {
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
            config.tls_of(l).map(|t| &t.certificate),
            Some(CertSource::SelfSigned)
        )
    })
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
            notes.extend(files.state().notes(&files, now));
            notes
        }
        CertSource::SelfSigned => {
            let files = SelfSignedFiles::in_dir(&config.tls_dir());
            let policy = format!(
                "self-signed, valid {} days, made again at start when fewer than {} are left",
                SELF_SIGNED_VALIDITY.as_secs() / 86_400,
                SELF_SIGNED_RENEW_BEFORE.as_secs() / 86_400
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
