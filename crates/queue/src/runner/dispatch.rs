//! Step 2 of a batch: deliver the route groups, a few at a time, and stop
//! cleanly on shutdown.

use std::collections::HashMap;
use std::time::Duration;

use postern_relay::tlsrpt::TlsSession;
use postern_relay::{MessageResult, Relay, Route};
use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use super::plan::RouteGroup;
use super::{stopping, wait_stop};

/// What one route delivered.
pub(super) struct RouteDone {
    /// The route as logs name it.
    pub(super) label: String,
    /// The work items it carried.
    pub(super) members: Vec<usize>,
    /// Per transaction: work index, recipient indexes, the result.
    pub(super) results: Vec<(usize, Vec<usize>, MessageResult)>,
    /// The TLS sessions tried, for TLS-RPT.
    pub(super) tls_sessions: Vec<TlsSession>,
    /// The route delivered on (for the observer).
    pub(super) route: Route,
    /// How long the relay session took.
    pub(super) elapsed: Duration,
}

/// The routes of one batch on their way out.
pub(super) struct Dispatch {
    relay: Relay,
    /// Not launched yet, in reverse order (popped from the end).
    queue: Vec<(usize, RouteGroup)>,
    /// Launched, not finished: group index -> work items.
    launched: HashMap<usize, Vec<usize>>,
    set: JoinSet<(usize, RouteDone)>,
    parallel: usize,
    grace: Duration,
    stopping_at: Option<Instant>,
}

impl Dispatch {
    pub(super) fn new(
        relay: Relay,
        groups: Vec<RouteGroup>,
        parallel: usize,
        grace: Duration,
    ) -> Self {
        let mut queue: Vec<(usize, RouteGroup)> = groups.into_iter().enumerate().collect();
        queue.reverse();
        Dispatch {
            relay,
            queue,
            launched: HashMap::new(),
            set: JoinSet::new(),
            parallel: parallel.max(1),
            grace,
            stopping_at: None,
        }
    }

    /// Launches what may start and waits for the next route to finish.
    /// `None` once nothing is in flight and nothing may start (all done,
    /// or shutdown). After a shutdown, deliveries in flight get the grace
    /// period, then are abandoned.
    pub(super) async fn next(
        &mut self,
        mut shutdown: Option<&mut watch::Receiver<bool>>,
    ) -> Option<Result<RouteDone, JoinError>> {
        loop {
            if self.stopping_at.is_none() && shutdown.as_deref().is_some_and(stopping) {
                self.stopping_at = Some(Instant::now() + self.grace);
            }
            while self.stopping_at.is_none() && self.set.len() < self.parallel {
                let Some((gi, group)) = self.queue.pop() else {
                    break;
                };
                self.launch(gi, group);
            }
            if self.set.is_empty() {
                return None;
            }
            let next = match (self.stopping_at, shutdown.as_deref_mut()) {
                (Some(deadline), _) => {
                    match tokio::time::timeout_at(deadline, self.set.join_next()).await {
                        Ok(n) => n,
                        Err(_) => {
                            tracing::warn!(
                                in_flight = self.set.len(),
                                "outbound: shutdown grace period over; abandoning deliveries in flight (they will be retried)"
                            );
                            self.set.abort_all();
                            while self.set.join_next().await.is_some() {}
                            return None;
                        }
                    }
                }
                (None, Some(rx)) => tokio::select! {
                    n = self.set.join_next() => n,
                    () = wait_stop(rx) => continue,
                },
                (None, None) => self.set.join_next().await,
            };
            return match next? {
                Ok((gi, done)) => {
                    self.launched.remove(&gi);
                    Some(Ok(done))
                }
                // The group's members stay in `launched`: unfinished.
                Err(e) => Some(Err(e)),
            };
        }
    }

    /// The work items of routes that did not finish (never launched,
    /// abandoned, or failed).
    pub(super) fn unfinished(self) -> impl Iterator<Item = usize> {
        self.launched
            .into_values()
            .flatten()
            .chain(self.queue.into_iter().flat_map(|(_, g)| g.members()))
    }

    fn launch(&mut self, gi: usize, group: RouteGroup) {
        let members = group.members();
        self.launched.insert(gi, members.clone());
        let relay = self.relay.clone();
        self.set.spawn(async move {
            let RouteGroup {
                route,
                label,
                transactions,
            } = group;
            let (index, messages): (Vec<(usize, Vec<usize>)>, Vec<_>) = transactions
                .into_iter()
                .map(|(w, r, m)| ((w, r), m))
                .unzip();
            let started = Instant::now();
            let delivery = relay.deliver_reporting(&route, messages).await;
            let elapsed = started.elapsed();
            let results = index
                .into_iter()
                .zip(delivery.results)
                .map(|((w, r), m)| (w, r, m))
                .collect();
            (
                gi,
                RouteDone {
                    label,
                    members,
                    results,
                    tls_sessions: delivery.tls_sessions,
                    route,
                    elapsed,
                },
            )
        });
    }
}
