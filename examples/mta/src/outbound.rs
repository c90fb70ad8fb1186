//! The MTA's side of the outbound queue: a [`Router`] that asks the rules
//! for each recipient's route and TLS policy, and [`spawn`], which starts
//! the [`postern_queue`] runner with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postern_proto::{ForwardPath, TlsVersion};
use postern_queue::report::Diagnosis;
use postern_queue::runner::{DeliveryObserver, Router, Runner, RunnerHandle, RunnerSettings};
use postern_queue::tlsrpt;
use postern_queue::{Envelope, RecipientState, SpoolBounces, Store};
use postern_relay::mta_sts::StsResolver;
use postern_relay::{
    Anchors, DnssecResolver, PasswordFileError, RelayCredentials, Route, Target, TlsMode, TlsPolicy,
};
use postern_rules::{Destination, Facts, RelayAuth, RelayTlsMode, RuleSet, Stage, TrustAnchors};
use rustls::crypto::CryptoProvider;

use crate::Shutdown;
use crate::config::MtaConfig;

/// The runner the MTA uses.
pub type MtaRunner = Runner<RulesRouter, SpoolBounces>;

/// Starts the outbound queue runner for the MTA and returns its task and
/// a handle for the queue tools ([`RunnerHandle`]).
///
/// Call it once, from within a tokio runtime, after the spool is open:
/// `outbound::spawn(spool.clone(), config.clone(), shutdown.clone(), None).0`;
/// `observer` (the metrics) is told every delivery attempt.
/// It uses the system DNS resolver (port 25 for MX hosts), the ring crypto
/// provider and the settings of [`settings_from_config`]. The task scans the
/// spool every `queue.scan_interval` and returns once `shutdown` is true
/// (or its sender is dropped) and in-flight deliveries finished or were
/// abandoned after the grace period; await the handle to know the queue is
/// consistent.
pub fn spawn(
    spool: Arc<dyn Store>,
    config: Arc<MtaConfig>,
    shutdown: Shutdown,
    observer: Option<Arc<dyn DeliveryObserver>>,
) -> (tokio::task::JoinHandle<()>, RunnerHandle) {
    let (router, dane, sts, provider) = parts(&config, false);
    let mut runner = Runner::new(
        spool.clone(),
        settings_from_config(&config),
        router,
        bounces(spool.clone(), &config),
    );
    if let Some(resolver) = dane.clone() {
        runner = runner.with_dane_resolver(resolver);
    }
    if let Some(sts) = sts {
        runner = runner.with_mta_sts(sts);
    }
    if let Some(o) = observer {
        runner = runner.with_observer(o);
    }
    // TLS-RPT: sessions counted under DATA_DIR/tlsrpt, reports sent
    // hourly for finished days (HTTPS with the MTA-STS client).
    let https = (config.mta_sts.as_ref().zip(dane.clone()))
        .and_then(|(s, dns)| s.fetcher(dns, provider).ok());
    let dns = dane.map(|d| d as Arc<dyn postern_relay::Resolver>);
    match tlsrpt::start(
        config.data_dir.join("tlsrpt"),
        config.tls_report.clone(),
        spool,
        dns,
        https,
    ) {
        Ok(recorder) => runner = runner.with_observer(recorder),
        Err(e) => tracing::error!(error = %e, "TLS-RPT is off"),
    }
    let handle = runner.handle();
    (tokio::spawn(runner.run(shutdown)), handle)
}

type Parts = (
    RulesRouter,
    Option<Arc<DnssecResolver>>,
    Option<Arc<StsResolver>>,
    Arc<CryptoProvider>,
);

/// What the runner delivers with: the router, the DNSSEC-aware resolver
/// (DANE), MTA-STS and the crypto provider.
fn parts(config: &MtaConfig, read_only: bool) -> Parts {
    let mut router = RulesRouter::from_config(config);
    let dane = dane_resolver(config);
    router.dane = dane.is_some();
    let provider = Arc::new(postern_relay::default_provider());
    let sts = match (&config.mta_sts, &dane) {
        (Some(s), Some(dns)) => s
            .clone()
            .read_only(read_only)
            .build(dns.clone(), provider.clone())
            .inspect_err(|e| tracing::error!(error = %e, "outbound: MTA-STS is off"))
            .ok()
            .map(Arc::new),
        _ => None,
    };
    router.mta_sts = sts.is_some();
    (router, dane, sts, provider)
}

