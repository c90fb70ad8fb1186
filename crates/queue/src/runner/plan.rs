//! Step 1 of a batch: load the due messages and group their open remote
//! recipients by route.

use std::io;

use bytes::Bytes;
use postern_proto::{ForwardPath, RcptParams};
use postern_relay::{Message, Recipient, Route, Target};

use super::{PassReport, RecipientOutcome, Router, Runner, blocking};
use crate::bounce::BounceSink;
use crate::report::{self, Diagnosis, status};
use crate::{Envelope, Hold, QueueId, RcptStatus, RecipientState};

/// A message being worked on in a batch.
pub(super) struct Work {
    pub(super) id: QueueId,
    /// Released as soon as the message is recorded for this pass, so local
    /// delivery and other passes need not wait for the whole batch.
    pub(super) hold: Option<Hold>,
    pub(super) env: Envelope,
    pub(super) body: Bytes,
    /// Routes still delivering this message.
    pub(super) open_routes: usize,
    /// Outcomes not written to the envelope yet: permanent failures (until
    /// their report is queued) and deliveries that owe a "relayed" report.
    pub(super) owed: Vec<(usize, RecipientOutcome)>,
    pub(super) progress: Progress,
    /// The envelope changed since it was last written.
    pub(super) unsaved: bool,
    pub(super) last_attempt: u64,
}

/// Where a message stands in this batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Progress {
    /// Loaded; no recipient decided yet.
    Untried,
    /// Some recipient was decided; recorded when its routes are done.
    Attempted,
    /// Recorded (scheduled, reported, or removed) for this pass.
    Recorded,
    /// A route of it was abandoned (shutdown): what finished is saved,
    /// nothing is scheduled or reported.
    Interrupted,
}

impl Work {
    /// Marks a route of this message as abandoned.
    pub(super) fn interrupt(&mut self) {
        if self.progress != Progress::Recorded {
            self.progress = Progress::Interrupted;
            self.open_routes = 0;
            // Failures are not recorded: retried (and failed again) later.
            self.owed
                .retain(|(_, o)| matches!(o, RecipientOutcome::Delivered { .. }));
        }
    }
}

/// A work item's recipients on one route: work index, recipient indexes.
type Members = (usize, Vec<usize>);

/// One route's share of a batch, ready to be delivered.
pub(super) struct RouteGroup {
    pub(super) route: Route,
    /// The route as logs and `Remote-MTA` name it when no server answered.
    pub(super) label: String,
    /// One per transaction: work index, recipient indexes, the message.
    pub(super) transactions: Vec<(usize, Vec<usize>, Message)>,
}

impl RouteGroup {
    /// The work items this route carries (each once).
    pub(super) fn members(&self) -> Vec<usize> {
        let mut m: Vec<usize> = self.transactions.iter().map(|(w, _, _)| *w).collect();
        m.dedup();
        m
    }
}

impl<R: Router, B: BounceSink> Runner<R, B> {
    /// Holds and loads the due messages among `ids`; removes finished ones.
    pub(super) async fn load(
        &self,
        ids: &[QueueId],
        now: u64,
        report: &mut PassReport,
    ) -> Vec<Work> {
        let mut work = Vec::new();
        for id in ids {
            // Off the runtime's threads: a shared store's hold is a
            // database round trip.
            let store = self.store.clone();
            let key = id.clone();
            let held = tokio::task::spawn_blocking(move || store.hold(&key)).await;
            let Ok(Some(hold)) = held else {
                continue;
            };
            let store = self.store.clone();
            let key = id.clone();
            let env = match blocking(move || store.load(&key)).await {
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
                let store = self.store.clone();
                let key = id.clone();
                match blocking(move || store.remove(&key)).await {
                    Ok(()) => report.removed += 1,
                    Err(e) => report.errors.push(format!("{id}: removing: {e}")),
                }
                continue;
            }
            if !env.has_open_remote() || env.on_hold {
                self.due_cache().insert(id.clone(), u64::MAX);
                continue;
            }
            if env.next_attempt > now {
                self.due_cache().insert(id.clone(), env.next_attempt);
                continue;
            }
            let store = self.store.clone();
            let key = id.clone();
            let body = match blocking(move || store.body(&key)).await {
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
                owed: Vec::new(),
                progress: Progress::Untried,
                unsaved: false,
                last_attempt: now,
            });
        }
        work
    }

    /// Groups the open remote recipients of `work` by route. Recipients of
    /// a message that cannot be sent (a mail loop) fail here; those the
    /// router cannot route now are deferred here. (Addresses are typed in
    /// the envelope: one that does not parse never loads.)
    pub(super) fn plan(
        &self,
        work: &mut [Work],
        now: u64,
        report: &mut PassReport,
    ) -> Vec<RouteGroup> {
        let mut groups: Vec<(Route, Vec<Members>)> = Vec::new();
        for (wi, w) in work.iter_mut().enumerate() {
            w.last_attempt = now;
            let refusal = refusal(w, self.settings.max_received);
            for ri in 0..w.env.recipients.len() {
                let r = &w.env.recipients[ri];
                if r.local || !r.status.is_open() {
                    continue;
                }
                if let Some(diag) = refusal.clone() {
                    log_attempt(&w.id, &r.address, "-", None, "failed", &diag);
                    w.owed.push((ri, RecipientOutcome::Failed(diag)));
                    w.progress = Progress::Attempted;
                    continue;
                }
                let route = match self.router.route(&w.env, r) {
                    // RFC 8689 §4.1: the sender waived the recipient's
                    // published policy (never with REQUIRETLS, §4.1).
                    Ok(mut route) if tls_required_no(w) => {
                        route.tls.mode = route.tls.mode.ignoring_recipient_policy();
                        // MTA-STS is a recipient policy too (§4.1).
                        route.tls.mta_sts = false;
                        route
                    }
                    Ok(route) => route,
                    Err(diag) => {
                        log_attempt(&w.id, &r.address, "-", None, "deferred", &diag);
                        w.env.recipients[ri].status = RcptStatus::Deferred(diag);
                        w.unsaved = true;
                        w.progress = Progress::Attempted;
                        report.deferred += 1;
                        continue;
                    }
                };
                let g = match groups.iter().position(|(g, _)| *g == route) {
                    Some(g) => g,
                    None => {
                        groups.push((route, Vec::new()));
                        groups.len() - 1
                    }
                };
                let members = &mut groups[g].1;
                match members.iter_mut().find(|(m, _)| *m == wi) {
                    Some((_, list)) => list.push(ri),
                    None => {
                        members.push((wi, vec![ri]));
                        w.open_routes += 1;
                    }
                }
            }
        }
        groups
            .into_iter()
            .map(|(route, members)| RouteGroup {
                label: describe(&route),
                transactions: self.transactions(work, &members),
                route,
            })
            .collect()
    }

    /// The relay messages for one route: one per work item, split into
    /// transactions of at most `max_recipients`.
    fn transactions(
        &self,
        work: &[Work],
        members: &[Members],
    ) -> Vec<(usize, Vec<usize>, Message)> {
        let mut out = Vec::new();
        for (wi, rcpts) in members {
            let w = &work[*wi];
            for chunk in rcpts.chunks(self.settings.max_recipients.max(1)) {
                let recipients: Vec<Recipient> = chunk
                    .iter()
                    .map(|&ri| recipient_for(&w.env.recipients[ri]))
                    .collect();
                let mut m = Message::new(w.env.sender.clone(), recipients, w.body.clone());
                m.ret = w.env.params.ret;
                m.envid = w.env.params.envid.clone();
                m.body_type = w.env.params.body;
                m = m.with_requiretls(w.env.params.requiretls);
                out.push((*wi, chunk.to_vec(), m));
            }
        }
        out
    }
}

