//! The outbound queue runner: relays queued mail to remote domains under the
//! rules' route and TLS policy, retries with exponential backoff, and bounces
//! (RFC 3464, see [`crate::dsn`]) on permanent failure or expiry.
//!
//! # Entry points
//! - [`spawn`]`(spool, config, shutdown)`: what `main` calls. Starts a
//!   [`Runner`] built from the configuration on the current tokio runtime
//!   and returns its `JoinHandle`. The task ends after `shutdown` fires and
//!   in-flight deliveries finished (or the grace period ran out).
//! - [`Runner`]: the same engine with everything injectable (resolver,
//!   crypto provider, clock, retry schedule), for tests and embedders.
//!   [`Runner::run_once`] does one deterministic pass.
//!
//! # One pass
//! 1. List the spool (held messages are skipped: local delivery or another
//!    pass is working on them), **hold** each candidate, load its envelope.
//!    A message is due when it has an open (`Pending`/`Deferred`) remote
//!    recipient and `next_attempt` has come. The runner remembers when each
//!    message it has seen is next due, so a scan re-reads only due ones.
//! 2. For each open remote recipient, evaluate the rules at the `rcpt` stage
//!    with the facts the envelope kept (sender, recipient, relaying, inbound
//!    TLS, user, listener...). The relay plan gives the route (smart host or
//!    MX), TLS mode, versions and trust anchors; it becomes a
//!    [`postern_relay::Route`]. Recipients with equal routes are grouped,
//!    across messages, so one connection per route carries them all
//!    ([`Relay::deliver`] tries the route's hosts in order).
//! 3. As each route finishes, its results are written to the envelopes
//!    ([`Spool::update`], atomic): `Delivered` only on a 2xx reply to the end
//!    of data, `Deferred` on a transient failure. Permanent failures are
//!    kept in memory until step 4 so a crash can never mark a recipient
//!    failed without its DSN queued (it is retried and fails again instead).
//! 4. When all of a message's routes are done: `attempts += 1`; recipients
//!    that failed permanently, and, once the message is older than the
//!    maximum age, those still deferred, get a DSN to the sender (never to the
//!    null sender, never when `NOTIFY` excludes failures), queued through the
//!    spool with the null sender, *then* they are marked `Failed`. The next
//!    attempt is scheduled by the backoff (never after the expiry time, so
//!    the last try happens at expiry). A finished message is removed.
//!    Recipients delivered to a server without DSN support whose `NOTIFY`
//!    includes `SUCCESS` get a "relayed" report (RFC 3461 §4).
//!
//! [`Runner::run`] starts a pass every `scan_interval`; passes may overlap
//! (up to `concurrent_passes`), each skipping what the others hold, so a
//! tarpitting server delays only its own messages.
//!
//! State lives only in the spool: a new runner on the same spool continues
//! where the last one stopped. An interrupted delivery leaves its recipients
//! as they were, so they are retried; a duplicate is possible, a loss is not.
//!
//! # Logs
//! One `tracing` line per recipient per attempt (target
//! `postern_mta::outbound`): queue id, recipient, host, TLS version, cipher
//! and verification, result and the reply.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use postern_proto::{
    AddressLiteral, ForwardPath, Host, Mailbox, Orcpt, RcptParams, ReversePath, TlsVersion,
};
use postern_relay::{
    Anchors, BoxFuture, HickoryResolver, Message, MessageResult, MxRecord, Recipient, Relay,
    ResolveError, Resolver, Route, SessionConfig, Target, Timeouts, TlsMode, TlsPolicy,
};
use postern_rules::{Destination, Facts, RelayTlsMode, RuleSet, Stage, TrustAnchors};
use rustls::crypto::CryptoProvider;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Shutdown;
use crate::config::Config;
use crate::dsn::{self, Action, Diagnosis, RecipientReport};
use crate::spool::{BodyType, Envelope, Notify, QueueId, RcptStatus, RecipientState, Ret, Spool};

/// Starts the outbound queue runner for the MTA and returns its task.
///
/// Call it once, from within a tokio runtime, after the spool is open:
/// `outbound::spawn(spool.clone(), config.clone(), shutdown.clone())`.
/// It uses the system DNS resolver (port 25 for MX hosts), the ring crypto
/// provider and the settings of [`OutboundSettings::from_config`]. The task
/// scans the spool every `queue.scan_interval` and returns once `shutdown`
/// is true (or its sender is dropped) and in-flight deliveries finished
/// or were abandoned after the grace period; await the handle to know the
/// queue is consistent.
pub fn spawn(spool: Spool, config: Arc<Config>, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
    let runner = Runner::new(spool, OutboundSettings::from_config(config));
    tokio::spawn(runner.run(shutdown))
}

/// The retry schedule: exponential backoff up to a cap, until a maximum
/// queue age.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt.
    pub initial: Duration,
    /// Each further attempt multiplies the delay by this (at least 1).
    pub factor: f64,
    /// The longest delay between two attempts.
    pub cap: Duration,
    /// How long a message may stay queued (from arrival) before its
    /// deferred recipients bounce. RFC 5321 §4.5.4.1 suggests 4-5 days.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    /// 5 minutes, doubling, at most 1 hour apart, for 5 days.
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(5 * 60),
            factor: 2.0,
            cap: Duration::from_secs(60 * 60),
            max_age: Duration::from_secs(5 * 24 * 60 * 60),
        }
    }
}

impl RetryPolicy {
    /// The delay after the `attempts`-th failed attempt (1-based):
    /// `initial * factor^(attempts-1)`, at most `cap`.
    pub fn delay(&self, attempts: u32) -> Duration {
        let factor = if self.factor.is_finite() && self.factor >= 1.0 {
            self.factor
        } else {
            1.0
        };
        let exp = attempts.saturating_sub(1).min(64) as i32;
        let secs = self.initial.as_secs_f64() * factor.powi(exp);
        if !secs.is_finite() || secs >= self.cap.as_secs_f64() {
            self.cap
        } else {
            Duration::from_secs_f64(secs.max(0.0))
        }
    }
}

/// A clock returning unix seconds (injectable for tests).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock as a [`Clock`].
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// Where the runner reads the rule set from: the MTA's [`Config`], or a
/// bare [`RuleSet`] (tests, embedders).
pub trait RuleSource: Send + Sync + std::fmt::Debug {
    /// The rules, in order.
    fn rules(&self) -> &RuleSet;
}

impl RuleSource for RuleSet {
    fn rules(&self) -> &RuleSet {
        self
    }
}

impl RuleSource for Config {
    fn rules(&self) -> &RuleSet {
        Config::rules(self)
    }
}

