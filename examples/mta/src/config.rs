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
use std::time::Duration;

use postern_listener::{Mode, ProxyProtocol};
use postern_proto::{ForwardPath, ReversePath};
use postern_relay::Anchors;
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
    listener: Vec<Spanned<ListenerFile>>,
    #[serde(default)]
    queue: QueueFile,
    store: Option<StoreFile>,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    dns: DnsFile,
    #[serde(default)]
    mta_sts: MtaStsFile,
    #[serde(default)]
    auth_limits: crate::abuse::AuthLimitsFile,
    #[serde(default)]
    connection_rate: crate::abuse::ConnectionRateFile,
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
struct DnsFile {
    servers: Option<Vec<String>>,
    dnssec: Option<String>,
    trust_anchor: Option<PathBuf>,
}

/// `[mta_sts]`: `trust_anchors` is `"system"` or a list of PEM files.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MtaStsFile {
    enabled: Option<bool>,
    cache_dir: Option<PathBuf>,
    trust_anchors: Option<AnchorsFile>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AnchorsFile {
    Name(String),
    Files(Vec<PathBuf>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    hostname: Option<String>,
    data_dir: Option<PathBuf>,
    users_file: Option<PathBuf>,
    bare_lf_networks: Option<Vec<Spanned<String>>>,
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
    retry: Option<DurationText>,
}

fn default_versions() -> Vec<String> {
    vec!["TLSv1.2".into(), "TLSv1.3".into()]
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerFile {
    name: String,
    address: String,
    mode: ModeFile,
    tls: Option<String>,
    #[serde(default)]
    require_tls: bool,
    #[serde(default)]
    require_auth: bool,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    connection_rate: Option<Vec<Spanned<crate::abuse::WindowFile>>>,
    proxy_protocol: Option<ProxyFile>,
}

/// `proxy_protocol = { trusted = ["127.0.0.5/32"], header_timeout = "5s" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyFile {
    trusted: Vec<String>,
    header_timeout: Option<DurationText>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ModeFile {
    Plain,
    Starttls,
    Implicit,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueFile {
    max_age: Option<DurationText>,
    retry_initial: Option<DurationText>,
    retry_max: Option<DurationText>,
    retry_factor: Option<f64>,
    scan_interval: Option<DurationText>,
    delay_warning: Option<DurationText>,
}

/// `[store]`: where the queue is kept (docs/scaling.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    kind: String,
    dsn: Option<String>,
    node: Option<String>,
    lease: Option<DurationText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    max_message_size: Option<u64>,
    max_recipients: Option<usize>,
    command_timeout: Option<DurationText>,
    data_timeout: Option<DurationText>,
    handshake_timeout: Option<DurationText>,
}

/// `"5d"`, `"4h"`, `"30m"`, `"10s"` or a number of seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DurationText(pub(crate) Duration);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(DurationText(Duration::from_secs(s))),
            Raw::Text(t) => parse_duration(&t)
                .map(DurationText)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "invalid duration {t:?} (write e.g. \"5d\", \"4h\", \"30m\", \"10s\" or a number of seconds)"
                    ))
                }),
        }
    }
}

/// Parses a duration: `"5d"`, `"4h"`, `"30m"`, `"10s"`, `"250ms"`,
/// combinations such as `"1h 30m"` (humantime's syntax), or plain seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    humantime::parse_duration(t).ok()
}

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

/// One `[[listener]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// Its name (logs, rules' `listener` condition, Received header).
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Plain, STARTTLS (optionally required) or implicit TLS.
    pub mode: Mode,
    /// Its TLS policy (for STARTTLS and implicit modes).
    pub tls: Option<TlsSpec>,
    /// `MAIL` needs a successful AUTH first (`530 5.7.0`).
    pub require_auth: bool,
    /// Most connections at once.
    pub max_connections: usize,
    /// Most connections from one IP at once.
    pub max_connections_per_ip: usize,
    /// The PROXY protocol: the fronts whose header is required and
    /// believed (their clients' addresses then drive the limits, the
    /// rules, the logs and the Received header).
    pub proxy: Option<ProxyProtocol>,
    /// This listener's own connection rate windows (`connection_rate =
    /// [...]`; empty: no rate limit here); `None`: the global
    /// `[connection_rate]`.
    pub connection_rate: Option<Vec<postern_listener::guard::Window>>,
}