/// The message carries `TLS-Required: No` (RFC 8689 §4.1) and was not
/// sent with REQUIRETLS, whose presence makes the header field ignored.
fn tls_required_no(w: &Work) -> bool {
    !w.env.params.requiretls && has_tls_required_no(report::header_block(&w.body))
}

/// A `TLS-Required` header field whose value is `No` (case-insensitive,
/// folding whitespace allowed) in `headers`.
fn has_tls_required_no(headers: &[u8]) -> bool {
    header_values(headers, "TLS-Required").any(|v| v.eq_ignore_ascii_case("no"))
}

/// The message is a TLS-RPT report (RFC 8460 §5.3 names its
/// `TLS-Report-Domain` field). The sessions that carry reports are not
/// counted in the next ones (§3).
pub(super) fn is_tls_report(w: &Work) -> bool {
    header_values(report::header_block(&w.body), "TLS-Report-Domain")
        .next()
        .is_some()
}

/// The unfolded, trimmed values of the header fields called `name` in
/// `headers`.
fn header_values<'a>(headers: &'a [u8], name: &'a str) -> impl Iterator<Item = String> + 'a {
    (report::header_fields(headers).into_iter())
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| {
            let v = String::from_utf8_lossy(v).replace(['\r', '\n'], "");
            v.trim().to_owned()
        })
}

/// Why none of `w`'s recipients can be relayed at all: a mail loop.
fn refusal(w: &Work, max_received: usize) -> Option<Diagnosis> {
    let hops = received_count(&w.body);
    (hops > max_received).then(|| {
        Diagnosis::local(
            status(5, 4, 6),
            &format!("routing loop detected: {hops} Received header fields"),
            None,
        )
    })
}

/// The relay recipient (with NOTIFY and ORCPT passed on, RFC 3461 §4).
fn recipient_for(r: &RecipientState) -> Recipient {
    let params = RcptParams {
        notify: r.notify,
        orcpt: r.orcpt.clone(),
        ..RcptParams::default()
    };
    Recipient::new(ForwardPath::Mailbox(r.address.clone())).with_params(params)
}

/// Names a route for logs and `Remote-MTA` when no server answered: the
/// smart host's name, or the MX domain.
fn describe(route: &Route) -> String {
    match &route.target {
        Target::SmartHost { host, .. } => host.clone(),
        Target::Mx { domain, .. } => format!("MX of {domain}"),
        other => other.to_string(),
    }
}

/// How many `Received` fields the message's header has (RFC 5321 §6.3).
fn received_count(message: &[u8]) -> usize {
    (report::header_fields(report::header_block(message)).iter())
        .filter(|(name, _)| name.eq_ignore_ascii_case("received"))
        .count()
}

pub(super) fn log_attempt(
    id: &QueueId,
    recipient: &postern_proto::Mailbox<'_>,
    route: &str,
    tls: Option<&str>,
    result: &str,
    diag: &Diagnosis,
) {
    tracing::info!(
        target: "postern_queue::runner",
        queue_id = %id,
        recipient = %recipient,
        host = diag.remote_mta.as_deref().unwrap_or(route),
        tls = tls.unwrap_or("none"),
        result,
        status = %diag.status,
        reply = %diag,
        "delivery attempt"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_fields_are_counted_in_the_header_only() {
        let m = b"Received: a\r\nRECEIVED:b\r\n\tcontinued\r\nSubject: x\r\n\r\nReceived: in the body\r\n";
        assert_eq!(received_count(m), 2);
        assert_eq!(received_count(b""), 0);
    }
}
