//! Prometheus series of the queue (feature `metrics`): a
//! [`DeliveryObserver`] that counts outbound attempts per recipient and
//! times relay sessions, and gauges of the queue read at each scrape
//! ([`QueueMetrics::refresh`]).
//!
//! | series (after the registry's prefix) | labels |
//! |---|---|
//! | `deliveries_total` | `outcome`, `tls_mode`, `policy_source` (`dane`, `mta-sts`, `opportunistic`, `rule`), `tls` (version or `none`) |
//! | `tls_sessions_total` | `policy_type` (`tlsa`, `sts`, `no-policy-found`), `result` (`success` or an RFC 8460 result type) |
//! | `delivery_attempt_seconds` (histogram) | |
//! | `queue_messages` (gauge) | |
//! | `queue_oldest_message_age_seconds` (gauge) | |
//!
//! ```
//! use prometheus_client::registry::Registry;
//! use postern_queue::metrics::QueueMetrics;
//!
//! let mut registry = Registry::with_prefix("postern");
//! let metrics = QueueMetrics::register(&mut registry);
//! // Give it to the runner: `runner.with_observer(metrics.clone())`, and
//! // call `metrics.refresh(store)` before each scrape.
//! let mut text = String::new();
//! prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
//! assert!(text.contains("postern_queue_messages"));
//! ```

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use postern_relay::tlsrpt::TlsSession;
use postern_relay::{Route, TlsMode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::runner::{DeliveryObserver, RecipientAttempt};
use crate::{QueueId, Store};

type Labels = Vec<(&'static str, String)>;

/// The queue's series; a [`DeliveryObserver`].
#[derive(Debug)]
pub struct QueueMetrics {
    deliveries: Family<Labels, Counter>,
    tls_sessions: Family<Labels, Counter>,
    attempt: Histogram,
    messages: Gauge,
    oldest: Gauge<f64, AtomicU64>,
}

impl QueueMetrics {
    /// Registers the series on `registry` and returns the observer that
    /// feeds them.
    pub fn register(registry: &mut Registry) -> Arc<QueueMetrics> {
        let m = QueueMetrics {
            deliveries: Family::default(),
            tls_sessions: Family::default(),
            attempt: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            messages: Gauge::default(),
            oldest: Gauge::default(),
        };
        registry.register(
            "deliveries",
            "Outbound delivery attempts per recipient, by outcome, TLS mode, policy source and TLS version",
            m.deliveries.clone(),
        );
        registry.register(
            "tls_sessions",
            "Outbound TLS sessions with MX hosts as TLS-RPT counts them (RFC 8460), by policy type and result",
            m.tls_sessions.clone(),
        );
        registry.register(
            "delivery_attempt_seconds",
            "Duration of one outbound relay session, lookup to last reply",
            m.attempt.clone(),
        );
        registry.register(
            "queue_messages",
            "Messages in the queue",
            m.messages.clone(),
        );
        registry.register(
            "queue_oldest_message_age_seconds",
            "Age of the oldest message in the queue",
            m.oldest.clone(),
        );
        Arc::new(m)
    }

    /// Reads the queue's size and the age of its oldest message from
    /// `store` now (ids only: no envelope is read). A store that cannot
    /// list keeps the last values.
    pub fn refresh(&self, store: &dyn Store) {
        if let Ok(ids) = store.list_all() {
            self.messages.set(ids.len().try_into().unwrap_or(i64::MAX));
            // Ids sort by arrival: the smallest is the oldest message.
            let oldest = ids.iter().min().map(QueueId::arrival);
            let age = oldest.and_then(|t| SystemTime::now().duration_since(t).ok());
            self.oldest.set(age.unwrap_or_default().as_secs_f64());
        }
    }
}

/// Where a route's TLS policy came from: `dane` when TLSA records
/// authenticated the server, `mta-sts` when an enforced MTA-STS policy
/// verified it on a route whose own mode does not verify,
/// `opportunistic` for the default, `rule` for a router's explicit mode.
fn policy_source(mode: &TlsMode, dane: bool, sts: bool) -> &'static str {
    match mode.name() {
        _ if dane => "dane",
        _ if sts => "mta-sts",
        "opportunistic" => "opportunistic",
        n if n.starts_with("dane") => "dane",
        _ => "rule",
    }
}

impl DeliveryObserver for QueueMetrics {
    fn route_attempted(&self, _: &Route, elapsed: Duration) {
        self.attempt.observe(elapsed.as_secs_f64());
    }

    fn recipient_attempted(&self, a: &RecipientAttempt<'_>) {
        let mode = &a.route.tls.mode;
        let dane = a.tls.is_some_and(|t| t.dane.is_some());
        let sts = a.route.tls.mta_sts
            && mode.anchors().is_none()
            && a.tls.is_some_and(|t| t.verified && t.dane.is_none());
        let source = policy_source(mode, dane, sts);
        let tls = a.tls.map_or("none", |t| t.version.name());
        let labels: Labels = vec![
            ("outcome", a.outcome.label().to_owned()),
            ("tls_mode", mode.name().to_owned()),
            ("policy_source", source.to_owned()),
            ("tls", tls.to_owned()),
        ];
        self.deliveries.get_or_create(&labels).inc();
    }

    fn tls_sessions(&self, _: &Route, sessions: &[TlsSession]) {
        for s in sessions {
            let result = s
                .failure
                .as_ref()
                .map_or("success", |f| f.result_type.name());
            let labels: Labels = vec![
                ("policy_type", s.policy.policy_type.name().to_owned()),
                ("result", result.to_owned()),
            ];
            self.tls_sessions.get_or_create(&labels).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_sources() {
        assert_eq!(
            policy_source(&TlsMode::Opportunistic, false, false),
            "opportunistic"
        );
        assert_eq!(policy_source(&TlsMode::Opportunistic, true, false), "dane");
        assert_eq!(
            policy_source(&TlsMode::Opportunistic, false, true),
            "mta-sts"
        );
        assert_eq!(policy_source(&TlsMode::DaneOnly, false, false), "dane");
        assert_eq!(policy_source(&TlsMode::Required, false, false), "rule");
    }

    #[test]
    fn an_empty_queue_reads_zero() {
        let dir = std::env::temp_dir().join(format!("postern-qmetrics-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = crate::LogStore::open(&dir).unwrap();
        let mut registry = Registry::with_prefix("postern");
        let m = QueueMetrics::register(&mut registry);
        m.refresh(store.as_ref());
        let mut t = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut t, &registry).unwrap();
        assert!(t.contains("postern_queue_messages 0"), "{t}");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
