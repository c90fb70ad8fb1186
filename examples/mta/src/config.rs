//! The MTA's configuration: one TOML file (or the embedded default,
//! [`crate::defaults`]) mapped onto typed settings and a compiled
//! [`postern_rules::RuleSet`].
//!
//! Every table rejects unknown keys. Errors name the file, the line and
//! column, the rule (number and name) where there is one, and the field:
//!
//! ```text
//! hardening.toml:41:1: listener[1] "submission", tls: no [tls.strict] table (defined: default)
//! hardening.toml:90:17: rule #3 "allow_only_tls", conditions[0]: unknown variant `recipient_domian`, …
//! ```
//!
//! The outbound router ([`crate::outbound::RulesRouter`]) evaluates
//! [`MtaConfig::rules`] per relayed recipient; [`MtaConfig::route_for`] shows the
//! resulting [`RelayPlan`] (what `postern-mta explain` prints).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postern_listener::ListenerTable;
pub use postern_listener::MessageLimits;
use postern_listener::guard::{AuthGuardConfig, ConnectionRateConfig, FieldError, Networks};
use postern_proto::{ForwardPath, ReversePath};
use postern_queue::QueueSchedule;
pub use postern_relay::{DnsSettings, DnssecChoice};
use postern_rules::{Facts, RelayPlan, RuleConfig, RuleSet, RuleSetConfig, Stage, TomlSource};
use serde::Deserialize;
use toml::Spanned;

/// A configuration that cannot be used, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<embedded default>`).
    pub file: String,
    /// One-based line, when known.
    pub line: Option<u32>,
    /// One-based column, when known.
    pub column: Option<u32>,
    /// The item concerned, e.g. `rule #3 "name"` or `listener[1] "mta"`.
    pub item: Option<String>,
    /// The field inside the item (or the top-level key).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(item) = &self.item {
            write!(f, "{item}, ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

// ---- the file's shape -------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: ServerFile,
    #[serde(default)]
    domain: Vec<Spanned<DomainFile>>,
    #[serde(default)]
    tls: BTreeMap<String, Spanned<TlsFile>>,
    #[serde(default)]
    listener: Vec<Spanned<ListenerTable>>,
    #[serde(default)]
    queue: QueueSchedule,
    store: Option<StoreFile>,
    #[serde(default)]
    limits: MessageLimits,
    #[serde(default)]
    dns: DnsSettings,
    #[serde(default)]
    mta_sts: postern_relay::mta_sts::StsTable,
    #[serde(default)]
    tls_report: postern_queue::tlsrpt::TlsReportTable,
    #[serde(default)]
    auth_limits: AuthGuardConfig,
    #[serde(default)]
    connection_rate: ConnectionRateConfig,
    #[serde(default)]
    rule: Vec<Spanned<RuleConfig>>,
    metrics: Option<MetricsFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsFile {
    address: SocketAddr,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    hostname: Option<String>,
    data_dir: Option<PathBuf>,
    users_file: Option<PathBuf>,
    bare_lf_networks: Option<Networks>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainFile {
    name: String,
    #[serde(default)]
    mailboxes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    certificate: String,
    key: Option<PathBuf>,
    #[serde(default = "default_versions")]
    versions: Vec<String>,
    ciphers: Option<String>,
    groups: Option<Vec<String>>,
    dh_params: Option<PathBuf>,
    #[serde(default = "yes")]
    prefer_server_ciphers: bool,
    // `certificate = "acme"` only.
    domains: Option<Vec<String>>,
    contact: Option<Vec<String>>,
    directory: Option<String>,
    ca_file: Option<PathBuf>,
    challenge_address: Option<SocketAddr>,
    #[serde(
        default,
        deserialize_with = "postern_proto::duration::deserialize_option"
    )]
    retry: Option<std::time::Duration>,
}

fn default_versions() -> Vec<String> {
    vec!["TLSv1.2".into(), "TLSv1.3".into()]
}

fn yes() -> bool {
    true
}

