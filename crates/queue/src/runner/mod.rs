//! The delivery runner: relays queued mail to remote recipients along the
//! routes a [`Router`] picks, retries with the [`RetryPolicy`]
//! and reports failures to a [`BounceSink`].
//!
//! # One pass
//! A pass lists the spool and works through it in batches. Each batch has
//! three steps:
//!
//! 1. **Plan** (`plan.rs`): **hold** each candidate, load its envelope and
//!    body; a message is due when it has an open (`Pending`/`Deferred`)
//!    remote recipient and `next_attempt` has come (the runner remembers when
//!    each message it has seen is next due, so a scan re-reads only due
//!    ones). Each open remote recipient is checked (mail loop, unusable
//!    addresses) and routed by the [`Router`]; recipients with equal routes
//!    are grouped across messages, so one connection per route carries
//!    them all, in transactions of at most `max_recipients`.
//! 2. **Dispatch** (`dispatch.rs`): up to `parallel_routes` routes are
//!    delivered at once by [`postern_relay::Relay::deliver`]; on shutdown no
//!    new route starts and those in flight get `shutdown_grace`.
//! 3. **Record** (`record.rs`): each recipient's relay result becomes a
//!    [`RecipientOutcome`]. As each route finishes its `Delivered` and
//!    `Deferred` outcomes are written to the envelopes ([`Store::update`],
//!    atomic); permanent failures are kept in memory until the message's
//!    routes are all done, so a crash can never mark a recipient failed
//!    without its report queued (it is retried and fails again instead).
//!    Then `attempts += 1`; failed recipients, and once the message is
//!    older than the maximum age those still deferred, are reported to the
//!    sender through the bounce sink, *then* marked `Failed`; the next
//!    attempt is scheduled by the backoff (never after the expiry, so the
//!    last try happens at expiry); a finished message is removed.
//!    Recipients delivered to a server without DSN support whose `NOTIFY`
//!    includes `SUCCESS` get a "relayed" report (RFC 3461 §4). A message
//!    still open `delay_warning` after arrival gets one "delayed" report
//!    (once: the envelope's `delay_reported` survives restarts), and its
//!    next attempt is never scheduled past that moment.
//!
//! [`Runner::run`] starts a pass every `scan_interval`; passes may overlap
//! (up to `concurrent_passes`), each skipping what the others hold, so a
//! tarpitting server delays only its own messages.
//!
//! State lives only in the spool: a new runner on the same spool continues
//! where the last one stopped. An interrupted delivery leaves its recipients
//! as they were, so they are retried; a duplicate is possible, a loss is not.
//!
//! # Logs and metrics
//! A [`DeliveryObserver`] is told each relay session's route and duration
//! and each recipient's outcome. One `tracing` line per recipient per attempt (target
//! `postern_queue::runner`): queue id, recipient, host, TLS version, cipher
//! and verification, result and the reply.

mod dispatch;
mod observe;
mod outcome;
mod plan;
mod record;
mod router;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postern_proto::Host;
use postern_relay::mta_sts::StsResolver;
use postern_relay::{
    BoxFuture, DaneResolver, HickoryResolver, MxRecord, Relay, ResolveError, Resolver,
    SessionConfig, Timeouts,
};
use rustls::crypto::CryptoProvider;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use observe::{DeliveryObserver, RecipientAttempt};
pub use outcome::RecipientOutcome;
pub use router::Router;

use crate::bounce::BounceSink;
use crate::{QueueId, RetryPolicy, Store};

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

/// How the runner works, besides where it routes and reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunnerSettings {
    /// Our host name: sent with EHLO.
    pub hostname: String,
    /// Retry schedule and maximum queue age.
    pub retry: RetryPolicy,
    /// How often the spool is scanned for due messages.
    pub scan_interval: Duration,
    /// SMTP client timeouts (RFC 5321 §4.5.3.2 by default).
    pub timeouts: Timeouts,
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
    /// A message still undelivered this long after arrival gets one
    /// "delayed" report to its sender (RFC 3464 `action=delayed`, for
    /// recipients whose `NOTIFY` allows it); `Duration::ZERO` turns it off.
    pub delay_warning: Duration,
}

impl RunnerSettings {
    /// These settings with the retry policy, scan interval and delay
    /// report of `schedule` (a configuration's `[queue]`).
    pub fn with_schedule(mut self, schedule: &crate::QueueSchedule) -> Self {
        self.retry = schedule.retry;
        self.scan_interval = schedule.scan_interval;
        self.delay_warning = schedule.delay_warning;
        self
    }

