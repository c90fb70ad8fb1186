//! `certificate = "acme"` in a `[tls.NAME]` table: the wiring of
//! [`postern_listener::acme`] (http-01, storage, renewal at a third of the
//! lifetime with the atomic reload, backoff; see there for why http-01).
//!
//! Storage: `DATA_DIR/acme/NAME/` (0700; files 0600). Until the first
//! certificate is obtained a self-signed placeholder serves, so the
//! listeners can start.

use std::io;
use std::sync::Arc;

use postern_listener::acme::{AcmeConfig, AcmeFiles, Renewer};
use tokio::sync::watch;

use crate::config::{CertSource, MtaConfig};

/// The files of `[tls.table]`'s ACME certificate: `DATA_DIR/acme/table`.
pub fn files(config: &MtaConfig, table: &str) -> AcmeFiles {
    AcmeFiles::in_dir(config.data_dir.join("acme").join(table))
}

/// The `[tls.NAME]` tables with `certificate = "acme"`.
pub fn tables(config: &MtaConfig) -> Vec<(String, AcmeConfig)> {
    let mut out: Vec<(String, AcmeConfig)> = Vec::new();
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
        let files = files(config, &name);
        if files.prepare(|| crate::tls::generate_self_signed(&spec.domains))? {
            tracing::info!(tls = %name, cert = %files.cert.display(), "ACME: a self-signed placeholder serves until the first certificate is issued");
        }
    }
    Ok(())
}

/// Runs issuance and renewal for every ACME table until `shutdown`,
/// reloading the table's listeners in `server`.
pub fn spawn(
    config: Arc<MtaConfig>,
    server: postern_listener::Server,
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
            let renewer = Renewer::new(name.clone(), spec, files(&config, &name), listeners);
            tokio::spawn(renewer.run(server.clone(), shutdown.clone()))
        })
        .collect()
}