/// `[store]`: where the queue is kept (docs/scaling.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    kind: String,
    dsn: Option<String>,
    node: Option<String>,
    #[serde(
        default,
        deserialize_with = "postern_proto::duration::deserialize_option"
    )]
    lease: Option<std::time::Duration>,
}

/// Parses a duration: `"5d"`, `"4h"`, `"30m"`, `"10s"`, `"250ms"`,
/// combinations such as `"1h 30m"`, or plain seconds.
pub use postern_proto::duration::parse as parse_duration;

// ---- the typed configuration -------------------------------------------

/// A local domain and its mailboxes (besides `postmaster`, which always
/// exists, and users from the users file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDomain {
    /// The domain, lowercase.
    pub name: String,
    /// Mailbox local parts, lowercase.
    pub mailboxes: BTreeSet<String>,
}

/// Where a listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// Generated (rcgen) into `DATA_DIR/tls/` on first start, for
    /// [`MtaConfig::hostname`] and `localhost`.
    SelfSigned,
    /// PEM files: chain (end-entity first) and private key.
    Files {
        /// The chain.
        chain: PathBuf,
        /// The key.
        key: PathBuf,
    },
    /// Obtained and renewed over ACME (RFC 8555); see
    /// `postern_listener::acme`.
    Acme(postern_listener::acme::AcmeConfig),
}

/// One `[tls.NAME]` policy, in the operator's (OpenSSL) terms; see
/// `postern_listener::TlsSettings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSpec {
    /// The table's name.
    pub name: String,
    /// The certificate.
    pub certificate: CertSource,
    /// Versions as written (`TLSv1.1` and older are reported, not used).
    pub versions: Vec<String>,
    /// OpenSSL cipher list, if given.
    pub ciphers: Option<String>,
    /// Key-exchange groups in preference order (OpenSSL names), if given;
    /// otherwise the provider's, X25519MLKEM768 first.
    pub groups: Option<Vec<String>>,
    /// DH parameter file, if given (validated, then reported as unused).
    pub dh_params: Option<PathBuf>,
    /// Server cipher order.
    pub prefer_server_ciphers: bool,
}

/// The loaded, validated configuration.
#[derive(Debug)]
pub struct MtaConfig {
    /// Where it came from (file path or `<embedded default>`).
    pub source: String,
    /// Our host name: greeting, EHLO reply, Received header, outbound EHLO.
    pub hostname: String,
    /// The data directory: `queue/`, `mail/`, `tls/`, `users`.
    pub data_dir: PathBuf,
    /// The users file (`name:argon2-hash` lines); `None`: `DATA_DIR/users`.
    users_file: Option<PathBuf>,
    /// Local domains, in file order.
    pub domains: Vec<LocalDomain>,
    /// Listeners, in file order.
    pub listeners: Vec<ListenerTable>,
    /// The TLS policies, by name.
    pub tls: BTreeMap<String, TlsSpec>,
    /// Queue timing.
    pub queue: QueueSchedule,
    /// A PostgreSQL queue shared by nodes (`[store] kind = "postgres"`);
    /// `None`: the log store in `DATA_DIR/queue`.
    pub store: Option<postern_queue::pg::PgConfig>,
    /// Message limits.
    pub limits: MessageLimits,
    /// Where `GET /metrics` is served (`[metrics] address`); `None`: off.
    pub metrics: Option<SocketAddr>,
    /// DNS and DNSSEC for outbound mail.
    pub dns: DnsSettings,
    /// MTA-STS for outbound mail (`[mta_sts]`); `None` when disabled.
    pub mta_sts: Option<postern_relay::mta_sts::StsSettings>,
    /// TLS-RPT reports (`[tls_report]`); `None` if the host is no mail domain.
    pub tls_report: Option<postern_queue::tlsrpt::ReportSettings>,
    /// The AUTH failure limits (`[auth_limits]`); `None` when disabled.
    pub auth_limits: Option<AuthGuardConfig>,
    /// The connection rate limits (`[connection_rate]`); `None` when
    /// disabled.
    pub connection_rate: Option<ConnectionRateConfig>,
    /// Clients allowed to end command lines with a bare LF
    /// (`[server] bare_lf_networks`; empty by default).
    pub bare_lf_networks: Networks,
    rules: Arc<RuleSet>,
}