/// Everything the runner needs besides the spool.
#[derive(Debug, Clone)]
pub struct OutboundSettings {
    /// Our host name: sent with EHLO and used as `Reporting-MTA`.
    pub hostname: String,
    /// The rules that pick each recipient's route and TLS policy.
    pub rules: Arc<dyn RuleSource>,
    /// Domains delivered locally (a DSN to a sender there is marked local).
    pub local_domains: Vec<String>,
    /// Retry schedule and maximum queue age.
    pub retry: RetryPolicy,
    /// How often the spool is scanned for due messages.
    pub scan_interval: Duration,
    /// The port MX hosts are contacted on (25; tests use another).
    pub mx_port: u16,
    /// SMTP client timeouts (RFC 5321 §4.5.3.2 by default).
    pub timeouts: Timeouts,
    /// Where relative trust-anchor file names (`relay_trust_anchors`) are
    /// resolved from: the configuration file's directory.
    pub base_dir: PathBuf,
    /// How many routes one pass delivers to at the same time.
    pub parallel_routes: usize,
    /// How many passes may run at once (a new one starts every
    /// `scan_interval` while fewer are running), so a slow route does not
    /// hold up the queue. At most `parallel_routes * concurrent_passes`
    /// connections are open.
    pub concurrent_passes: usize,
    /// Recipients per SMTP transaction (RFC 5321 §4.5.3.1.8: servers must
    /// take at least 100).
    pub max_recipients: usize,
    /// Messages loaded per batch within a pass (bounds memory).
    pub batch: usize,
    /// A message with more `Received` header fields than this is in a mail
    /// loop and bounces with 5.4.6 instead of being relayed (RFC 5321 §6.3
    /// asks for a threshold of at least 100).
    pub max_received: usize,
    /// After shutdown is signalled, how long in-flight deliveries may run
    /// before they are abandoned (and retried after the restart).
    pub shutdown_grace: Duration,
}

impl OutboundSettings {
    /// Defaults for `hostname` and `rules`: 5-day expiry, scans every 5 s,
    /// MX on port 25, RFC 5321 timeouts, 4 routes in parallel per pass and
    /// up to 4 passes at once.
    pub fn new(hostname: impl Into<String>, rules: Arc<dyn RuleSource>) -> Self {
        OutboundSettings {
            hostname: hostname.into(),
            rules,
            local_domains: Vec::new(),
            retry: RetryPolicy::default(),
            scan_interval: Duration::from_secs(5),
            mx_port: 25,
            timeouts: Timeouts::default(),
            base_dir: PathBuf::from("."),
            parallel_routes: 4,
            concurrent_passes: 4,
            max_recipients: 100,
            batch: 200,
            max_received: 100,
            shutdown_grace: Duration::from_secs(10),
        }
    }

    /// The settings `main` uses: host name, local domains, rules and queue
    /// timing from `config` (retry delays grow by `retry_factor` from
    /// `retry_initial` up to `retry_max`; `max_age`; `scan_interval`).
    /// Relative trust-anchor files are resolved from the configuration
    /// file's directory.
    pub fn from_config(config: Arc<Config>) -> Self {
        let base_dir = Path::new(&config.source)
            .parent()
            .filter(|_| config.source != crate::config::EMBEDDED)
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let mut s = OutboundSettings::new(config.hostname.clone(), config.clone());
        s.local_domains = config.domains.iter().map(|d| d.name.clone()).collect();
        s.retry = RetryPolicy {
            initial: config.queue.retry_initial,
            factor: config.queue.retry_factor,
            cap: config.queue.retry_max,
            max_age: config.queue.max_age,
        };
        s.scan_interval = config.queue.scan_interval;
        s.base_dir = base_dir;
        s
    }

    fn is_local_domain(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.');
        self.local_domains
            .iter()
            .any(|d| d.trim_end_matches('.').eq_ignore_ascii_case(domain))
    }
}

/// What one pass did (for tests and logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Messages with at least one delivery attempt.
    pub messages: usize,
    /// Recipients delivered.
    pub delivered: usize,
    /// Recipients deferred (transient failure).
    pub deferred: usize,
    /// Recipients failed (permanently or by expiry).
    pub failed: usize,
    /// DSNs queued.
    pub dsns: usize,
    /// Finished messages removed from the spool.
    pub removed: usize,
    /// Problems that did not stop the pass (unreadable envelopes...).
    pub errors: Vec<String>,
}

/// The outbound queue runner. See the module documentation.
#[derive(Clone)]
pub struct Runner {
    spool: Spool,
    settings: Arc<OutboundSettings>,
    provider: Arc<CryptoProvider>,
    resolver: Arc<dyn Resolver>,
    clock: Clock,
    /// When each queued message is next due, as last read or written by
    /// this runner (`u64::MAX`: nothing for the runner to do), so a scan
    /// does not re-read every deferred envelope. Only this runner sets
    /// `next_attempt`, so the cache cannot go stale; a new runner (a
    /// restart) starts empty and reads everything once.
    due: Arc<std::sync::Mutex<HashMap<QueueId, u64>>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("spool", &self.spool)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A resolver that fails every lookup transiently: used when the system
/// resolver cannot be configured, so mail waits instead of bouncing.
struct NoResolver(String);

impl Resolver for NoResolver {
    fn mx<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<MxRecord>, ResolveError>> {
        let e = ResolveError::Transient(self.0.clone());
        Box::pin(std::future::ready(Err(e)))
    }

    fn ips<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, ResolveError>> {
        let e = ResolveError::Transient(self.0.clone());
        Box::pin(std::future::ready(Err(e)))
    }
}

/// A message being worked on in a pass.
struct Work {
    id: QueueId,
    /// Released as soon as the message is finished for this pass, so local
    /// delivery and other passes need not wait for the whole batch.
    hold: Option<crate::spool::Hold>,
    env: Envelope,
    body: Bytes,
    /// Routes still delivering this message.
    open_routes: usize,
    /// Recipients (index) that failed permanently in this pass.
    failures: Vec<(usize, Diagnosis)>,
    /// Recipients delivered to a server without DSN support whose NOTIFY
    /// asked for success reports: a "relayed" DSN is due (RFC 3461 §4).
    relayed: Vec<(usize, Diagnosis)>,
    /// The envelope changed since it was last written.
    dirty: bool,
    /// Some route of this message was abandoned (shutdown).
    interrupted: bool,
    attempted: bool,
    last_attempt: u64,
}

/// One route's share of a batch: which recipients of which work items.
struct RouteGroup {
    route: Route,
    /// (work index, recipient indexes)
    members: Vec<(usize, Vec<usize>)>,
}

/// The result of delivering one route group.
struct GroupDone {
    /// Per transaction: work index, recipient indexes, the result.
    results: Vec<(usize, Vec<usize>, MessageResult)>,
}

impl Runner {
    /// A runner on `spool` with the system DNS resolver, the ring crypto
    /// provider and the system clock. If the system resolver cannot be set
    /// up, every lookup fails transiently (mail waits; it is logged).
    pub fn new(spool: Spool, settings: OutboundSettings) -> Runner {
        let resolver: Arc<dyn Resolver> = match HickoryResolver::from_system_conf() {
            Ok(r) => Arc::new(r),
            Err(e) => {
                tracing::error!(error = %e, "outbound: no DNS resolver; remote mail will be deferred");
                Arc::new(NoResolver(format!("no DNS resolver: {e}")))
            }
        };
        Runner {
            spool,
            settings: Arc::new(settings),
            provider: Arc::new(postern_listener::default_provider()),
            resolver,
            clock: system_clock(),
            due: Arc::default(),
        }
    }

    /// Uses `resolver` for MX and address lookups.
    #[must_use]
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Builds every TLS configuration with `provider`.
    #[must_use]
    pub fn with_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = provider;
        self
    }