/// `explain --live`: the outbound TLS plan for `rcpt` of `env` now, as
/// the runner would route it and the relay deliver it (live DNS, DNSSEC,
/// TLSA and MTA-STS lookups; nothing is sent).
pub async fn explain_live(config: &MtaConfig, env: &Envelope, rcpt: &RecipientState) -> String {
    // The MTA-STS cache is read, not written: it is the server's.
    let (router, dane, sts, provider) = parts(config, true);
    let route = match router.route(env, rcpt) {
        Ok(r) => r,
        Err(d) => return format!("no route now: {d}\n"),
    };
    let (Some(dns), Ok(host)) = (dane, postern_proto::Host::parse(&config.hostname)) else {
        return "no DNS resolver ([dns]) or no valid hostname: nothing to look up\n".into();
    };
    let session = postern_relay::SessionConfig::new(host.into_owned());
    let mut relay =
        postern_relay::Relay::new(session, provider, dns.clone()).with_dane_resolver(dns);
    if let Some(sts) = sts {
        relay = relay.with_mta_sts(sts);
    }
    relay.explain(&route).await.to_string()
}

/// The DNSSEC-aware resolver of `[dns]`, for DANE; `None` (logged) when it
/// cannot be set up: DANE routes then use their fallback, `dane-only`
/// routes defer.
pub fn dane_resolver(config: &MtaConfig) -> Option<Arc<DnssecResolver>> {
    match config.dns.resolver_config().and_then(DnssecResolver::new) {
        Ok(r) => Some(Arc::new(r)),
        Err(e) => {
            tracing::error!(error = %e, "outbound: no DNSSEC-aware resolver; DANE is off");
            None
        }
    }
}

/// Reports from our host name; senders in a local domain get theirs by
/// local delivery.
pub fn bounces(spool: Arc<dyn Store>, config: &MtaConfig) -> SpoolBounces {
    SpoolBounces::new(spool, config.hostname.clone())
        .local_domains(config.domains.iter().map(|d| d.name.clone()))
}

/// The runner settings `main` uses: host name and queue timing from
/// `config` (retry delays grow by `retry_factor` from `retry_initial` up to
/// `retry_max`; `max_age`; `scan_interval`; `delay_warning`).
pub fn settings_from_config(config: &MtaConfig) -> RunnerSettings {
    RunnerSettings::new(config.hostname.clone()).with_schedule(&config.queue)
}

/// Routes each recipient as the rules' relay plan says: smart host or MX,
/// TLS mode, versions, trust anchors and smart-host credentials.
#[derive(Debug, Clone)]
pub struct RulesRouter {
    /// The rules, evaluated at the `rcpt` stage with the facts the envelope
    /// kept (sender, recipient, relaying, inbound TLS, user, listener...).
    pub rules: Arc<RuleSet>,
    /// The port MX hosts are contacted on (25; tests use another).
    pub mx_port: u16,
    /// Where relative trust-anchor file names (`relay_trust_anchors`) are
    /// resolved from: the configuration file's directory.
    pub base_dir: PathBuf,
    /// DANE takes precedence (issue 13): with a DNSSEC-aware resolver,
    /// MX routes whose rules say `none`, `opportunistic` or `required` get
    /// DANE where the destination is signed, and that mode elsewhere
    /// ([`TlsMode::under_dane`]). Off in [`RulesRouter::new`].
    pub dane: bool,
    /// MTA-STS for MX routes (`[mta_sts]`): the default outbound policy
    /// is DANE, else MTA-STS, else the rules' mode. Off in
    /// [`RulesRouter::new`]; `relay_tls = "mta-sts"` asks for it anyway.
    pub mta_sts: bool,
}

impl RulesRouter {
    /// A router over `rules`, MX on port 25, trust anchors relative to the
    /// working directory.
    pub fn new(rules: Arc<RuleSet>) -> Self {
        RulesRouter {
            rules,
            mx_port: 25,
            base_dir: PathBuf::from("."),
            dane: false,
            mta_sts: false,
        }
    }