/// Name used for the embedded default in messages.
pub const EMBEDDED: &str = "<embedded default>";

impl MtaConfig {
    /// Loads a configuration file. Relative paths in it are relative to the
    /// file's directory.
    pub fn load(path: &Path) -> Result<MtaConfig, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: name.clone(),
            line: None,
            column: None,
            item: None,
            field: None,
            message: format!("cannot read: {e}"),
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        MtaConfig::from_toml_str(&text, &name, &base)
    }

    /// The embedded default ([`crate::defaults::DEFAULT_CONFIG`]); relative
    /// paths are relative to the working directory. It is tested, so an
    /// error means a broken build; the caller (`main`) decides what to do.
    pub fn embedded() -> Result<MtaConfig, ConfigError> {
        MtaConfig::from_toml_str(crate::defaults::DEFAULT_CONFIG, EMBEDDED, Path::new(""))
    }

    /// Parses configuration text. `file` names it in errors; `base` is the
    /// directory relative paths are resolved against.
    pub fn from_toml_str(src: &str, file: &str, base: &Path) -> Result<MtaConfig, ConfigError> {
        // Spans of the text, for errors found after deserialising.
        let toml = TomlSource::parse(src);
        let err = |span: Option<std::ops::Range<usize>>,
                   item: Option<String>,
                   field: Option<String>,
                   message: String| {
            let (line, column) = span.map(|s| TomlSource::line_col(src, s.start)).unzip();
            let file = file.to_owned();
            ConfigError {
                file,
                line,
                column,
                item,
                field,
                message,
            }
        };

        let de = toml::Deserializer::parse(src)
            .map_err(|e| err(e.span(), None, None, e.message().trim().to_owned()))?;
        let parsed: FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            // Spanned<T> shows up in the path under its private field name.
            let path = e
                .path()
                .to_string()
                .replace("$__serde_spanned_private_value.", "")
                .replace(".$__serde_spanned_private_value", "")
                .replace("$__serde_spanned_private_value", "");
            let inner = e.into_inner();
            let (item, field) =
                postern_rules::split_item(toml.as_ref(), &path, &["rule", "listener", "domain"]);
            err(inner.span(), item, field, inner.message().trim().to_owned())
        })?;

        let resolve = |p: &Path| -> PathBuf {
            if p.is_absolute() || base.as_os_str().is_empty() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        let hostname = parsed
            .server
            .hostname
            .clone()
            .unwrap_or_else(|| "localhost".into());
        if postern_proto::Host::parse(&hostname).is_err() {
            return Err(err(
                None,
                None,
                Some("server.hostname".into()),
                format!("{hostname:?} is not a host name"),
            ));
        }
        let data_dir = parsed
            .server
            .data_dir
            .as_deref()
            .map_or_else(|| PathBuf::from("postern-data"), resolve);
        let users_file = parsed.server.users_file.as_deref().map(resolve);

        // Domains.
        let mut domains: Vec<LocalDomain> = Vec::new();
        for (i, d) in parsed.domain.iter().enumerate() {
            let span = Some(d.span());
            let d = d.get_ref();
            let item = Some(format!("domain[{i}] {:?}", d.name));
            let name = d.name.trim_end_matches('.').to_ascii_lowercase();
            if postern_proto::Domain::new(name.clone()).is_err() {
                return Err(err(
                    span,
                    item,
                    Some("name".into()),
                    "not a domain name".into(),
                ));
            }
            if domains.iter().any(|x| x.name == name) {
                return Err(err(
                    span,
                    item,
                    Some("name".into()),
                    "domain listed twice".into(),
                ));
            }
            let mut mailboxes = BTreeSet::new();
            for (j, m) in d.mailboxes.iter().enumerate() {
                if m.is_empty() || m.contains(['@', '/', '\\', '\0']) || m.starts_with('.') {
                    return Err(err(
                        span,
                        item,
                        Some(format!("mailboxes[{j}]")),
                        format!(
                            "{m:?} is not a mailbox name (a local part without @, / or a leading dot)"
                        ),
                    ));
                }
                mailboxes.insert(m.to_ascii_lowercase());
            }
            domains.push(LocalDomain { name, mailboxes });
        }

        // TLS policies.
        let mut tls: BTreeMap<String, TlsSpec> = BTreeMap::new();
        for (name, t) in &parsed.tls {
            let span = Some(t.span());
            let t = t.get_ref();
            let item = Some(format!("tls.{name}"));
            let acme_fields = [
                ("domains", t.domains.is_some()),
                ("contact", t.contact.is_some()),
                ("directory", t.directory.is_some()),
                ("ca_file", t.ca_file.is_some()),
                ("challenge_address", t.challenge_address.is_some()),
                ("retry", t.retry.is_some()),
            ];
            if t.certificate != "acme"
                && let Some((field, _)) = acme_fields.iter().find(|(_, set)| *set)
            {
                return Err(err(
                    span,
                    item,
                    Some((*field).into()),
                    "only for certificate = \"acme\"".into(),
                ));
            }
            let certificate = if t.certificate == "acme" {
                if t.key.is_some() {
                    return Err(err(
                        span,
                        item,
                        Some("key".into()),
                        "an ACME certificate's key is generated and stored under the data directory; remove `key`".into(),
                    ));
                }
                let checked = postern_listener::acme::AcmeConfig::checked(
                    t.domains.clone(),
                    t.directory.clone(),
                );
                let mut acme = checked
                    .map_err(|(f, m)| err(span, item.clone(), Some(f.into()), m))?
                    .with_contact(t.contact.clone().unwrap_or_default())
                    .with_ca_file(t.ca_file.as_deref().map(resolve));
                if let Some(addr) = t.challenge_address {
                    acme = acme.with_challenge_address(addr);
                }
                if let Some(retry) = t.retry {
                    acme = acme.with_retry(retry);
                }
                CertSource::Acme(acme)
            } else if t.certificate == "self-signed" {
                if t.key.is_some() {
                    return Err(err(
                        span,
                        item,
                        Some("key".into()),
                        "a self-signed certificate is generated with its key; remove `key`".into(),
                    ));
                }
                CertSource::SelfSigned
            } else {
                let Some(key) = &t.key else {
                    return Err(err(
                        span,
                        item,
                        Some("key".into()),
                        "missing: a certificate file needs its private key file".into(),
                    ));
                };
                CertSource::Files {
                    chain: resolve(Path::new(&t.certificate)),
                    key: resolve(key),
                }
            };
            tls.insert(
                name.clone(),
                TlsSpec {
                    name: name.clone(),
                    certificate,
                    versions: t.versions.clone(),
                    ciphers: t.ciphers.clone(),
                    groups: t.groups.clone(),
                    dh_params: t.dh_params.as_deref().map(resolve),
                    prefer_server_ciphers: t.prefer_server_ciphers,
                },
            );
        }

        // Listeners: their tables checked, their TLS policies found.
        let mut listeners: Vec<ListenerTable> = Vec::new();
        for (i, l) in parsed.listener.into_iter().enumerate() {
            let span = Some(l.span());
            let l = l.into_inner();
            let item = Some(format!("listener[{i}] {:?}", l.name));
            let fail = |field: &str, message: String| {
                err(span.clone(), item.clone(), Some(field.into()), message)
            };
            if l.name.is_empty() || listeners.iter().any(|x| x.name == l.name) {
                return Err(fail("name", "must be unique and not empty".into()));
            }
            l.validate().map_err(|e| fail(&e.field, e.message))?;
            if let Some(name) = l.tls.as_ref().filter(|n| !tls.contains_key(*n)) {
                let known: Vec<&str> = tls.keys().map(String::as_str).collect();
                let known = if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                };
                return Err(fail(
                    "tls",
                    format!("no [tls.{name}] table (defined: {known})"),
                ));
            }
            listeners.push(l);
        }
        if listeners.is_empty() {
            return Err(err(
                None,
                None,
                Some("listener".into()),
                "no [[listener]] defined".into(),
            ));
        }

        // Queue and limits.
        let queue = parsed.queue;
        let limits = parsed.limits;
        let store = match parsed.store {
            None => None,
            Some(st) if st.kind == "log" => None,
            Some(st) if st.kind == "postgres" => {
                let Some(dsn) = st.dsn else {
                    let msg = "kind = \"postgres\" needs a dsn".into();
                    return Err(err(None, None, Some("store.dsn".into()), msg));
                };
                let node = st
                    .node
                    .unwrap_or_else(postern_queue::pg::PgConfig::default_node);
                let pg = postern_queue::pg::PgConfig::new(dsn, node);
                Some(st.lease.map_or(pg.clone(), |l| pg.with_lease(l)))
            }
            Some(st) => {
                let msg = format!("kind must be \"log\" or \"postgres\", not {:?}", st.kind);
                return Err(err(None, None, Some("store.kind".into()), msg));
            }
        };

        // DNS: the trust anchor is relative to the file's directory.
        let mut dns = parsed.dns;
        dns.validate().map_err(|e| {
            err(
                None,
                None,
                Some(format!("dns.{}", e.field)),
                e.message.into(),
            )
        })?;
        dns.trust_anchor = dns.trust_anchor.as_deref().map(resolve);
        // MTA-STS: on by default, cache under the data directory.
        let mta_sts = (parsed.mta_sts.settings(resolve, data_dir.join("mta-sts")))
            .map_err(|e| err(None, None, Some(format!("mta_sts.{}", e.field)), e.message))?;
        let provider = postern_relay::default_provider();
        let tls_report = parsed.tls_report.settings(&hostname, resolve, &provider);
        let tls_report = tls_report.map_err(|e| err(None, None, Some(e.field()), e.message))?;
        // Abuse limits.
        let in_table = |table: &str, e: FieldError| {
            err(None, None, Some(format!("{table}.{}", e.field)), e.message)
        };
        let auth_limits = parsed.auth_limits.enabled.then_some(parsed.auth_limits);
        if let Some(a) = &auth_limits {
            a.validate().map_err(|e| in_table("auth_limits", e))?;
        }
        let connection_rate = parsed
            .connection_rate
            .enabled
            .then_some(parsed.connection_rate);
        if let Some(r) = &connection_rate {
            r.validate().map_err(|e| in_table("connection_rate", e))?;
        }
        let bare_lf_networks = parsed.server.bare_lf_networks.unwrap_or_default();

        // Rules: compiled as one set; errors point at the rule's table.
        let spans: Vec<std::ops::Range<usize>> = parsed.rule.iter().map(Spanned::span).collect();
        let rule_set =
            RuleSetConfig::new(parsed.rule.into_iter().map(Spanned::into_inner).collect());
        let rules = rule_set.compile().map_err(|e| {
            // Point at the field when it can be found, else at the rule.
            let span = e.index.and_then(|i| {
                let at = toml.as_ref().filter(|_| !e.field.is_empty());
                let field = at.and_then(|t| t.span(&format!("rule[{i}].{}", e.field)));
                field.or_else(|| spans.get(i).cloned())
            });
            let item = e.index.map(|i| format!("rule #{} {:?}", i + 1, e.rule));
            let field = (!e.field.is_empty()).then(|| e.field.clone());
            err(span, item, field, e.kind.to_string())
        })?;
        // Smart-host passwords are checked now too (as at each use), so
        // `check` and start-up refuse a file others can read.
        for (i, a, auth) in rules.relay_auths() {
            crate::outbound::credentials(base, auth).map_err(|e| {
                let field = format!("actions[{a}].relay_auth");
                let item = format!("rule #{} {:?}", i + 1, rules.rules()[i].name());
                let path = format!("rule[{i}].{field}");
                let span = toml.as_ref().and_then(|t| t.span(&path));
                err(
                    span.or_else(|| spans.get(i).cloned()),
                    Some(item),
                    Some(field),
                    e.to_string(),
                )
            })?;
        }

        Ok(MtaConfig {
            source: file.to_owned(),
            hostname,
            data_dir,
            users_file,
            domains,
            listeners,
            tls,
            queue,
            store,
            limits,
            metrics: parsed.metrics.map(|m| m.address),
            dns,
            mta_sts,
            tls_report,
            auth_limits,
            connection_rate,
            bare_lf_networks,
            rules: Arc::new(rules),
        })
    }

    /// Overrides the data directory (the CLI's `--data-dir`).
    pub fn set_data_dir(&mut self, dir: PathBuf) {
        self.data_dir = dir;
    }

    /// The compiled rule set, in file order.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// The queue directory, `DATA_DIR/queue` (what [`postern_queue::LogStore::open`] takes).
    pub fn queue_dir(&self) -> PathBuf {
        self.data_dir.join("queue")
    }

    /// The Maildir root, `DATA_DIR/mail` (`mail/DOMAIN/LOCALPART/{tmp,new,cur}`).
    pub fn mail_dir(&self) -> PathBuf {
        self.data_dir.join("mail")
    }

    /// Where self-signed certificates live, `DATA_DIR/tls`.
    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }

    /// The users file: `server.users_file`, or `DATA_DIR/users`.
    pub fn users_file(&self) -> PathBuf {
        self.users_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("users"))
    }

    /// The local domain `domain` (case-insensitive, trailing dot ignored).
    pub fn local_domain(&self, domain: &str) -> Option<&LocalDomain> {
        let d = domain.trim_end_matches('.');
        self.domains.iter().find(|x| x.name.eq_ignore_ascii_case(d))
    }

    /// Whether `domain` is one of ours.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.local_domain(domain).is_some()
    }

    /// Whether the address `local@domain` is in a local domain.
    pub fn is_local_address(&self, address: &str) -> bool {
        address
            .rsplit_once('@')
            .is_some_and(|(_, d)| self.is_local_domain(d))
    }

    /// The relay plan for one recipient being relayed from `sender`: the
    /// rules evaluated at stage `rcpt` with `relaying = true`. Check
    /// [`RelayPlan::problem`] before using it.
    pub fn route_for(&self, recipient: ForwardPath<'_>, sender: ReversePath<'_>) -> RelayPlan<'_> {
        let facts = Facts::new()
            .recipient(recipient)
            .relaying(true)
            .sender(sender);
        self.rules.evaluate(Stage::Rcpt, &facts).relay
    }

    /// A listener by name.
    pub fn listener(&self, name: &str) -> Option<&ListenerTable> {
        self.listeners.iter().find(|l| l.name == name)
    }

    /// The TLS policy of `listener` (`None` for a plain one).
    pub fn tls_of(&self, listener: &ListenerTable) -> Option<&TlsSpec> {
        listener.tls.as_ref().and_then(|n| self.tls.get(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn embedded_default_loads() {
        let c = MtaConfig::from_toml_str(crate::defaults::DEFAULT_CONFIG, EMBEDDED, Path::new(""))
            .unwrap();
        assert_eq!(c.listeners.len(), 3);
        assert!(c.is_local_domain("LOCALHOST"));
        assert!(c.rules().rule("disableAUTH_on_non_SSL").is_some());
    }

    #[test]
    fn unknown_key_names_file_line_and_field() {
        let src = "[[listener]]\nname = \"mta\"\naddress = \"127.0.0.1:25\"\nmode = \"plain\"\nbogus = 1\n";
        let e = MtaConfig::from_toml_str(src, "x.toml", Path::new("")).unwrap_err();
        assert_eq!(e.file, "x.toml");
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.to_string().contains("listener[0] \"mta\""), "{e}");
        assert!(e.message.contains("bogus"), "{e}");
    }

    #[test]
    fn rule_error_names_rule_and_field() {
        let src = "[[listener]]\nname = \"mta\"\naddress = \"127.0.0.1:25\"\nmode = \"plain\"\n\n[[rule]]\nname = \"ok\"\nactions = [{ plain_auth = \"off\" }]\n\n[[rule]]\nname = \"bad\"\nconditions = [{ helo = { regex = \"(\" } }]\nactions = [{ stop = true }]\n";
        let e = MtaConfig::from_toml_str(src, "r.toml", Path::new("")).unwrap_err();
        assert_eq!(e.line, Some(12), "{e}");
        assert_eq!(e.item.as_deref(), Some("rule #2 \"bad\""), "{e}");
        assert!(
            e.field.as_deref().unwrap_or("").contains("conditions[0]"),
            "{e}"
        );

        let src2 = "[[listener]]\nname = \"mta\"\naddress = \"127.0.0.1:25\"\nmode = \"plain\"\n\n[[rule]]\nname = \"bad\"\nconditions = [{ recipient_domian = { is = \"x\" } }]\nactions = [{ stop = true }]\n";
        let e = MtaConfig::from_toml_str(src2, "r.toml", Path::new("")).unwrap_err();
        assert_eq!(e.item.as_deref(), Some("rule #1 \"bad\""), "{e}");
        assert!(e.to_string().contains("recipient_domian"), "{e}");
    }

    #[test]
    fn unknown_tls_policy_is_named() {
        let src = "[[listener]]\nname = \"sub\"\naddress = \"127.0.0.1:587\"\nmode = \"starttls\"\ntls = \"strict\"\n";
        let e = MtaConfig::from_toml_str(src, "t.toml", Path::new("")).unwrap_err();
        assert_eq!(e.line, Some(1));
        assert!(e.to_string().contains("no [tls.strict] table"), "{e}");
    }

    #[test]
    fn zero_connection_limit_is_an_error_not_widened() {
        for field in ["max_connections", "max_connections_per_ip"] {
            let src = format!(
                "[[listener]]\nname = \"mta\"\naddress = \"127.0.0.1:25\"\nmode = \"plain\"\n{field} = 0\n"
            );
            let e = MtaConfig::from_toml_str(&src, "z.toml", Path::new("")).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{e}");
            assert!(e.to_string().contains("listener[0] \"mta\""), "{e}");
        }
    }

    #[test]
    fn connection_timeouts_from_limits() {
        let base = "[[listener]]\nname = \"mta\"\naddress = \"127.0.0.1:25\"\nmode = \"plain\"\n";
        let c = MtaConfig::from_toml_str(base, "t.toml", Path::new("")).unwrap();
        assert_eq!(c.limits.command_timeout, Duration::from_secs(300));
        assert_eq!(c.limits.data_timeout, Duration::from_secs(180));
        assert_eq!(c.limits.handshake_timeout, Duration::from_secs(10));
        let src = format!(
            "{base}[limits]\ncommand_timeout = \"2s\"\ndata_timeout = \"1500ms\"\nhandshake_timeout = 3\n"
        );
        let c = MtaConfig::from_toml_str(&src, "t.toml", Path::new("")).unwrap();
        assert_eq!(c.limits.command_timeout, Duration::from_secs(2));
        assert_eq!(c.limits.data_timeout, Duration::from_millis(1500));
        assert_eq!(c.limits.handshake_timeout, Duration::from_secs(3));
        let src = format!("{base}[limits]\ndata_timeout = 0\n");
        let e = MtaConfig::from_toml_str(&src, "t.toml", Path::new("")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limits.data_timeout"), "{e}");
    }

    #[test]
    fn dns_section() {
        let base = "[[listener]]\nname = \"mta\"\naddress = \"127.0.0.1:25\"\nmode = \"plain\"\n";
        let c = MtaConfig::from_toml_str(base, "t.toml", Path::new("")).unwrap();
        assert_eq!(c.dns, DnsSettings::default());
        let src = format!(
            "{base}[dns]\nservers = [\"127.0.0.1\", \"[::1]:5353\"]\ndnssec = \"validate\"\ntrust_anchor = \"root.key\"\n"
        );
        let c = MtaConfig::from_toml_str(&src, "t.toml", Path::new("/etc/postern")).unwrap();
        assert_eq!(
            c.dns.servers,
            [
                "127.0.0.1:53".parse::<std::net::SocketAddr>().unwrap(),
                "[::1]:5353".parse().unwrap()
            ]
        );
        assert_eq!(c.dns.dnssec, DnssecChoice::Validate);
        assert_eq!(
            c.dns.trust_anchor.as_deref(),
            Some(Path::new("/etc/postern/root.key"))
        );
        let resolver = c.dns.resolver_config().unwrap();
        assert_eq!(resolver.servers.len(), 2);
        for (bad, field) in [
            ("dnssec = \"maybe\"", "dns.dnssec"),
            ("servers = [\"dns.example\"]", "dns.servers"),
            ("trust_anchor = \"k\"", "dns.trust_anchor"),
        ] {
            let src = format!("{base}[dns]\n{bad}\n");
            let e = MtaConfig::from_toml_str(&src, "t.toml", Path::new("")).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5d"), Some(Duration::from_secs(432000)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("12"), Some(Duration::from_secs(12)));
        assert_eq!(parse_duration("2ms"), Some(Duration::from_millis(2)));
        assert_eq!(parse_duration("x"), None);
    }

    #[test]
    fn tls_report_section() {
        let base = "[server]\nhostname = \"mx.example.org\"\n[[listener]]\nname = \"mta\"\naddress = \"127.0.0.1:25\"\nmode = \"plain\"\n";
        let c = MtaConfig::from_toml_str(base, "t.toml", Path::new("")).unwrap();
        let r = c.tls_report.unwrap();
        assert_eq!(r.submitter, "mx.example.org");
        assert!(r.dkim.is_none());
        // RFC 8032 §7.1 TEST 1's secret key, as PKCS#8.
        let dir = std::env::temp_dir().join(format!("postern-tlsrpt-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("dkim.pem"),
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let src = format!(
            "{base}[tls_report]\norganization_name = \"Example\"\ndkim_key = \"dkim.pem\"\ndkim_selector = \"r1\"\n"
        );
        let c = MtaConfig::from_toml_str(&src, "t.toml", &dir).unwrap();
        let r = c.tls_report.unwrap();
        assert_eq!(r.organization_name, "Example");
        // What `check` prints: the record to publish.
        assert_eq!(
            r.to_string(),
            "reports from tlsrpt-noreply@mx.example.org (Example); mailed ones signed ed25519-sha256: publish TXT r1._domainkey.mx.example.org \"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\""
        );
        let dkim = r.dkim.unwrap();
        assert_eq!(dkim.record_name(), "r1._domainkey.mx.example.org");
        // The public key of the same test vector.
        assert_eq!(
            dkim.txt_record(),
            "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
        );
        for (bad, field) in [
            ("dkim_key = \"dkim.pem\"", "tls_report.dkim_selector"),
            ("dkim_selector = \"r1\"", "tls_report.dkim_selector"),
            (
                "dkim_key = \"nope.pem\"\ndkim_selector = \"r1\"",
                "tls_report.dkim_key",
            ),
            (
                "dkim_key = \"t.toml\"\ndkim_selector = \"r1\"",
                "tls_report.dkim_key",
            ),
            (
                "dkim_key = \"dkim.pem\"\ndkim_selector = \"r 1\"",
                "tls_report.dkim_selector",
            ),
        ] {
            std::fs::write(dir.join("t.toml"), "not a key").unwrap();
            let src = format!("{base}[tls_report]\n{bad}\n");
            let e = MtaConfig::from_toml_str(&src, "t.toml", &dir).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{bad}: {e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn metrics_address_is_optional_and_checked() {
        let base = "[[listener]]\nname = \"mta\"\naddress = \"127.0.0.1:25\"\nmode = \"plain\"\n";
        let off = MtaConfig::from_toml_str(base, "t.toml", Path::new("")).unwrap();
        assert_eq!(off.metrics, None);
        let on = format!("{base}[metrics]\naddress = \"127.0.0.1:9125\"\n");
        let c = MtaConfig::from_toml_str(&on, "t.toml", Path::new("")).unwrap();
        assert_eq!(c.metrics, Some("127.0.0.1:9125".parse().unwrap()));
        let bad = format!("{base}[metrics]\naddress = \"localhost\"\n");
        let e = MtaConfig::from_toml_str(&bad, "t.toml", Path::new("")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("metrics.address"), "{e}");
        assert_eq!(e.line, Some(6), "{e}");
    }
}