/// Queue timing, for the outbound runner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueSettings {
    /// Give up (and bounce) after this long in the queue. Default 5 days.
    pub max_age: Duration,
    /// First retry delay; doubles per attempt. Default 5 minutes.
    pub retry_initial: Duration,
    /// Longest retry delay. Default 4 hours.
    pub retry_max: Duration,
    /// Each retry delay is the previous one times this (at least 1).
    /// Default 2.
    pub retry_factor: f64,
    /// How often the runner scans the queue. Default 10 seconds.
    pub scan_interval: Duration,
    /// Tell the sender once that mail is delayed after this long (RFC 3464
    /// `action=delayed`); 0 turns it off. Default 4 hours.
    pub delay_warning: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            max_age: Duration::from_secs(5 * 86400),
            retry_initial: Duration::from_secs(300),
            retry_max: Duration::from_secs(4 * 3600),
            retry_factor: 2.0,
            scan_interval: Duration::from_secs(10),
            delay_warning: Duration::from_secs(4 * 3600),
        }
    }
}

/// How DNSSEC status is established for DANE (`[dns] dnssec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DnssecChoice {
    /// Trust the AD bit of a validating resolver on a loopback address
    /// (`"resolver"`, the default).
    #[default]
    Resolver,
    /// Validate in-process from `trust_anchor` (`"validate"`).
    Validate,
}

/// DNS for outbound mail (`[dns]`): the servers and DNSSEC for DANE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DnsSettings {
    /// The servers (`"127.0.0.1:53"`, `"::1"`); empty: the `nameserver`
    /// lines of /etc/resolv.conf when the queue starts.
    pub servers: Vec<std::net::SocketAddr>,
    /// How DNSSEC status is established.
    pub dnssec: DnssecChoice,
    /// The DNSKEY trust anchor file for `validate` (resolved against the
    /// configuration's directory); `None`: the root zone's keys.
    pub trust_anchor: Option<PathBuf>,
}

impl DnsSettings {
    /// The relay's resolver settings: these servers, or those of
    /// /etc/resolv.conf when none is set.
    pub fn resolver_config(
        &self,
    ) -> Result<postern_relay::DnssecConfig, postern_relay::RelayError> {
        let config = if self.servers.is_empty() {
            postern_relay::DnssecConfig::from_system_conf()?
        } else {
            postern_relay::DnssecConfig::new(self.servers.iter().copied())
        };
        Ok(match self.dnssec {
            DnssecChoice::Resolver => config,
            DnssecChoice::Validate => config.with_mode(postern_relay::DnssecMode::Validate {
                trust_anchor: self.trust_anchor.clone(),
            }),
        })
    }
}

/// `ADDR:PORT`, `[V6]:PORT` or a bare address (port 53).
fn dns_server(text: &str) -> Option<std::net::SocketAddr> {
    text.parse().ok().or_else(|| {
        text.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| std::net::SocketAddr::new(ip, 53))
    })
}

/// Per-message limits, and the per-connection timeouts (`[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLimits {
    /// Largest message in octets (`SIZE`, `552 5.3.4`). Default 25 MiB.
    pub max_message_size: u64,
    /// Most recipients per message (`452 4.5.3`). Default 100.
    pub max_recipients: usize,
    /// Longest wait for the client between commands (`421 4.4.2`).
    /// Default 5 minutes (RFC 5321 §4.5.3.2.7).
    pub command_timeout: Duration,
    /// Longest wait for the next read inside a message body (`421 4.4.2`).
    /// Default 3 minutes.
    pub data_timeout: Duration,
    /// Longest TLS handshake (implicit, or after `STARTTLS`); then the
    /// connection is closed. Default 10 seconds.
    pub handshake_timeout: Duration,
}