    /// Defaults for `hostname`: 5-day expiry, a delay report after 4 hours,
    /// scans every 5 s, RFC 5321 timeouts, 4 routes in parallel per pass and
    /// up to 4 passes at once.
    pub fn new(hostname: impl Into<String>) -> Self {
        RunnerSettings {
            hostname: hostname.into(),
            retry: RetryPolicy::default(),
            scan_interval: Duration::from_secs(5),
            timeouts: Timeouts::default(),
            parallel_routes: 4,
            concurrent_passes: 4,
            max_recipients: 100,
            batch: 200,
            max_received: 100,
            shutdown_grace: Duration::from_secs(10),
            delay_warning: Duration::from_secs(4 * 3600),
        }
    }
}

/// What one pass did (for tests and logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PassReport {
    /// Messages with at least one delivery attempt.
    pub messages: usize,
    /// Recipients delivered.
    pub delivered: usize,
    /// Recipients deferred (transient failure).
    pub deferred: usize,
    /// Recipients failed (permanently or by expiry).
    pub failed: usize,
    /// Reports queued.
    pub dsns: usize,
    /// Finished messages removed from the spool.
    pub removed: usize,
    /// Problems that did not stop the pass (unreadable envelopes...).
    pub errors: Vec<String>,
}

/// Tells a running [`Runner`] about changes made behind its back (an
/// operator's retry, hold or release through
/// [`QueueAdmin`](crate::admin::QueueAdmin)). Cheap to clone.
#[derive(Debug, Clone)]
pub struct RunnerHandle {
    due: Arc<Mutex<HashMap<QueueId, u64>>>,
    wake: Arc<tokio::sync::Notify>,
}