    /// Reads the time from `clock` (unix seconds).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn due_cache(&self) -> std::sync::MutexGuard<'_, HashMap<QueueId, u64>> {
        self.due.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The settings in use.
    pub fn settings(&self) -> &OutboundSettings {
        &self.settings
    }

    /// Runs passes every `scan_interval` until `shutdown` turns true (or its
    /// sender is dropped), then waits for the passes in progress: each stops
    /// starting deliveries, gives those in flight `shutdown_grace`, records
    /// what finished and returns; nothing half-done is recorded.
    ///
    /// A pass that is slow (a tarpitting server, long timeouts) does not
    /// hold up the rest of the queue: the next scan starts another pass,
    /// which skips the messages the first one still holds, up to
    /// `concurrent_passes` at a time.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(
            spool = %self.spool.dir().display(),
            interval = ?self.settings.scan_interval,
            max_age = ?self.settings.retry.max_age,
            "outbound queue runner started"
        );
        let mut passes: JoinSet<()> = JoinSet::new();
        loop {
            while let Some(done) = passes.try_join_next() {
                if let Err(e) = done {
                    tracing::error!(error = %e, "outbound: a pass failed");
                }
            }
            if stopping(&shutdown) {
                break;
            }
            if passes.len() < self.settings.concurrent_passes.max(1) {
                let runner = self.clone();
                let mut rx = shutdown.clone();
                passes.spawn(async move {
                    let report = runner.pass(Some(&mut rx)).await;
                    log_pass(&report);
                });
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.scan_interval) => {}
                () = wait_stop(&mut shutdown) => break,
            }
        }
        while let Some(done) = passes.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "outbound: a pass failed");
            }
        }
        tracing::info!("outbound queue runner stopped");
    }

    /// One pass over the spool (see the module documentation); returns
    /// what it did. Never panics on bad spool content: problems are logged
    /// and listed in [`PassReport::errors`].
    pub async fn run_once(&self) -> PassReport {
        self.pass(None).await
    }

    async fn pass(&self, mut shutdown: Option<&mut watch::Receiver<bool>>) -> PassReport {
        let mut report = PassReport::default();
        let spool = self.spool.clone();
        let ids = match blocking(move || spool.list()).await {
            Ok(ids) => ids,
            Err(e) => {
                report.errors.push(format!("listing the spool: {e}"));
                return report;
            }
        };
        let now = (self.clock)();
        let ids: Vec<QueueId> = {
            let mut due = self.due_cache();
            let listed: std::collections::HashSet<&QueueId> = ids.iter().collect();
            due.retain(|id, _| listed.contains(id));
            ids.iter()
                .filter(|id| due.get(*id).is_none_or(|t| *t <= now))
                .cloned()
                .collect()
        };
        for chunk in ids.chunks(self.settings.batch.max(1)) {
            if shutdown.as_deref().is_some_and(stopping) {
                break;
            }
            self.batch(chunk, &mut report, shutdown.as_deref_mut())
                .await;
        }
        report
    }

    /// Loads, plans, delivers and records one batch of messages.
    async fn batch(
        &self,
        ids: &[QueueId],
        report: &mut PassReport,
        mut shutdown: Option<&mut watch::Receiver<bool>>,
    ) {
        let now = (self.clock)();
        let mut work: Vec<Work> = Vec::new();
        for id in ids {
            let Some(hold) = self.spool.hold(id) else {
                continue;
            };
            let spool = self.spool.clone();
            let key = id.clone();
            let env = match blocking(move || spool.load(&key)).await {
                Ok(env) => env,
                // Removed meanwhile (local delivery finished it): not an error.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    // Reported once per runner: an operator repairs or
                    // removes it, and a restart reads it again.
                    tracing::error!(queue_id = %id, error = %e, "outbound: cannot read envelope; skipped until restart");
                    report.errors.push(format!("{id}: {e}"));
                    self.due_cache().insert(id.clone(), u64::MAX);
                    continue;
                }
            };
            if env.is_finished() {
                let spool = self.spool.clone();
                let key = id.clone();
                match blocking(move || spool.remove(&key)).await {
                    Ok(()) => report.removed += 1,
                    Err(e) => report.errors.push(format!("{id}: removing: {e}")),
                }
                continue;
            }
            if !env.has_open_remote() {
                self.due_cache().insert(id.clone(), u64::MAX);
                continue;
            }
            if env.next_attempt > now {
                self.due_cache().insert(id.clone(), env.next_attempt);
                continue;
            }
            let path = self.spool.body_path(id);
            let body = match blocking(move || std::fs::read(path)).await {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    tracing::warn!(queue_id = %id, error = %e, "outbound: cannot read body; skipped");
                    report.errors.push(format!("{id}: body: {e}"));
                    continue;
                }
            };
            work.push(Work {
                id: id.clone(),
                hold: Some(hold),
                env,
                body,
                open_routes: 0,
                failures: Vec::new(),
                relayed: Vec::new(),
                dirty: false,
                interrupted: false,
                attempted: false,
                last_attempt: now,
            });
        }
        if work.is_empty() {
            return;
        }

        let groups = self.plan(&mut work, now, report);
        let relay = self.relay();
        let mut set: JoinSet<(usize, GroupDone)> = JoinSet::new();
        let mut queue = groups.into_iter().enumerate().collect::<Vec<_>>();
        queue.reverse();
        let mut stopping_at: Option<tokio::time::Instant> = None;
        // Launched, not finished: group index -> (work indexes, route).
        let mut launched_routes: HashMap<usize, (Vec<usize>, String)> = HashMap::new();
        loop {
            if stopping_at.is_none() && shutdown.as_deref().is_some_and(stopping) {
                stopping_at = Some(tokio::time::Instant::now() + self.settings.shutdown_grace);
            }
            while stopping_at.is_none() && set.len() < self.settings.parallel_routes.max(1) {
                let Some((gi, group)) = queue.pop() else {
                    break;
                };
                launched_routes.insert(
                    gi,
                    (
                        group.members.iter().map(|(w, _)| *w).collect(),
                        describe(&group.route),
                    ),
                );
                let messages = self.messages(&work, &group);
                let relay = relay.clone();
                let route = group.route.clone();
                set.spawn(async move {
                    let index: Vec<(usize, Vec<usize>)> =
                        messages.iter().map(|(w, r, _)| (*w, r.clone())).collect();
                    let results = relay
                        .deliver(&route, messages.into_iter().map(|(_, _, m)| m).collect())
                        .await;
                    let results = index
                        .into_iter()
                        .zip(results)
                        .map(|((w, r), m)| (w, r, m))
                        .collect();
                    (gi, GroupDone { results })
                });
            }
            if set.is_empty() {
                break;
            }
            let next = match (stopping_at, shutdown.as_deref_mut()) {
                (Some(deadline), _) => {
                    match tokio::time::timeout_at(deadline, set.join_next()).await {
                        Ok(n) => n,
                        Err(_) => {
                            tracing::warn!(
                                in_flight = set.len(),
                                "outbound: shutdown grace period over; abandoning deliveries in flight (they will be retried)"
                            );
                            set.abort_all();
                            while set.join_next().await.is_some() {}
                            break;
                        }
                    }
                }
                (None, Some(rx)) => tokio::select! {
                    n = set.join_next() => n,
                    () = wait_stop(rx) => continue,
                },
                (None, None) => set.join_next().await,
            };
            match next {
                Some(Ok((gi, done))) => {
                    let (members, route) = launched_routes.remove(&gi).unwrap_or_default();
                    for (w, rcpts, result) in done.results {
                        self.apply(&mut work[w], &rcpts, &result, &route, report);
                    }
                    for w in members {
                        work[w].open_routes = work[w].open_routes.saturating_sub(1);
                    }
                    for w in work.iter_mut().filter(|w| w.dirty) {
                        self.save(w, report).await;
                    }
                    self.finish_ready(&mut work, now, report).await;
                }
                Some(Err(e)) => {
                    // A delivery task panicked or was cancelled: nothing is
                    // recorded for its recipients, so they are retried.
                    tracing::error!(error = %e, "outbound: delivery task failed");
                    report.errors.push(format!("delivery task: {e}"));
                }
                None => break,
            }
        }
        // Routes never launched or abandoned: their messages are left as
        // they were for the next pass.
        for (_, (members, _)) in launched_routes {
            for w in members {
                work[w].interrupted = true;
            }
        }
        for (_, group) in queue {
            for (w, _) in group.members {
                work[w].interrupted = true;
            }
        }
        for w in &mut work {
            if w.open_routes > 0 && w.interrupted {
                // Save what finished; skip scheduling and bouncing.
                w.open_routes = 0;
                w.failures.clear();
            }
        }
        for w in work.iter_mut().filter(|w| w.dirty) {
            self.save(w, report).await;
        }
        self.finish_ready(&mut work, now, report).await;
        // Interrupted messages still owe their "relayed" reports.
        for w in &mut work {
            self.send_relayed(w, now, report).await;
        }
    }

    /// Queues the "relayed" DSN owed for `w`, if any. Best effort: the
    /// recipients are delivered whatever happens here, so a failure to
    /// queue the report is logged and not retried.
    async fn send_relayed(&self, w: &mut Work, now: u64, report: &mut PassReport) {
        if w.relayed.is_empty() {
            return;
        }
        let relayed = std::mem::take(&mut w.relayed);
        let spool = self.spool.clone();
        let env = w.env.clone();
        let body = w.body.clone();
        let ctx = self.dsn_context(&w.env.sender, now, w.last_attempt, Some(
            "Your message was relayed to a server that does not support delivery status notifications; no further notifications will be sent.".into(),
        ));
        match blocking(move || queue_dsn(&spool, &ctx, &env, &body, Action::Relayed, &relayed))
            .await
        {
            Ok(Some(id)) => {
                report.dsns += 1;
                tracing::info!(queue_id = %w.id, dsn = %id, "outbound: relayed DSN queued to the sender");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(queue_id = %w.id, error = %e, "outbound: cannot queue the relayed DSN");
                report.errors.push(format!("{}: relayed DSN: {e}", w.id));
            }
        }
    }

    fn dsn_context(
        &self,
        sender: &str,
        now: u64,
        last_attempt: u64,
        reason: Option<String>,
    ) -> DsnContext {
        let sender_domain = sender.rsplit_once('@').map_or("", |(_, d)| d);
        DsnContext {
            reporting_mta: self.settings.hostname.clone(),
            sender_is_local: self.settings.is_local_domain(sender_domain),
            now,
            last_attempt,
            reason,
        }
    }

    /// Groups the open remote recipients of `work` by route. Recipients that
    /// cannot be routed (bad address, unreadable anchors) are decided here.
    fn plan(&self, work: &mut [Work], now: u64, report: &mut PassReport) -> Vec<RouteGroup> {
        let mut groups: Vec<RouteGroup> = Vec::new();
        for (wi, w) in work.iter_mut().enumerate() {
            let sender_ok = w.env.sender.is_empty() || Mailbox::parse(&w.env.sender).is_ok();
            let hops = received_count(&w.body);
            let looping = hops > self.settings.max_received;
            for ri in 0..w.env.recipients.len() {
                let r = &w.env.recipients[ri];
                if r.local || !r.status.is_open() {
                    continue;
                }
                let unusable = if looping {
                    Some(Diagnosis::local(
                        "5.4.6",
                        &format!("routing loop detected: {hops} Received header fields"),
                        None,
                    ))
                } else if !sender_ok {
                    Some(Diagnosis::local(
                        "5.1.7",
                        "the sender address cannot be used",
                        None,
                    ))
                } else if Mailbox::parse(&r.address).is_err() {
                    Some(Diagnosis::local(
                        "5.1.3",
                        "the recipient address cannot be used",
                        None,
                    ))
                } else {
                    None
                };
                if let Some(diag) = unusable {
                    log_attempt(&w.id, &r.address, "-", None, "failed", &diag);
                    w.failures.push((ri, diag));
                    continue;
                }
                let route = match self.route_for(&w.env, r) {
                    Ok(route) => route,
                    Err(diag) => {
                        log_attempt(&w.id, &r.address, "-", None, "deferred", &diag);
                        w.env.recipients[ri].status = RcptStatus::Deferred {
                            reply: diag.to_string(),
                        };
                        w.dirty = true;
                        w.attempted = true;
                        report.deferred += 1;
                        continue;
                    }
                };
                let g = match groups.iter().position(|g| g.route == route) {
                    Some(g) => g,
                    None => {
                        groups.push(RouteGroup {
                            route,
                            members: Vec::new(),
                        });
                        groups.len() - 1
                    }
                };
                let members = &mut groups[g].members;
                match members.iter_mut().find(|(m, _)| *m == wi) {
                    Some((_, list)) => list.push(ri),
                    None => {
                        members.push((wi, vec![ri]));
                        w.open_routes += 1;
                    }
                }
            }
            w.last_attempt = now;
            if !w.failures.is_empty() {
                w.attempted = true;
            }
        }
        groups
    }

    /// The relay route for one recipient, from the rules.
    fn route_for(&self, env: &Envelope, r: &RecipientState) -> Result<Route, Diagnosis> {
        let facts = facts_for(env, r);
        let outcome = self.settings.rules.rules().evaluate(Stage::Rcpt, &facts);
        let plan = outcome.relay;
        let domain = r.domain().to_ascii_lowercase();
        // An address literal names the host itself (RFC 5321 §5.1): no MX
        // lookup; the relay gets the address in brackets (`[2001:db8::1]`,
        // not the literal's `[IPv6:...]` form).
        let literal = match Host::parse(r.domain()) {
            Ok(Host::Literal(AddressLiteral::V4(ip))) => Some(format!("[{ip}]")),
            Ok(Host::Literal(AddressLiteral::V6(ip))) => Some(format!("[{ip}]")),
            _ => None,
        };
        let target = match (plan.route, literal) {
            // It is still "MX-like": no credentials are sent.
            (Destination::Mx, Some(host)) => Target::SmartHost {
                host,
                port: self.settings.mx_port,
                auth: None,
                allow_plaintext_auth: false,
            },
            (Destination::SmartHost { host, port }, _) => Target::SmartHost {
                host: host.clone(),
                port: *port,
                auth: None,
                allow_plaintext_auth: false,
            },
            // MX, and any destination kind this runner does not know yet.
            _ => Target::Mx {
                domain,
                port: self.settings.mx_port,
            },
        };
        let anchors = || -> Result<Anchors, Diagnosis> {
            match plan.trust_anchors {
                TrustAnchors::System => Ok(Anchors::WebPki),
                TrustAnchors::Files(files) => load_anchors(&self.settings.base_dir, files),
                other => Err(Diagnosis::local(
                    "4.3.5",
                    &format!("trust anchors {other} are not supported by this MTA"),
                    None,
                )),
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
            other => {
                return Err(Diagnosis::local(
                    "4.3.5",
                    &format!("relay TLS mode {other} is not supported by this MTA"),
                    None,
                ));
            }
        };
        // The versions as asked, including ones rustls cannot speak: the
        // relay reports those and refuses an empty set (never widens it).
        let versions: Vec<TlsVersion> = plan.requested_versions.iter().collect();
        Ok(Route::new(
            target,
            TlsPolicy::new(mode).with_versions(versions),
        ))
    }

    /// The relay messages for one group: one per work item, split into
    /// transactions of at most `max_recipients`.
    fn messages(&self, work: &[Work], group: &RouteGroup) -> Vec<(usize, Vec<usize>, Message)> {
        let mut out = Vec::new();
        for (wi, rcpts) in &group.members {
            let w = &work[*wi];
            let from = if w.env.sender.is_empty() {
                ReversePath::Null
            } else {
                match Mailbox::parse(&w.env.sender) {
                    Ok(m) => ReversePath::Mailbox(m.into_owned()),
                    // Checked in `plan`; unreachable in practice.
                    Err(_) => continue,
                }
            };
            for chunk in rcpts.chunks(self.settings.max_recipients.max(1)) {
                let recipients: Vec<Recipient> = chunk
                    .iter()
                    .filter_map(|&ri| recipient_for(&w.env.recipients[ri]))
                    .collect();
                if recipients.len() != chunk.len() {
                    continue;
                }
                let mut m = Message::new(from.clone(), recipients, w.body.clone());
                m.ret = w.env.params.ret.map(|r| match r {
                    Ret::Full => postern_proto::Ret::Full,
                    Ret::Hdrs => postern_proto::Ret::Headers,
                });
                m.envid = w.env.params.envid.clone();
                m.body_type = w.env.params.body.map(|b| match b {
                    BodyType::SevenBit => postern_proto::Body::SevenBit,
                    BodyType::EightBitMime => postern_proto::Body::EightBitMime,
                    BodyType::BinaryMime => postern_proto::Body::BinaryMime,
                });
                out.push((*wi, chunk.to_vec(), m));
            }
        }
        out
    }

    /// Records one transaction's results in the work item (in memory).
    fn apply(
        &self,
        w: &mut Work,
        rcpts: &[usize],
        result: &MessageResult,
        route: &str,
        report: &mut PassReport,
    ) {
        w.attempted = true;
        w.last_attempt = (self.clock)();
        let tls = result.tls.as_ref().map(|t| {
            format!(
                "{} {} {}",
                t.version,
                t.cipher,
                if t.verified {
                    "verified"
                } else {
                    "not-verified"
                }
            )
        });
        for (&ri, r) in rcpts.iter().zip(&result.recipients) {
            // Without a server (no session could be set up), name the
            // route: the smart host, or the MX domain.
            let server = result
                .server
                .clone()
                .or_else(|| (!route.starts_with("MX of ")).then(|| route.to_owned()));
            let address = w.env.recipients[ri].address.clone();
            match &r.outcome {
                Ok(reply) if reply.is_positive() => {
                    let diag = Diagnosis::from_reply(&reply.to_string(), server);
                    log_attempt(&w.id, &address, route, tls.as_deref(), "delivered", &diag);
                    w.env.recipients[ri].status = RcptStatus::Delivered {
                        reply: diag.to_string(),
                    };
                    if result.dsn_dropped && wants_dsn(&w.env.recipients[ri], Action::Relayed) {
                        w.relayed.push((ri, diag));
                    }
                    report.delivered += 1;
                }
                outcome => {
                    let diag = match outcome {
                        Ok(reply) => Diagnosis::from_reply(&reply.to_string(), server),
                        Err(e) => diagnose(e, server),
                    };
                    if r.is_permanent() {
                        log_attempt(&w.id, &address, route, tls.as_deref(), "failed", &diag);
                        w.failures.push((ri, diag));
                    } else {
                        log_attempt(&w.id, &address, route, tls.as_deref(), "deferred", &diag);
                        w.env.recipients[ri].status = RcptStatus::Deferred {
                            reply: diag.to_string(),
                        };
                        report.deferred += 1;
                    }
                }
            }
            w.dirty = true;
        }
    }

    /// Writes the envelope if it changed.
    async fn save(&self, w: &mut Work, report: &mut PassReport) {
        if !w.dirty {
            return;
        }
        let spool = self.spool.clone();
        let id = w.id.clone();
        let env = w.env.clone();
        match blocking(move || spool.update(&id, &env)).await {
            Ok(()) => w.dirty = false,
            Err(e) => {
                tracing::error!(queue_id = %w.id, error = %e, "outbound: cannot record delivery results");
                report.errors.push(format!("{}: update: {e}", w.id));
            }
        }
    }

    /// Finalises every work item whose routes are all done: bounces,
    /// schedules the next attempt, removes finished messages.
    async fn finish_ready(&self, work: &mut [Work], now: u64, report: &mut PassReport) {
        for w in work.iter_mut() {
            if w.open_routes == 0 && w.attempted && !w.interrupted {
                self.finish(w, now, report).await;
                w.attempted = false;
                // Counted once, finished once.
                report.messages += 1;
            }
        }
    }

    async fn finish(&self, w: &mut Work, started: u64, report: &mut PassReport) {
        let now = (self.clock)().max(started);
        w.env.attempts = w.env.attempts.saturating_add(1);
        let expires = w
            .env
            .arrival
            .saturating_add(self.settings.retry.max_age.as_secs());
        let mut bounce: Vec<(usize, Diagnosis, bool)> =
            w.failures.drain(..).map(|(ri, d)| (ri, d, false)).collect();
        if now >= expires {
            for (ri, r) in w.env.recipients.iter().enumerate() {
                if r.local || !r.status.is_open() || bounce.iter().any(|(b, _, _)| *b == ri) {
                    continue;
                }
                let last = match &r.status {
                    RcptStatus::Deferred { reply } => reply.clone(),
                    _ => String::new(),
                };
                let mut d = Diagnosis::parse(&last, "4.4.7");
                if d.reply.is_none() && d.detail.is_none() {
                    d.detail = Some("delivery time expired".into());
                    d.status = "4.4.7".into();
                }
                bounce.push((ri, d, true));
            }
        }
        if !bounce.is_empty() {
            let queued = self.bounce(w, &bounce, now, now >= expires).await;
            match queued {
                Ok(dsn) => {
                    if let Some(dsn) = &dsn {
                        report.dsns += 1;
                        tracing::info!(queue_id = %w.id, dsn = %dsn, recipients = bounce.len(), "outbound: DSN queued to the sender");
                    }
                    for (ri, d, expired) in &bounce {
                        let reply = if *expired {
                            format!(
                                "{d}; gave up: queued longer than {}",
                                human(self.settings.retry.max_age)
                            )
                        } else {
                            d.to_string()
                        };
                        w.env.recipients[*ri].status = RcptStatus::Failed { reply };
                        report.failed += 1;
                    }
                    w.dirty = true;
                }
                Err(e) => {
                    // The recipients stay open: retried, and bounced again.
                    tracing::error!(queue_id = %w.id, error = %e, "outbound: cannot queue the DSN; recipients kept for retry");
                    report.errors.push(format!("{}: DSN: {e}", w.id));
                    for (ri, d, _) in &bounce {
                        w.env.recipients[*ri].status = RcptStatus::Deferred {
                            reply: d.to_string(),
                        };
                    }
                    w.dirty = true;
                }
            }
        }
        self.send_relayed(w, now, report).await;
        if w.env.has_open_remote() {
            let delay = self.settings.retry.delay(w.env.attempts).as_secs().max(1);
            w.env.next_attempt = now.saturating_add(delay).min(expires.max(now + 1));
        }
        if w.env.is_finished() {
            let spool = self.spool.clone();
            let id = w.id.clone();
            match blocking(move || spool.remove(&id)).await {
                Ok(()) => {
                    report.removed += 1;
                    w.dirty = false;
                }
                Err(e) => {
                    report.errors.push(format!("{}: remove: {e}", w.id));
                    self.save(w, report).await;
                }
            }
        } else {
            w.dirty = true;
            self.save(w, report).await;
        }
        if !w.dirty {
            let next = if w.env.has_open_remote() {
                w.env.next_attempt
            } else {
                u64::MAX
            };
            self.due_cache().insert(w.id.clone(), next);
            // Recorded: nothing in this pass touches the envelope again.
            w.hold = None;
        }
    }

    /// Queues a DSN for `bounce` to the sender, unless the sender is null
    /// or every recipient's NOTIFY excludes failures. `Ok(None)`: no DSN due.
    async fn bounce(
        &self,
        w: &Work,
        bounce: &[(usize, Diagnosis, bool)],
        now: u64,
        expired: bool,
    ) -> io::Result<Option<QueueId>> {
        let failed: Vec<(usize, Diagnosis)> =
            bounce.iter().map(|(ri, d, _)| (*ri, d.clone())).collect();
        let spool = self.spool.clone();
        let env = w.env.clone();
        let body = w.body.clone();
        let dsn = self.dsn_context(
            &w.env.sender,
            now,
            w.last_attempt,
            expired.then(|| {
                format!(
                    "The message stayed in the queue for {} without being delivered; delivery has been given up.",
                    human(self.settings.retry.max_age)
                )
            }),
        );
        blocking(move || queue_failure_dsn(&spool, &dsn, &env, &body, &failed)).await
    }

    fn relay(&self) -> Relay {
        let helo = Host::parse(&self.settings.hostname)
            .map(Host::into_owned)
            .unwrap_or_else(|_| {
                tracing::warn!(hostname = %self.settings.hostname, "outbound: host name is not a valid EHLO name; using localhost");
                Host::parse("localhost").map(Host::into_owned).expect("localhost is a valid host")
            });
        let mut session = SessionConfig::new(helo);
        session.timeouts = self.settings.timeouts;
        Relay::new(session, self.provider.clone(), self.resolver.clone())
    }
}

