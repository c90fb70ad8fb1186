//! Prometheus series of the listeners (feature `metrics`): an
//! [`Observer`] that counts connections, limiter refusals, failed TLS
//! handshakes, AUTH results, accepted messages and refusals, and times the
//! commit before each `250`.
//!
//! The series are registered on the embedder's
//! [`prometheus_client::registry::Registry`], beside its own, and served
//! however it likes (for instance with [`crate::scrape::serve_document`]).
//! Set the same [`ListenerMetrics`] on every listener
//! ([`ListenerConfig::observer`](crate::ListenerConfig)).
//!
//! | series (after the registry's prefix) | labels |
//! |---|---|
//! | `smtp_connections_total` | `listener`, `tls` (the version it ended on, or `none`) |
//! | `smtp_throttled_total` | `listener`, `limit` ([`Throttle::name`]) |
//! | `tls_handshake_failures_total` | `listener`, `reason` ([`HandshakeFailure::name`]) |
//! | `smtp_auth_total` | `listener`, `mechanism`, `result` (`success`, `failure`, `throttled`, `banned`) |
//! | `smtp_messages_accepted_total` | `listener` |
//! | `smtp_refused_total` | `listener`, `stage`, `code`, `enhanced` (or `none`) |
//! | `smtp_commit_seconds` (histogram) | |
//!
//! ```
//! use prometheus_client::registry::Registry;
//! use postern_listener::metrics::ListenerMetrics;
//!
//! let mut registry = Registry::with_prefix("postern");
//! let metrics = ListenerMetrics::register(&mut registry);
//! let mut text = String::new();
//! prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
//! assert!(text.contains("postern_smtp_commit_seconds"));
//! # drop(metrics);
//! ```

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::observe::{Answer, Closed, HandshakeFailure, Observer, Throttle};

type Labels = Vec<(&'static str, String)>;
type Counters = Family<Labels, Counter>;

/// Adds one to the series of `family` with these labels.
fn count(family: &Counters, labels: &[(&'static str, &str)]) {
    let labels: Labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    family.get_or_create(&labels).inc();
}

/// The listeners' series; an [`Observer`].
#[derive(Debug)]
pub struct ListenerMetrics {
    connections: Counters,
    throttled: Counters,
    handshake_failures: Counters,
    auth: Counters,
    accepted: Counters,
    refused: Counters,
    commit: Histogram,
}

impl ListenerMetrics {
    /// Registers the series on `registry` and returns the observer that
    /// feeds them.
    pub fn register(registry: &mut Registry) -> Arc<ListenerMetrics> {
        let m = ListenerMetrics {
            connections: Counters::default(),
            throttled: Counters::default(),
            handshake_failures: Counters::default(),
            auth: Counters::default(),
            accepted: Counters::default(),
            refused: Counters::default(),
            commit: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
        };
        let counters = [
            (
                "smtp_connections",
                "SMTP connections ended, by listener and the TLS version they ended on",
                &m.connections,
            ),
            // The abuse limiters report here through the same hook.
            (
                "smtp_throttled",
                "Connections refused by a limit before their session, by listener and limit",
                &m.throttled,
            ),
            (
                "tls_handshake_failures",
                "Failed inbound TLS handshakes, by listener and reason",
                &m.handshake_failures,
            ),
            (
                "smtp_auth",
                "AUTH attempts answered, by listener, mechanism and result",
                &m.auth,
            ),
            (
                "smtp_messages_accepted",
                "Messages accepted (committed, then 250), by listener",
                &m.accepted,
            ),
            (
                "smtp_refused",
                "Refusals answered by the handler, by listener, stage, reply code and enhanced code",
                &m.refused,
            ),
        ];
        for (name, help, family) in counters {
            registry.register(name, help, family.clone());
        }
        let help = "Time to make a message durable before its 250";
        registry.register("smtp_commit_seconds", help, m.commit.clone());
        Arc::new(m)
    }
}

impl Observer for ListenerMetrics {
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
    use super::*;

    #[test]
    fn auth_refusals_of_the_guard_are_told_apart() {
        assert_eq!(auth_result(true, Some(235)), "success");
        assert_eq!(auth_result(false, Some(535)), "failure");
        assert_eq!(auth_result(false, Some(454)), "throttled");
        assert_eq!(auth_result(false, Some(421)), "banned");
    }

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn throttles_and_handshake_failures_are_counted_by_label() {
        let mut registry = Registry::with_prefix("postern");
        let m = ListenerMetrics::register(&mut registry);
        m.throttled("mta", Throttle::ConnectionRate);
        m.throttled("mta", Throttle::ConnectionRate);
        let t = text(&registry);
        assert!(
            t.contains(
                "postern_smtp_throttled_total{listener=\"mta\",limit=\"connection_rate\"} 2"
            ),
            "{t}"
        );
        assert!(
            t.contains("# TYPE postern_smtp_commit_seconds histogram"),
            "{t}"
        );
    }
}