impl RunnerHandle {
    /// Forgets what the runner remembered of `id`'s next attempt, so the
    /// next pass reads its envelope again.
    pub fn reread(&self, id: &QueueId) {
        self.due
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Starts a pass now (or as soon as one may start).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// The delivery runner. See the module documentation.
pub struct Runner<R, B> {
    store: Arc<dyn Store>,
    settings: Arc<RunnerSettings>,
    router: Arc<R>,
    bounces: Arc<B>,
    provider: Arc<CryptoProvider>,
    resolver: Arc<dyn Resolver>,
    /// The DNSSEC-aware resolver DANE routes need (RFC 7672), if any.
    dane: Option<Arc<dyn DaneResolver>>,
    /// MTA-STS (RFC 8461) for routes that ask for it, if any.
    sts: Option<Arc<StsResolver>>,
    clock: Clock,
    /// When each queued message is next due, as last read or written by
    /// this runner (`u64::MAX`: nothing for the runner to do), so a scan
    /// does not re-read every deferred envelope. Only this runner sets
    /// `next_attempt`, or an operator through a [`RunnerHandle`] (which
    /// forgets the entry), so the cache cannot go stale; a new runner (a
    /// restart) starts empty and reads everything once.
    due: Arc<Mutex<HashMap<QueueId, u64>>>,
    /// Starts a pass before the scan interval is over.
    wake: Arc<tokio::sync::Notify>,
    observers: Vec<Arc<dyn DeliveryObserver>>,
}

// Not derived: a derive would ask `R: Clone` and `B: Clone`.
impl<R, B> Clone for Runner<R, B> {
    fn clone(&self) -> Self {
        Runner {
            store: self.store.clone(),
            settings: self.settings.clone(),
            router: self.router.clone(),
            bounces: self.bounces.clone(),
            provider: self.provider.clone(),
            resolver: self.resolver.clone(),
            dane: self.dane.clone(),
            sts: self.sts.clone(),
            clock: self.clock.clone(),
            due: self.due.clone(),
            wake: self.wake.clone(),
            observers: self.observers.clone(),
        }
    }
}

impl<R: std::fmt::Debug, B: std::fmt::Debug> std::fmt::Debug for Runner<R, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("store", &self.store)
            .field("settings", &self.settings)
            .field("router", &self.router)
            .field("bounces", &self.bounces)
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

impl<R: Router, B: BounceSink> Runner<R, B> {
    /// A runner on `store` that routes with `router` and reports to
    /// `bounces`, with the system DNS resolver, the crypto provider chosen
    /// by the crate's features (aws-lc-rs by default, or ring) and the
    /// system clock. If the system resolver cannot be set up, every
    /// lookup fails transiently (mail waits; it is logged).
    pub fn new(store: Arc<dyn Store>, settings: RunnerSettings, router: R, bounces: B) -> Self {
        let resolver: Arc<dyn Resolver> = match HickoryResolver::from_system_conf() {
            Ok(r) => Arc::new(r),
            Err(e) => {
                tracing::error!(error = %e, "outbound: no DNS resolver; remote mail will be deferred");
                Arc::new(NoResolver(format!("no DNS resolver: {e}")))
            }
        };
        Runner {
            store,
            settings: Arc::new(settings),
            router: Arc::new(router),
            bounces: Arc::new(bounces),
            provider: Arc::new(postern_relay::default_provider()),
            resolver,
            dane: None,
            sts: None,
            clock: system_clock(),
            due: Arc::default(),
            wake: Arc::default(),
            observers: Vec::new(),
        }
    }

    /// Tells `observer` about every delivery attempt (metrics, TLS-RPT's
    /// [`TlsRptRecorder`](crate::tlsrpt::TlsRptRecorder)); each call adds
    /// one, and all are told, in the order they were added.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn DeliveryObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Uses `resolver` for MX and address lookups.
    #[must_use]
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Uses `resolver`, which reports DNSSEC status, for every lookup, so
    /// routes in the relay's DANE modes get DANE (RFC 7672). Without one,
    /// `dane` routes use their fallback and `dane-only` routes defer.
    #[must_use]
    pub fn with_dane_resolver(mut self, resolver: Arc<dyn DaneResolver>) -> Self {
        self.resolver = resolver.clone();
        self.dane = Some(resolver);
        self
    }

    /// Uses `sts` for MTA-STS (RFC 8461): routes whose TLS policy asks for
    /// it get the recipient domain's policy, looked up (and fetched when
    /// its cache says so) as each delivery is planned, so policies are
    /// fetched only for domains with mail waiting.
    #[must_use]
    pub fn with_mta_sts(mut self, sts: Arc<StsResolver>) -> Self {
        self.sts = Some(sts);
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

    /// The settings in use.
    pub fn settings(&self) -> &RunnerSettings {
        &self.settings
    }

    /// The router in use.
    pub fn router(&self) -> &R {
        &self.router
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
            store = ?self.store,
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
                () = self.wake.notified() => {}
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
        let store = self.store.clone();
        let ids = match blocking(move || store.list()).await {
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

    /// Plans, dispatches and records one batch of messages.
    async fn batch(
        &self,
        ids: &[QueueId],
        report: &mut PassReport,
        shutdown: Option<&mut watch::Receiver<bool>>,
    ) {
        let now = (self.clock)();
        let mut work = self.load(ids, now, report).await;
        if work.is_empty() {
            return;
        }
        let groups = self.plan(&mut work, now, report);
        // Recipients decided while planning (deferred routes) are written
        // before any connection is made.
        self.save_all(&mut work, report).await;
        let mut dispatch = dispatch::Dispatch::new(
            self.relay(),
            groups,
            self.settings.parallel_routes,
            self.settings.shutdown_grace,
        );
        let mut shutdown = shutdown;
        while let Some(done) = dispatch.next(shutdown.as_deref_mut()).await {
            match done {
                Ok(done) => self.record_route(&mut work, done, now, report).await,
                Err(e) => {
                    // A delivery task panicked or was cancelled: nothing is
                    // recorded for its recipients, so they are retried.
                    tracing::error!(error = %e, "outbound: delivery task failed");
                    report.errors.push(format!("delivery task: {e}"));
                }
            }
        }
        // Routes never launched, abandoned or failed: their messages keep
        // what finished and skip scheduling and reporting.
        for w in dispatch.unfinished() {
            work[w].interrupt();
        }
        self.record_rest(&mut work, now, report).await;
    }

    /// A handle for operators' tools: make a message due now, start a pass.
    pub fn handle(&self) -> RunnerHandle {
        RunnerHandle {
            due: self.due.clone(),
            wake: self.wake.clone(),
        }
    }

    fn due_cache(&self) -> MutexGuard<'_, HashMap<QueueId, u64>> {
        self.due.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn relay(&self) -> Relay {
        let helo = Host::parse(&self.settings.hostname)
            .map(Host::into_owned)
            .unwrap_or_else(|_| {
                tracing::warn!(hostname = %self.settings.hostname, "outbound: host name is not a valid EHLO name; using localhost");
                Host::parse("localhost")
                    .map(Host::into_owned)
                    .expect("localhost is a valid host")
            });
        let mut session = SessionConfig::new(helo);
        session.timeouts = self.settings.timeouts;
        let mut relay = Relay::new(session, self.provider.clone(), self.resolver.clone());
        if let Some(dane) = &self.dane {
            relay = relay.with_dane_resolver(dane.clone());
        }
        if let Some(sts) = &self.sts {
            relay = relay.with_mta_sts(sts.clone());
        }
        relay
    }
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