/// The circumstances of a failure DSN, for [`queue_failure_dsn`].
#[derive(Debug, Clone)]
pub struct DsnContext {
    /// Our host name (`Reporting-MTA`).
    pub reporting_mta: String,
    /// The sender's domain is local: the DSN recipient is marked `local`
    /// (local delivery takes it), else the outbound runner relays it.
    pub sender_is_local: bool,
    /// Unix seconds now (`Date`, and the DSN's arrival).
    pub now: u64,
    /// Unix seconds of the last delivery attempt (`Last-Attempt-Date`).
    pub last_attempt: u64,
    /// Why delivery was given up, for the human-readable part.
    pub reason: Option<String>,
}

/// Queues an RFC 3464 failure report to the sender of `env` for the
/// recipients `failed` (index into `env.recipients`, diagnosis), with the
/// null reverse-path. Blocking file IO (call it from a blocking thread).
///
/// Returns `Ok(None)`, queuing nothing, when the sender is null (a report
/// about a report is never sent) or when every recipient's `NOTIFY`
/// excludes failures. On `Ok(Some(id))` the report is durable in the spool
/// (and not held): mark the recipients `Failed` only after that, so a crash
/// in between repeats the report rather than losing it.
pub fn queue_failure_dsn(
    spool: &Spool,
    ctx: &DsnContext,
    env: &Envelope,
    original: &[u8],
    failed: &[(usize, Diagnosis)],
) -> io::Result<Option<QueueId>> {
    queue_dsn(spool, ctx, env, original, Action::Failed, failed)
}