impl Default for MessageLimits {
    fn default() -> Self {
        let conn = postern_listener::ConnLimits::default();
        MessageLimits {
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            command_timeout: conn.command_timeout,
            data_timeout: conn.data_timeout,
            handshake_timeout: conn.handshake_timeout,
        }
    }
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
    pub listeners: Vec<ListenerSpec>,
    /// Queue timing.
    pub queue: QueueSettings,
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
    /// The AUTH failure limits (`[auth_limits]`); `None` when disabled.
    pub auth_limits: Option<crate::abuse::AuthLimitSettings>,
    /// The connection rate limits (`[connection_rate]`); `None` when
    /// disabled.
    pub connection_rate: Option<crate::abuse::RateSettings>,
    /// Clients allowed to end command lines with a bare LF
    /// (`[server] bare_lf_networks`; empty by default).
    pub bare_lf_networks: postern_listener::guard::Networks,
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
            let (item, field) = split_item(toml.as_ref(), &path);
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
                let domains = t.domains.clone().unwrap_or_default();
                if domains.is_empty() || domains.iter().any(|d| d.trim().is_empty()) {
                    return Err(err(
                        span,
                        item,
                        Some("domains".into()),
                        "an ACME certificate needs its names, e.g. domains = [\"mx.example.org\"]"
                            .into(),
                    ));
                }
                let Some(directory) = t.directory.clone() else {
                    return Err(err(
                        span,
                        item,
                        Some("directory".into()),
                        "missing: the CA's ACME directory URL, e.g. \"https://acme-v02.api.letsencrypt.org/directory\"".into(),
                    ));
                };
                if !directory.starts_with("https://") {
                    return Err(err(
                        span,
                        item,
                        Some("directory".into()),
                        format!(
                            "{directory:?}: ACME directories are https:// URLs (RFC 8555 §6.1)"
                        ),
                    ));
                }
                let mut acme = postern_listener::acme::AcmeConfig::new(domains, directory)
                    .with_contact(t.contact.clone().unwrap_or_default())
                    .with_ca_file(t.ca_file.as_deref().map(resolve));
                if let Some(addr) = t.challenge_address {
                    acme = acme.with_challenge_address(addr);
                }
                if let Some(retry) = t.retry {
                    acme = acme.with_retry(retry.0);
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

        // Listeners.
        let mut listeners: Vec<ListenerSpec> = Vec::new();
        for (i, l) in parsed.listener.iter().enumerate() {
            let span = Some(l.span());
            let l = l.get_ref();
            let item = Some(format!("listener[{i}] {:?}", l.name));
            if l.name.is_empty() || listeners.iter().any(|x| x.name == l.name) {
                return Err(err(
                    span,
                    item,
                    Some("name".into()),
                    "must be unique and not empty".into(),
                ));
            }
            let addr: SocketAddr = l.address.parse().map_err(|_| {
                err(
                    span.clone(),
                    item.clone(),
                    Some("address".into()),
                    format!("{:?} is not an ip:port address", l.address),
                )
            })?;
            let mode = match l.mode {
                ModeFile::Plain => Mode::Plain,
                ModeFile::Starttls => Mode::StartTls {
                    required: l.require_tls,
                },
                ModeFile::Implicit => Mode::Implicit,
            };
            if l.require_tls && !matches!(l.mode, ModeFile::Starttls) {
                return Err(err(
                    span,
                    item,
                    Some("require_tls".into()),
                    "only meaningful with mode = \"starttls\" (implicit TLS is always TLS; plain never is)".into(),
                ));
            }
            let tls_spec = match (&l.tls, l.mode) {
                (None, ModeFile::Plain) => None,
                (Some(_), ModeFile::Plain) => {
                    return Err(err(
                        span,
                        item,
                        Some("tls".into()),
                        "a plain listener does not use TLS; remove `tls` or use mode = \"starttls\"".into(),
                    ));
                }
                (None, _) => {
                    return Err(err(
                        span,
                        item,
                        Some("tls".into()),
                        "missing: STARTTLS and implicit listeners need a [tls.NAME] policy".into(),
                    ));
                }
                (Some(name), _) => Some(tls.get(name).cloned().ok_or_else(|| {
                    let known: Vec<&str> = tls.keys().map(String::as_str).collect();
                    err(
                        span.clone(),
                        item.clone(),
                        Some("tls".into()),
                        format!(
                            "no [tls.{name}] table (defined: {})",
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        ),
                    )
                })?),
            };
            for (field, value) in [
                ("max_connections", l.max_connections),
                ("max_connections_per_ip", l.max_connections_per_ip),
            ] {
                if value == Some(0) {
                    return Err(err(
                        span,
                        item,
                        Some(field.into()),
                        "must be at least 1 (0 would refuse every connection)".into(),
                    ));
                }
            }
            let proxy = match &l.proxy_protocol {
                None => None,
                Some(p) => {
                    let key = Some("proxy_protocol.trusted".into());
                    let proxy = ProxyProtocol::from_trusted(&p.trusted)
                        .map_err(|e| err(span.clone(), item.clone(), key, e.to_string()))?;
                    Some(
                        p.header_timeout
                            .map_or(proxy.clone(), |d| proxy.with_header_timeout(d.0)),
                    )
                }
            };
            let defaults = postern_listener::ConnLimits::default();
            let connection_rate = match &l.connection_rate {
                None => None,
                Some(w) => Some(
                    crate::abuse::windows("connection_rate", w)
                        .map_err(|(s, f, m)| err(s.or(span.clone()), item.clone(), Some(f), m))?,
                ),
            };
            listeners.push(ListenerSpec {
                name: l.name.clone(),
                addr,
                mode,
                tls: tls_spec,
                require_auth: l.require_auth,
                max_connections: l.max_connections.unwrap_or(defaults.global),
                max_connections_per_ip: l.max_connections_per_ip.unwrap_or(defaults.per_ip),
                proxy,
                connection_rate,
            });
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
        let dq = QueueSettings::default();
        let queue = QueueSettings {
            max_age: parsed.queue.max_age.map_or(dq.max_age, |d| d.0),
            retry_initial: parsed.queue.retry_initial.map_or(dq.retry_initial, |d| d.0),
            retry_max: parsed.queue.retry_max.map_or(dq.retry_max, |d| d.0),
            retry_factor: match parsed.queue.retry_factor {
                None => dq.retry_factor,
                Some(f) if f.is_finite() && f >= 1.0 => f,
                Some(f) => {
                    return Err(err(
                        None,
                        None,
                        Some("queue.retry_factor".into()),
                        format!("retry_factor must be a number of at least 1, not {f}"),
                    ));
                }
            },
            scan_interval: parsed.queue.scan_interval.map_or(dq.scan_interval, |d| d.0),
            delay_warning: parsed.queue.delay_warning.map_or(dq.delay_warning, |d| d.0),
        };
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
                Some(st.lease.map_or(pg.clone(), |l| pg.with_lease(l.0)))
            }
            Some(st) => {
                let msg = format!("kind must be \"log\" or \"postgres\", not {:?}", st.kind);
                return Err(err(None, None, Some("store.kind".into()), msg));
            }
        };
        let dl = MessageLimits::default();
        let limits = MessageLimits {
            max_message_size: parsed
                .limits
                .max_message_size
                .unwrap_or(dl.max_message_size),
            max_recipients: parsed
                .limits
                .max_recipients
                .unwrap_or(dl.max_recipients)
                .max(1),
            command_timeout: parsed
                .limits
                .command_timeout
                .map_or(dl.command_timeout, |d| d.0),
            data_timeout: parsed.limits.data_timeout.map_or(dl.data_timeout, |d| d.0),
            handshake_timeout: parsed
                .limits
                .handshake_timeout
                .map_or(dl.handshake_timeout, |d| d.0),
        };
        for (field, d) in [
            ("limits.command_timeout", limits.command_timeout),
            ("limits.data_timeout", limits.data_timeout),
            ("limits.handshake_timeout", limits.handshake_timeout),
        ] {
            if d.is_zero() {
                return Err(err(
                    None,
                    None,
                    Some(field.into()),
                    "must be longer than 0 (0 would time out every connection at once)".into(),
                ));
            }
        }

