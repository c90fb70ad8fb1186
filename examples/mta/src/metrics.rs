//! Prometheus metrics (`[metrics] address`): the listeners' series
//! ([`postern_listener::metrics`]) and the queue's
//! ([`postern_queue::metrics`]) in one registry, the queue read at each
//! scrape, served at `GET /metrics` by [`postern_listener::scrape`]. The
//! series are listed in docs/operations.md.

use std::net::TcpListener as StdListener;
use std::sync::Arc;

use postern_listener::metrics::ListenerMetrics;
use postern_listener::scrape::serve_document;
use postern_queue::Store;
use postern_queue::metrics::QueueMetrics;
use prometheus_client::encoding::prometheus_text::{CONTENT_TYPE, encode};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::Shutdown;

/// The MTA's metrics: one per process, `listener` set on every listener,
/// `queue` on the outbound runner.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The listeners' observer.
    pub listener: Arc<ListenerMetrics>,
    /// The runner's observer and the queue gauges.
    pub queue: Arc<QueueMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("postern");
        let listener = ListenerMetrics::register(&mut registry);
        let queue = QueueMetrics::register(&mut registry);
        Metrics {
            registry,
            listener,
            queue,
        }
    }
}

impl Metrics {
    /// Every series in the Prometheus text format, the queue read now.
    pub fn render(&self, store: &dyn Store) -> String {
        self.queue.refresh(store);
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
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