/// Queues an RFC 3464 report with `action` for the recipients `entries`
/// (see [`queue_failure_dsn`]). Recipients are reported only when their
/// `NOTIFY` asks for it: failures unless `NEVER` or a list without
/// `FAILURE`; delays with `DELAY` (or no `NOTIFY`); `relayed` and
/// `delivered` only with `SUCCESS` (RFC 3461 §4.1). `RET=FULL` returns the
/// whole message in failure reports only; other reports carry the headers.
pub fn queue_dsn(
    spool: &Spool,
    ctx: &DsnContext,
    env: &Envelope,
    original: &[u8],
    action: Action,
    entries: &[(usize, Diagnosis)],
) -> io::Result<Option<QueueId>> {
    if env.sender.is_empty() {
        tracing::info!(queue_id = %env.id, "no DSN for the null sender");
        return Ok(None);
    }
    let recipients: Vec<RecipientReport> = entries
        .iter()
        .filter_map(|(ri, d)| Some((env.recipients.get(*ri)?, d)))
        .filter(|(r, _)| wants_dsn(r, action))
        .map(|(r, d)| RecipientReport {
            final_recipient: r.address.clone(),
            original_recipient: r.orcpt.clone(),
            action,
            diagnosis: d.clone(),
            last_attempt: Some(ctx.last_attempt),
        })
        .collect();
    if recipients.is_empty() {
        tracing::info!(queue_id = %env.id, action = action.as_str(), "NOTIFY excludes this report; no DSN");
        return Ok(None);
    }
    let dsn_id = spool.new_id();
    let bytes = dsn::render(&dsn::Report {
        reporting_mta: &ctx.reporting_mta,
        queue_id: env.id.as_str(),
        report_id: dsn_id.as_str(),
        original_sender: &env.sender,
        envid: env.params.envid.as_deref(),
        arrival: env.arrival,
        now: ctx.now,
        recipients,
        original,
        return_full: action == Action::Failed && env.params.ret == Some(Ret::Full),
        received_from_mta: env.helo.as_deref(),
        reason: ctx.reason.clone(),
    });
    let mut dsn_env = Envelope::new(dsn_id.clone(), "");
    dsn_env.arrival = ctx.now;
    dsn_env.recipients.push(RecipientState::pending(
        env.sender.clone(),
        ctx.sender_is_local,
    ));
    if bytes.iter().any(|&b| b >= 0x80) {
        dsn_env.params.body = Some(BodyType::EightBitMime);
    }
    dsn_env.params.smtputf8 = !env.sender.is_ascii();
    let mut writer = spool.writer(&dsn_id)?;
    writer.write(&bytes)?;
    // Released at once: local delivery or the next pass takes it.
    drop(writer.commit(&dsn_env)?);
    Ok(Some(dsn_id))
}

