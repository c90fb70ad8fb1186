//! Prometheus metrics (`[metrics] address`): families fed by the
//! listeners' [`Observer`] and the runner's [`DeliveryObserver`] hooks, the
//! queue read at each scrape, served at `GET /metrics` by
//! [`postern_listener::scrape`]. The series are listed in docs/operations.md.

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use postern_listener::observe::{Answer, Closed, HandshakeFailure, Observer, Throttle};
use postern_listener::scrape::serve_document;
use postern_queue::runner::{DeliveryObserver, RecipientAttempt};
use postern_queue::{QueueId, Store};
use postern_relay::{Route, TlsMode};
use prometheus_client::encoding::prometheus_text::{CONTENT_TYPE, encode};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::Shutdown;

type Labels = Vec<(&'static str, String)>;
type Counters = Family<Labels, Counter>;

/// Adds one to the series of `family` with these labels.
fn count(family: &Counters, labels: &[(&'static str, &str)]) {
    let labels: Labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    family.get_or_create(&labels).inc();
}

/// Declares [`Metrics`] and registers its series, one line each: field,
/// type, name (after the `postern_` prefix; counters get `_total`), help.
macro_rules! series {
    ($($field:ident: $ty:ty = $new:expr, $name:literal, $help:literal;)*) => {
        /// The MTA's metrics: one per process, set on every listener and on
        /// the outbound runner.
        #[derive(Debug)]
        pub struct Metrics { registry: Registry, $($field: $ty,)* }

        impl Default for Metrics {
            fn default() -> Self {
                let mut registry = Registry::with_prefix("postern");
                $(let $field: $ty = $new; registry.register($name, $help, $field.clone());)*
                Metrics { registry, $($field,)* }
            }
        }
    };
}

series! {
    connections: Counters = Counters::default(), "smtp_connections", "SMTP connections ended, by listener and the TLS version they ended on";
    // The abuse limiters (AUTH failures, connection rates) report here through the same hook, Observer::throttled.
    throttled: Counters = Counters::default(), "smtp_throttled", "Connections refused by a limit before their session, by listener and limit";
    handshake_failures: Counters = Counters::default(), "tls_handshake_failures", "Failed inbound TLS handshakes, by listener and reason";
    auth: Counters = Counters::default(), "smtp_auth", "AUTH attempts answered, by listener, mechanism and result";
    accepted: Counters = Counters::default(), "smtp_messages_accepted", "Messages accepted (committed, then 250), by listener";
    refused: Counters = Counters::default(), "smtp_refused", "Refusals answered by the handler, by listener, stage, reply code and enhanced code";
    deliveries: Counters = Counters::default(), "deliveries", "Outbound delivery attempts per recipient, by outcome, TLS mode, policy source and TLS version";
    commit: Histogram = Histogram::new(exponential_buckets(0.0005, 2.0, 14)), "smtp_commit_seconds", "Time to make a message durable before its 250";
    attempt: Histogram = Histogram::new(exponential_buckets(0.01, 2.0, 14)), "delivery_attempt_seconds", "Duration of one outbound relay session, lookup to last reply";
    queue_messages: Gauge = Gauge::default(), "queue_messages", "Messages in the queue";
    queue_oldest: Gauge<f64, AtomicU64> = Gauge::default(), "queue_oldest_message_age_seconds", "Age of the oldest message in the queue";
}

impl Metrics {
    /// Every series in the Prometheus text format, the queue read now.
    pub fn render(&self, store: &dyn Store) -> String {
        if let Ok(ids) = store.list_all() {
            self.queue_messages
                .set(ids.len().try_into().unwrap_or(i64::MAX));
            // Ids sort by arrival: the smallest is the oldest message.
            let oldest = ids.iter().min().map(QueueId::arrival);
            let age = oldest.and_then(|t| SystemTime::now().duration_since(t).ok());
            self.queue_oldest.set(age.unwrap_or_default().as_secs_f64());
        }
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Observer for Metrics {
    fn throttled(&self, listener: &str, throttle: Throttle) {
        let l = [("listener", listener), ("limit", throttle.name())];
        count(&self.throttled, &l);
    }

    fn handshake_failed(&self, listener: &str, failure: HandshakeFailure) {
        let l = [("listener", listener), ("reason", failure.name())];
        count(&self.handshake_failures, &l);
    }

    fn answered(&self, a: &Answer<'_>) {
        let (stage, listener, ok) = (a.question.name(), a.listener, a.is_positive());
        if stage == "message" {
            self.commit.observe(a.elapsed.as_secs_f64());
        }
        if let Some(m) = a.mechanism {
            let result = auth_result(ok, a.code.map(|c| c.get()));
            let l = [
                ("listener", listener),
                ("mechanism", m.as_str()),
                ("result", result),
            ];
            count(&self.auth, &l);
        } else if ok && stage == "message" {
            count(&self.accepted, &[("listener", listener)]);
        } else if let Some(code) = a.code.filter(|_| !ok) {
            let (code, enhanced) = (code.to_string(), a.enhanced.map(|e| e.to_string()));
            let enhanced = enhanced.as_deref().unwrap_or("none");
            let l = [
                ("listener", listener),
                ("stage", stage),
                ("code", &code),
                ("enhanced", enhanced),
            ];
            count(&self.refused, &l);
        }
    }

    fn closed(&self, c: &Closed<'_>) {
        let tls = c.tls.map_or("none", |v| v.name());
        count(&self.connections, &[("listener", c.listener), ("tls", tls)]);
    }
}

/// Where a route's TLS policy came from: `dane` when TLSA records
/// authenticated the server, `opportunistic` for the default, `rule` for a
/// rule's `relay_tls`; `mta-sts` is reserved for when the router learns it.
fn policy_source(mode: &TlsMode, dane: bool) -> &'static str {
    match mode.name() {
        _ if dane => "dane",
        "opportunistic" => "opportunistic",
        n if n.starts_with("dane") => "dane",
        _ => "rule",
    }
}

impl DeliveryObserver for Metrics {
    fn route_attempted(&self, _: &Route, elapsed: Duration) {
        self.attempt.observe(elapsed.as_secs_f64());
    }

    fn recipient_attempted(&self, a: &RecipientAttempt<'_>) {
        let mode = &a.route.tls.mode;
        let source = policy_source(mode, a.tls.is_some_and(|t| t.dane.is_some()));
        let (tls, outcome) = (
            a.tls.map_or("none", |t| t.version.name()),
            a.outcome.label(),
        );
        let l = [
            ("outcome", outcome),
            ("tls_mode", mode.name()),
            ("policy_source", source),
            ("tls", tls),
        ];
        count(&self.deliveries, &l);
    }
}

/// Where the metrics are served.
const PATH: &str = "/metrics";

/// Serves `GET /metrics` on `socket` (bound by the caller, so a taken
/// address fails the start) from a new task, until `shutdown`.
pub fn spawn(
    socket: StdListener,
    metrics: Arc<Metrics>,
    store: &Arc<dyn Store>,
    shutdown: &Shutdown,
) {
    let (store, shutdown) = (store.clone(), shutdown.clone());
    let render = move || metrics.render(store.as_ref());
    let nonblocking = socket.set_nonblocking(true);
    let l = match nonblocking.and_then(|()| TcpListener::from_std(socket)) {
        Ok(l) => l,
        Err(e) => return tracing::error!(error = %e, "cannot serve metrics"),
    };
    tokio::spawn(serve_document(l, PATH, CONTENT_TYPE, render, shutdown));
}

/// The `result` label of an AUTH answer: the AUTH guard's refusals
/// (`454 4.7.0` throttled, `421 4.7.0` banned) apart from wrong passwords.
fn auth_result(ok: bool, code: Option<u16>) -> &'static str {
    match (ok, code) {
        (true, _) => "success",
        (false, Some(454)) => "throttled",
        (false, Some(421)) => "banned",
        _ => "failure",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn auth_refusals_of_the_guard_are_told_apart() {
        use super::auth_result;
        assert_eq!(auth_result(true, Some(235)), "success");
        assert_eq!(auth_result(false, Some(535)), "failure");
        assert_eq!(auth_result(false, Some(454)), "throttled");
        assert_eq!(auth_result(false, Some(421)), "banned");
    }
}