    /// The router of `config`: its rules; relative trust-anchor files are
    /// resolved from the configuration file's directory.
    pub fn from_config(config: &MtaConfig) -> Self {
        let base_dir = Path::new(&config.source)
            .parent()
            .filter(|_| config.source != crate::config::EMBEDDED)
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let mut r = RulesRouter::new(config.rules().clone());
        r.base_dir = base_dir;
        r
    }
}

impl Router for RulesRouter {
    fn route(&self, env: &Envelope, r: &RecipientState) -> Result<Route, Diagnosis> {
        let facts = facts_for(env, r);
        let outcome = self.rules.evaluate(Stage::Rcpt, &facts);
        let plan = outcome.relay;
        let target = match plan.route {
            Destination::SmartHost { host, port } => match plan.auth {
                // Read at each use, so a fixed (or a loosened) file counts
                // at once; a bad one defers: the operator fixes it.
                Some(a) => Target::smart_host(host.clone(), *port).with_auth(
                    credentials(&self.base_dir, a)
                        .map_err(|e| Diagnosis::misconfigured(&e.to_string()))?,
                ),
                None => Target::smart_host(host.clone(), *port),
            },
            // MX (an address literal is the host itself), and any
            // destination kind this router does not know yet.
            _ => Target::for_host(r.host(), self.mx_port),
        };
        let anchors = || -> Result<Anchors, Diagnosis> {
            match plan.trust_anchors {
                TrustAnchors::System => Ok(Anchors::WebPki),
                // A problem defers the mail, it never widens trust.
                TrustAnchors::Files(files) => {
                    Anchors::from_pem_files(files.iter().map(|f| self.base_dir.join(f)))
                        .map_err(|e| Diagnosis::misconfigured(&e.to_string()))
                }
                other => Err(Diagnosis::misconfigured(&format!(
                    "trust anchors {other} are not supported by this MTA"
                ))),
            }
        };
        let mode = match plan.tls {
            RelayTlsMode::None => TlsMode::None,
            RelayTlsMode::Opportunistic => TlsMode::Opportunistic,
            RelayTlsMode::Required => TlsMode::Required,
            RelayTlsMode::Verified => TlsMode::Verified {
                anchors: anchors()?,
            },
            RelayTlsMode::Implicit => TlsMode::Implicit {
                anchors: Some(anchors()?),
            },
            RelayTlsMode::Dane => TlsMode::dane(),
            RelayTlsMode::DaneOnly => TlsMode::DaneOnly,
            RelayTlsMode::MtaSts => TlsMode::Opportunistic,
            other => {
                return Err(Diagnosis::misconfigured(&format!(
                    "relay TLS mode {other} is not supported by this MTA"
                )));
            }
        };
        let is_mx = matches!(target, Target::Mx { .. });
        let sts = is_mx && (self.mta_sts || plan.tls == RelayTlsMode::MtaSts);
        let mode = if self.dane && is_mx {
            mode.under_dane()
        } else {
            mode
        };
        // The versions as asked, including ones rustls cannot speak: the
        // relay reports those and refuses an empty set (never widens it).
        let versions: Vec<TlsVersion> = plan.requested_versions.iter().collect();
        Ok(Route::new(
            target,
            TlsPolicy::new(mode)
                .with_versions(versions)
                .with_mta_sts(sts),
        ))
    }
}

/// The credentials `auth` names, the password read from its file (relative
/// to `base`); refused when group or others may read the file.
pub fn credentials(base: &Path, auth: &RelayAuth) -> Result<RelayCredentials, PasswordFileError> {
    RelayCredentials::from_password_file(auth.user(), base.join(auth.password_file()))
}