/// The rule facts for relaying recipient `r` of `env`: what the inbound
/// side knew when it accepted the message.
fn facts_for(env: &Envelope, r: &RecipientState) -> Facts {
    let mut facts = Facts::new()
        .relaying(true)
        .tls(env.tls_version.is_some())
        .smtputf8(env.params.smtputf8);
    // The spool stores addresses as text (checked when they were accepted);
    // one that no longer parses is an unknown fact, which no rule matches.
    if env.sender.is_empty() {
        facts = facts.sender(ReversePath::Null);
    } else if let Ok(m) = Mailbox::parse(&env.sender) {
        facts = facts.sender(ReversePath::Mailbox(m));
    }
    if let Ok(m) = Mailbox::parse(&r.address) {
        facts = facts.recipient(ForwardPath::Mailbox(m));
    }
    if let Some(v) = env
        .tls_version
        .as_deref()
        .and_then(postern_proto::TlsVersion::from_name)
    {
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
    if let Some(ip) = env.peer.as_deref().and_then(peer_ip) {
        facts = facts.remote_ip(ip);
    }
    if let Some(size) = env.params.size {
        facts = facts.size(size);
    }
    if let Some(b) = env.params.body {
        let body = match b {
            BodyType::SevenBit => postern_proto::Body::SevenBit,
            BodyType::EightBitMime => postern_proto::Body::EightBitMime,
            BodyType::BinaryMime => postern_proto::Body::BinaryMime,
        };
        facts = facts.body(body);
    }
    facts
}

/// Names a route for logs and `Remote-MTA` when no server answered: the
/// smart host's name, or the MX domain.
fn describe(route: &Route) -> String {
    match &route.target {
        Target::SmartHost { host, .. } => host.clone(),
        other => other.to_string(),
    }
}

/// How many `Received` fields the message's header has (RFC 5321 §6.3).
fn received_count(message: &[u8]) -> usize {
    dsn::header_block(message)
        .split(|&b| b == b'\n')
        .filter(|line| line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:"))
        .count()
}

/// The IP of `ip:port`, `[v6]:port` or a bare address.
fn peer_ip(peer: &str) -> Option<IpAddr> {
    peer.parse::<std::net::SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| peer.trim_matches(['[', ']']).parse())
        .ok()
}

/// The relay recipient (with NOTIFY and ORCPT passed on, RFC 3461 §4).
fn recipient_for(r: &RecipientState) -> Option<Recipient> {
    let to = ForwardPath::Mailbox(Mailbox::parse(&r.address).ok()?.into_owned());
    let mut params = RcptParams::default();
    if let Some(list) = &r.notify {
        params.notify = Some(if list.contains(&Notify::Never) {
            postern_proto::Notify::Never
        } else {
            postern_proto::Notify::On {
                success: list.contains(&Notify::Success),
                failure: list.contains(&Notify::Failure),
                delay: list.contains(&Notify::Delay),
            }
        });
    }
    if let Some((kind, addr)) = r.orcpt.as_deref().and_then(|o| o.split_once(';')) {
        params.orcpt = Some(Orcpt {
            addr_type: kind.trim().to_owned().into(),
            address: addr.trim().to_owned().into(),
        });
    }
    Some(Recipient::new(to).with_params(params))
}

/// Whether the recipient's NOTIFY asks for a report with `action`.
fn wants_dsn(r: &RecipientState, action: Action) -> bool {
    let asked = |n: Notify| match &r.notify {
        // RFC 3461 §4.1: no NOTIFY means FAILURE and DELAY.
        None => matches!(n, Notify::Failure | Notify::Delay),
        Some(list) => !list.contains(&Notify::Never) && list.contains(&n),
    };
    match action {
        Action::Failed => asked(Notify::Failure),
        Action::Delayed => asked(Notify::Delay),
        Action::Delivered | Action::Relayed => asked(Notify::Success),
    }
}

/// Reads PEM trust anchors; a problem defers the mail (an operator fixes
/// the file), it never bounces it or widens trust.
fn load_anchors(base: &Path, files: &[String]) -> Result<Anchors, Diagnosis> {
    let mut pem = Vec::new();
    for f in files {
        let path = base.join(f);
        match std::fs::read(&path) {
            Ok(b) => {
                pem.extend_from_slice(&b);
                pem.push(b'\n');
            }
            Err(e) => {
                return Err(Diagnosis::local(
                    "4.3.5",
                    &format!("cannot read trust anchors {}: {e}", path.display()),
                    None,
                ));
            }
        }
    }
    Anchors::from_pem(&pem).map_err(|e| Diagnosis::local("4.3.5", &e.to_string(), None))
}

/// The RFC 3463 status for a relay error that carries no server reply.
fn diagnose(e: &postern_relay::RelayError, server: Option<String>) -> Diagnosis {
    // The relay error carries its RFC 3463 status and the typed reply.
    let status = e.status().to_string();
    if let Some(reply) = e.reply() {
        let mut d = Diagnosis::from_reply(&reply.to_string(), server);
        d.status = status;
        if matches!(e, postern_relay::RelayError::StartTlsRefused(_)) {
            // The reply is to STARTTLS; what matters is that TLS was required.
            d.detail = Some(e.to_string());
        }
        return d;
    }
    Diagnosis::local(&status, &e.to_string(), server)
}

fn log_attempt(
    id: &QueueId,
    recipient: &str,
    route: &str,
    tls: Option<&str>,
    result: &str,
    diag: &Diagnosis,
) {
    tracing::info!(
        target: "postern_mta::outbound",
        queue_id = %id,
        recipient,
        host = diag.remote_mta.as_deref().unwrap_or(route),
        tls = tls.unwrap_or("none"),
        result,
        status = %diag.status,
        reply = %diag,
        "delivery attempt"
    );
}

fn log_pass(r: &PassReport) {
    if r.messages > 0 || r.removed > 0 || !r.errors.is_empty() {
        tracing::info!(
            messages = r.messages,
            delivered = r.delivered,
            deferred = r.deferred,
            failed = r.failed,
            dsns = r.dsns,
            removed = r.removed,
            errors = r.errors.len(),
            "outbound pass"
        );
    }
    for e in &r.errors {
        tracing::warn!(error = %e, "outbound pass problem");
    }
}

/// "5 days", "2 h", "30 s".
fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = if s >= 86_400 && s.is_multiple_of(86_400) {
        (s / 86_400, "day")
    } else if s >= 3600 && s.is_multiple_of(3600) {
        (s / 3600, "hour")
    } else if s >= 60 && s.is_multiple_of(60) {
        (s / 60, "minute")
    } else {
        (s, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn stopping(rx: &watch::Receiver<bool>) -> bool {
    *rx.borrow() || rx.has_changed().is_err()
}

/// Resolves when shutdown is signalled (true) or the sender is gone.
async fn wait_stop(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(format!("blocking task failed: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            initial: Duration::from_secs(60),
            factor: 2.0,
            cap: Duration::from_secs(600),
            max_age: Duration::from_secs(3600),
        };
        assert_eq!(p.delay(1), Duration::from_secs(60));
        assert_eq!(p.delay(2), Duration::from_secs(120));
        assert_eq!(p.delay(4), Duration::from_secs(480));
        assert_eq!(p.delay(5), Duration::from_secs(600));
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(600));
        let odd = RetryPolicy {
            factor: f64::NAN,
            ..p
        };
        assert_eq!(odd.delay(10), Duration::from_secs(60));
    }

    #[test]
    fn relay_errors_map_to_rfc3463_statuses() {
        use postern_relay::RelayError as E;
        assert_eq!(diagnose(&E::TlsUnavailable, None).status, "4.7.4");
        assert_eq!(diagnose(&E::NullMx("x".into()), None).status, "5.1.10");
        assert_eq!(
            diagnose(&E::Timeout(postern_relay::Phase::Greeting), None).status,
            "4.4.2"
        );
        let d = diagnose(
            &E::NoSuchDomain("nx.example".into()),
            Some("h[1.2.3.4]:25".into()),
        );
        assert_eq!(d.class(), 5);
        assert_eq!(d.remote_host(), Some("h"));
    }

    #[test]
    fn notify_decides_whether_a_failure_is_reported() {
        let mut r = RecipientState::pending("a@b.example", false);
        assert!(wants_dsn(&r, Action::Failed));
        assert!(wants_dsn(&r, Action::Delayed));
        assert!(!wants_dsn(&r, Action::Relayed));
        r.notify = Some(vec![Notify::Never]);
        assert!(!wants_dsn(&r, Action::Failed));
        r.notify = Some(vec![Notify::Delay]);
        assert!(!wants_dsn(&r, Action::Failed));
        r.notify = Some(vec![Notify::Success, Notify::Failure]);
        assert!(wants_dsn(&r, Action::Failed));
        assert!(wants_dsn(&r, Action::Relayed));
        assert!(!wants_dsn(&r, Action::Delayed));
    }

    fn test_runner(rules: &str) -> (Runner, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "postern-outbound-unit-{}-{}",
            std::process::id(),
            rules.len()
        ));
        let spool = Spool::open(&dir).unwrap();
        let rules = RuleSet::from_toml_str(rules, "unit.rules.toml").unwrap();
        let mut s = OutboundSettings::new("mta.test", Arc::new(rules));
        s.base_dir = dir.clone();
        (Runner::new(spool, s), dir)
    }

    fn envelope(sender: &str, rcpt: &str, tls: Option<&str>) -> Envelope {
        let id = "0000000000000000000000000a".parse().unwrap();
        let mut env = Envelope::new(id, sender);
        env.tls_version = tls.map(str::to_owned);
        env.recipients.push(RecipientState::pending(rcpt, false));
        env
    }

    #[test]
    fn the_guides_relay_rule_becomes_an_implicit_tls_route_with_tls12_only() {
        let (runner, dir) = test_runner(
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
        let route = runner.route_for(&env, &env.recipients[0]).unwrap();
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
        let route = runner.route_for(&env, &env.recipients[0]).unwrap();
        assert_eq!(
            route.target,
            Target::Mx {
                domain: "example.org".into(),
                port: 25
            }
        );
        assert_eq!(route.tls.mode, TlsMode::Opportunistic);
        let env = envelope("alice@local.test", "erin@example.org", None);
        let route = runner.route_for(&env, &env.recipients[0]).unwrap();
        assert_eq!(route.tls.mode, TlsMode::Required);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn address_literals_go_to_the_address() {
        let (runner, dir) = test_runner(
            r#"
[[rule]]
name = "nothing"
conditions = [{ relaying = true }, { recipient_domain = { is = "nowhere.example" } }]
actions = [{ relay_tls = "required" }]
"#,
        );
        let env = envelope("alice@local.test", "bob@[192.0.2.7]", None);
        let route = runner.route_for(&env, &env.recipients[0]).unwrap();
        assert_eq!(
            route.target,
            Target::SmartHost {
                host: "[192.0.2.7]".into(),
                port: 25,
                auth: None,
                allow_plaintext_auth: false
            }
        );
        let env = envelope("alice@local.test", "bob@[IPv6:2001:db8::7]", None);
        let route = runner.route_for(&env, &env.recipients[0]).unwrap();
        assert_eq!(
            route.target,
            Target::SmartHost {
                host: "[2001:db8::7]".into(),
                port: 25,
                auth: None,
                allow_plaintext_auth: false
            }
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn unreadable_trust_anchors_defer_rather_than_widen() {
        let (runner, dir) = test_runner(
            r#"
[[rule]]
name = "verified"
conditions = [{ relaying = true }]
actions = [{ relay_tls = "verified" }, { relay_trust_anchors = ["nope.pem"] }]
"#,
        );
        let env = envelope("alice@local.test", "bob@example.net", None);
        let err = runner.route_for(&env, &env.recipients[0]).unwrap_err();
        assert_eq!(err.status, "4.3.5");
        std::fs::write(dir.join("nope.pem"), "not a certificate").unwrap();
        let err = runner.route_for(&env, &env.recipients[0]).unwrap_err();
        assert_eq!(err.status, "4.3.5");
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
"#
            )
        };
        let config = Config::from_toml_str(&src("3"), "t.toml", Path::new("/etc/postern")).unwrap();
        let config = Arc::new(config);
        let s = OutboundSettings::from_config(config);
        assert_eq!(s.hostname, "mx.example.org");
        assert_eq!(s.local_domains, ["example.org"]);
        assert_eq!(s.retry.initial, Duration::from_secs(60));
        assert_eq!(s.retry.factor, 3.0);
        assert_eq!(s.retry.cap, Duration::from_secs(7200));
        assert_eq!(s.retry.max_age, Duration::from_secs(2 * 86_400));
        assert_eq!(s.scan_interval, Duration::from_secs(3));
        assert_eq!(s.retry.delay(2), Duration::from_secs(180));
        let err = Config::from_toml_str(&src("0.5"), "t.toml", Path::new("")).unwrap_err();
        assert!(err.to_string().contains("retry_factor"), "{err}");
    }

    #[test]
    fn received_fields_are_counted_in_the_header_only() {
        let m = b"Received: a\r\nRECEIVED:b\r\n\tcontinued\r\nSubject: x\r\n\r\nReceived: in the body\r\n";
        assert_eq!(received_count(m), 2);
        assert_eq!(received_count(b""), 0);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_secs(5 * 86_400)), "5 days");
        assert_eq!(human(Duration::from_secs(3600)), "1 hour");
        assert_eq!(human(Duration::from_secs(90)), "90 seconds");
    }

    #[test]
    fn peer_addresses_parse() {
        assert_eq!(
            peer_ip("192.0.2.1:2525"),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            peer_ip("[2001:db8::1]:25"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(peer_ip("nonsense"), None);
    }
}