        // DNS.
        let dns_err =
            |field: &str, message: String| err(None, None, Some(format!("dns.{field}")), message);
        let mut servers = Vec::new();
        for text in parsed.dns.servers.iter().flatten() {
            servers.push(dns_server(text).ok_or_else(|| {
                dns_err(
                    "servers",
                    format!("{text:?} is not ADDRESS, ADDRESS:PORT or [IPv6]:PORT"),
                )
            })?);
        }
        let dnssec = match parsed.dns.dnssec.as_deref() {
            None | Some("resolver") => DnssecChoice::Resolver,
            Some("validate") => DnssecChoice::Validate,
            Some(other) => {
                return Err(dns_err(
                    "dnssec",
                    format!("{other:?}: expected \"resolver\" or \"validate\""),
                ));
            }
        };
        if parsed.dns.trust_anchor.is_some() && dnssec != DnssecChoice::Validate {
            return Err(dns_err(
                "trust_anchor",
                "a trust anchor is used only with dnssec = \"validate\"".into(),
            ));
        }
        let dns = DnsSettings {
            servers,
            dnssec,
            trust_anchor: parsed.dns.trust_anchor.as_deref().map(resolve),
        };
        // MTA-STS: on by default, cache under the data directory.
        let sts_err = |f: &str, e: String| err(None, None, Some(format!("mta_sts.{f}")), e);
        let anchors = match &parsed.mta_sts.trust_anchors {
            None => Anchors::WebPki,
            Some(AnchorsFile::Name(n)) if n == "system" => Anchors::WebPki,
            Some(AnchorsFile::Name(n)) => {
                let e = format!("{n:?}: expected \"system\" or a list of PEM files");
                return Err(sts_err("trust_anchors", e));
            }
            Some(AnchorsFile::Files(f)) => {
                let files: Vec<PathBuf> = f.iter().map(|p| resolve(p)).collect();
                postern_relay::mta_sts::anchors_from_pem_files(&files)
                    .map_err(|e| sts_err("trust_anchors", e.to_string()))?
            }
        };
        let cache_dir =
            (parsed.mta_sts.cache_dir.as_deref()).map_or_else(|| data_dir.join("mta-sts"), resolve);
        let mta_sts = (parsed.mta_sts.enabled != Some(false))
            .then(|| postern_relay::mta_sts::StsSettings::new(cache_dir, anchors));
        // Abuse limits.
        let abuse_err = |(span, field, message): crate::abuse::AbuseError| {
            err(span, None, Some(field), message)
        };
        let auth_limits = parsed.auth_limits.settings().map_err(abuse_err)?;
        let connection_rate = parsed.connection_rate.settings().map_err(abuse_err)?;
        let bare_lf_networks =
            crate::abuse::bare_lf_networks(parsed.server.bare_lf_networks.as_ref())
                .map_err(abuse_err)?;

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
            queue,
            store,
            limits,
            metrics: parsed.metrics.map(|m| m.address),
            dns,
            mta_sts,
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
    pub fn listener(&self, name: &str) -> Option<&ListenerSpec> {
        self.listeners.iter().find(|l| l.name == name)
    }
}

/// Splits a serde path like `listener[1].mode` into the item
/// (`listener[1] "name"`, `rule #2 "name"`) and the field inside it.
fn split_item(toml: Option<&TomlSource<'_>>, path: &str) -> (Option<String>, Option<String>) {
    if path.is_empty() || path == "." {
        return (None, None);
    }
    for key in ["rule", "listener", "domain"] {
        if let Some(rest) = path.strip_prefix(key).and_then(|r| r.strip_prefix('['))
            && let Some((n, field)) = rest.split_once(']')
            && let Ok(i) = n.parse::<usize>()
        {
            let name = toml.and_then(|t| t.item_name(key, i));
            let label = if key == "rule" {
                format!("rule #{}", i + 1)
            } else {
                format!("{key}[{i}]")
            };
            let item = match name {
                Some(n) => format!("{label} {n:?}"),
                None => label,
            };
            let field = field.trim_start_matches('.');
            return (Some(item), (!field.is_empty()).then(|| field.to_owned()));
        }
    }
    (None, Some(path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