/// The rule facts for relaying recipient `r` of `env`: what the inbound
/// side knew when it accepted the message.
fn facts_for(env: &Envelope, r: &RecipientState) -> Facts {
    let mut facts = Facts::new()
        .relaying(true)
        .tls(env.tls_version.is_some())
        .smtputf8(env.params.smtputf8)
        .sender(env.sender.clone())
        .recipient(ForwardPath::Mailbox(r.address.clone()));
    if let Some(v) = env.tls_version {
        facts = facts.tls_version(v);
    }
    if let Some(c) = &env.tls_cipher {
        facts = facts.cipher(c);
    }
    if let Some(l) = &env.listener {
        facts = facts.listener(l);
    }
    if let Some(h) = &env.helo {
        facts = facts.helo(h);
    }
    if let Some(u) = &env.auth_user {
        facts = facts.user(u);
    } else {
        facts = facts.authenticated(false);
    }
    if let Some(ip) = env.peer_ip() {
        facts = facts.remote_ip(ip);
    }
    if let Some(size) = env.params.size {
        facts = facts.size(size);
    }
    if let Some(b) = env.params.body {
        facts = facts.body(b);
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn test_router(rules: &str) -> (RulesRouter, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "postern-outbound-unit-{}-{}",
            std::process::id(),
            rules.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = RuleSet::from_toml_str(rules, "unit.rules.toml").unwrap();
        let mut router = RulesRouter::new(Arc::new(rules));
        router.base_dir = dir.clone();
        (router, dir)
    }

    fn envelope(sender: &str, rcpt: &str, tls: Option<&str>) -> Envelope {
        let id = "0000000000000000000000000a".parse().unwrap();
        let mailbox = |a: &str| postern_proto::Mailbox::parse(a).unwrap().into_owned();
        let mut env = Envelope::new(id, postern_proto::ReversePath::Mailbox(mailbox(sender)));
        env.tls_version = tls.and_then(postern_proto::TlsVersion::from_name);
        env.recipients
            .push(RecipientState::pending(mailbox(rcpt), false));
        env
    }

    #[test]
    fn the_guides_relay_rule_becomes_an_implicit_tls_route_with_tls12_only() {
        let (router, dir) = test_router(
            r#"
[[rule]]
name = "use_only_tls11_and_12_when_relaying"
conditions = [{ relaying = true }, { recipient_domain = { is = "example.com" } }]
actions = [
  { relay_host = "smtp.example.net:465" },
  { relay_tls = "implicit" },
  { relay_tls_versions = ["TLSv1.1", "TLSv1.2"] },
]

[[rule]]
name = "plaintext_submissions_must_use_tls"
conditions = [{ relaying = true }, { tls = false }, { recipient_domain = { is = "example.org" } }]
actions = [{ relay_tls = "required" }]
"#,
        );
        let env = envelope("alice@local.test", "dave@Example.COM", Some("TLSv1.3"));
        let route = router.route(&env, &env.recipients[0]).unwrap();
        assert_eq!(
            route.target,
            Target::SmartHost {
                host: "smtp.example.net".into(),
                port: 465,
                auth: None,
                allow_plaintext_auth: false
            }
        );
        assert_eq!(
            route.tls.mode,
            TlsMode::Implicit {
                anchors: Some(Anchors::WebPki)
            }
        );
        let versions = route.tls.versions();
        assert_eq!(versions.effective, [TlsVersion::Tls12]);
        assert_eq!(versions.unsupported, [TlsVersion::Tls11]);

        // Other domains: MX, opportunistic; the inbound TLS fact is used.
        let env = envelope("alice@local.test", "erin@example.org", Some("TLSv1.3"));
        let route = router.route(&env, &env.recipients[0]).unwrap();
        assert_eq!(
            route.target,
            Target::Mx {
                domain: "example.org".into(),
                port: 25
            }
        );
        assert_eq!(route.tls.mode, TlsMode::Opportunistic);
        let env = envelope("alice@local.test", "erin@example.org", None);
        let route = router.route(&env, &env.recipients[0]).unwrap();
        assert_eq!(route.tls.mode, TlsMode::Required);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn address_literals_go_to_the_address() {
        let (router, dir) = test_router(
            r#"
[[rule]]
name = "nothing"
conditions = [{ relaying = true }, { recipient_domain = { is = "nowhere.example" } }]
actions = [{ relay_tls = "required" }]
"#,
        );
        let env = envelope("alice@local.test", "bob@[192.0.2.7]", None);
        let route = router.route(&env, &env.recipients[0]).unwrap();
        assert_eq!(route.target, Target::smart_host("[192.0.2.7]", 25));
        let env = envelope("alice@local.test", "bob@[IPv6:2001:db8::7]", None);
        let route = router.route(&env, &env.recipients[0]).unwrap();
        assert_eq!(route.target, Target::smart_host("[2001:db8::7]", 25));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn unreadable_trust_anchors_defer_rather_than_widen() {
        let (router, dir) = test_router(
            r#"
[[rule]]
name = "verified"
conditions = [{ relaying = true }]
actions = [{ relay_tls = "verified" }, { relay_trust_anchors = ["nope.pem"] }]
"#,
        );
        let env = envelope("alice@local.test", "bob@example.net", None);
        let err = router.route(&env, &env.recipients[0]).unwrap_err();
        assert_eq!(err.status.to_string(), "4.3.5");
        std::fs::write(dir.join("nope.pem"), "not a certificate").unwrap();
        let err = router.route(&env, &env.recipients[0]).unwrap_err();
        assert_eq!(err.status.to_string(), "4.3.5");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[cfg(unix)]
    #[test]
    fn relay_auth_reads_an_owner_only_password_file_and_never_shows_it() {
        use std::os::unix::fs::PermissionsExt;
        let (router, dir) = test_router(
            r#"
[[rule]]
name = "provider"
conditions = [{ relaying = true }]
actions = [
  { relay_host = "smtp.provider.example:587" },
  { relay_tls = "required" },
  { relay_auth = { user = "me@provider.example", password_file = "provider.pw" } },
]
"#,
        );
        let pw = dir.join("provider.pw");
        std::fs::write(&pw, "s3cret-pw\n").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = envelope("alice@local.test", "bob@example.net", None);
        let route = router.route(&env, &env.recipients[0]).unwrap();
        let Target::SmartHost {
            auth: Some(creds),
            allow_plaintext_auth,
            ..
        } = &route.target
        else {
            panic!("no credentials: {route:?}")
        };
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("me@provider.example", "s3cret-pw")
        );
        assert!(!allow_plaintext_auth, "credentials go over TLS only");
        assert!(!format!("{route:?}").contains("s3cret"), "{route:?}");

        // Readable by the group: refused at use, naming the file; deferred.
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = router.route(&env, &env.recipients[0]).unwrap_err();
        assert_eq!(
            err.status,
            postern_proto::EnhancedCode::new(4, 3, 5).unwrap()
        );
        let text = err.to_string();
        assert!(text.contains(&pw.display().to_string()), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_readable_password_file_fails_the_config_load_naming_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("postern-pwcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pw = dir.join("smarthost.pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
        let src = r#"
[[listener]]
name = "mta"
address = "127.0.0.1:2525"
mode = "plain"

[[rule]]
name = "provider"
actions = [
  { relay_host = "smtp.provider.example:587" },
  { relay_tls = "required" },
  { relay_auth = { user = "me", password_file = "smarthost.pw" } },
]
"#;
        let err = MtaConfig::from_toml_str(src, "t.toml", &dir).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&pw.display().to_string()), "{text}");
        assert!(text.contains("readable by the server user only"), "{text}");
        assert!(text.contains("rule #1 \"provider\""), "{text}");
        assert!(text.contains("actions[2].relay_auth"), "{text}");
        assert!(text.starts_with("t.toml:12:"), "{text}");
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(MtaConfig::from_toml_str(src, "t.toml", &dir).is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn mx_routes_ask_for_mta_sts_by_default_and_rules_can_ask_for_it() {
        let (mut router, dir) = test_router(
            r#"
[[rule]]
name = "smart"
conditions = [{ relaying = true }, { recipient_domain = { is = "via-relay.example" } }]
actions = [{ relay_host = "smtp.example.net:587" }, { relay_tls = "required" }]

[[rule]]
name = "sts"
conditions = [{ relaying = true }, { recipient_domain = { is = "sts.example" } }]
actions = [{ relay_tls = "mta-sts" }]
"#,
        );
        let route = |router: &RulesRouter, rcpt: &str| {
            let env = envelope("alice@local.test", rcpt, None);
            router.route(&env, &env.recipients[0]).unwrap()
        };
        // Off (RulesRouter::new): only the rule's mode asks for it.
        assert!(!route(&router, "bob@example.org").tls.mta_sts);
        let sts = route(&router, "bob@sts.example");
        assert!(sts.tls.mta_sts);
        assert_eq!(sts.tls.mode, TlsMode::Opportunistic);
        // On ([mta_sts] enabled): every MX route; smart hosts and
        // address literals never.
        router.mta_sts = true;
        router.dane = true;
        let mx = route(&router, "bob@example.org");
        assert!(mx.tls.mta_sts);
        assert_eq!(mx.tls.mode, TlsMode::dane());
        assert!(!route(&router, "bob@via-relay.example").tls.mta_sts);
        assert!(!route(&router, "bob@[192.0.2.7]").tls.mta_sts);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn mta_sts_settings_come_from_the_config_and_bad_ones_name_the_field() {
        let dir = std::env::temp_dir().join(format!("postern-stscfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = |table: &str| {
            format!(
                "[server]\ndata_dir = \"data\"\n[[listener]]\nname = \"mta\"\naddress = \"127.0.0.1:2525\"\nmode = \"plain\"\n{table}"
            )
        };
        let load = |table: &str| MtaConfig::from_toml_str(&src(table), "t.toml", &dir);
        // Default: on, cache under the data directory, the system's roots.
        let sts = load("").unwrap().mta_sts.expect("on by default");
        assert_eq!(sts.cache_dir, dir.join("data").join("mta-sts"));
        assert_eq!(sts.anchors, Anchors::WebPki);
        assert!(
            load("[mta_sts]\nenabled = false\n")
                .unwrap()
                .mta_sts
                .is_none()
        );
        let sts = load("[mta_sts]\ncache_dir = \"/var/cache/sts\"\n")
            .unwrap()
            .mta_sts
            .unwrap();
        assert_eq!(sts.cache_dir, Path::new("/var/cache/sts"));
        // Test CA files, relative to the configuration's directory.
        let pki = postern_testkit::dev_pki(&["mx.example"]);
        std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
        let sts = load("[mta_sts]\ntrust_anchors = [\"ca.pem\"]\n")
            .unwrap()
            .mta_sts
            .unwrap();
        assert!(matches!(sts.anchors, Anchors::Custom(c) if c.len() == 1));
        for (table, says) in [
            ("[mta_sts]\ntrust_anchors = \"mozilla\"\n", "\"mozilla\""),
            ("[mta_sts]\ntrust_anchors = [\"nope.pem\"]\n", "nope.pem"),
            ("[mta_sts]\nenabled = \"yes\"\n", "enabled"),
            ("[mta_sts]\nttl = 3\n", "ttl"),
        ] {
            let text = load(table).unwrap_err().to_string();
            assert!(text.starts_with("t.toml"), "{text}");
            assert!(text.contains("mta_sts"), "{text}");
            assert!(text.contains(says), "{text}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn settings_come_from_the_config() {
        let src = |factor: &str| {
            format!(
                r#"
[server]
hostname = "mx.example.org"
[[domain]]
name = "example.org"
[[listener]]
name = "mta"
address = "127.0.0.1:2525"
mode = "plain"
[queue]
max_age = "2d"
retry_initial = "1m"
retry_max = "2h"
retry_factor = {factor}
scan_interval = "3s"
delay_warning = "90m"
"#
            )
        };
        let config =
            MtaConfig::from_toml_str(&src("3"), "t.toml", Path::new("/etc/postern")).unwrap();
        let s = settings_from_config(&config);
        assert_eq!(s.hostname, "mx.example.org");
        assert_eq!(s.retry.initial, Duration::from_secs(60));
        assert_eq!(s.retry.factor, 3.0);
        assert_eq!(s.retry.cap, Duration::from_secs(7200));
        assert_eq!(s.retry.max_age, Duration::from_secs(2 * 86_400));
        assert_eq!(s.scan_interval, Duration::from_secs(3));
        assert_eq!(s.delay_warning, Duration::from_secs(5400));
        assert_eq!(s.retry.delay(2), Duration::from_secs(180));
        let err = MtaConfig::from_toml_str(&src("0.5"), "t.toml", Path::new("")).unwrap_err();
        assert!(err.to_string().contains("retry_factor"), "{err}");
    }
}
