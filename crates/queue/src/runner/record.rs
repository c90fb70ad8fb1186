//! Step 3 of a batch: turn relay results into recipient outcomes, write
//! them to the envelopes, report failures, schedule the next attempt.

use std::time::Duration;

use super::dispatch::RouteDone;
use super::plan::{Progress, Work, is_tls_report, log_attempt};
use super::{PassReport, RecipientAttempt, RecipientOutcome, Router, Runner, blocking};
use crate::bounce::{BounceRequest, BounceSink};
use crate::report::{self, Diagnosis, DsnAction};
use crate::{QueueId, RcptStatus};
use postern_proto::ReversePath;

impl<R: Router, B: BounceSink> Runner<R, B> {
    /// Records one finished route: every recipient's outcome, then the
    /// messages whose routes are all done.
    pub(super) async fn record_route(
        &self,
        work: &mut [Work],
        done: RouteDone,
        started: u64,
        report: &mut PassReport,
    ) {
        // RFC 8460 §3: the sessions that carried only TLS-RPT reports are
        // not counted in the next reports.
        let reports_only =
            !done.members.is_empty() && done.members.iter().all(|&wi| is_tls_report(&work[wi]));
        for o in &self.observers {
            o.route_attempted(&done.route, done.elapsed);
            if !done.tls_sessions.is_empty() && !reports_only {
                o.tls_sessions(&done.route, &done.tls_sessions);
            }
        }
        for (wi, rcpts, result) in &done.results {
            let w = &mut work[*wi];
            w.progress = Progress::Attempted;
            w.last_attempt = (self.clock)();
            let tls = result.tls.as_ref().map(|t| {
                let verified = if t.verified {
                    "verified"
                } else {
                    "not-verified"
                };
                // Under DANE the record that authenticated the server.
                match &t.dane {
                    Some(m) => format!("{} {} dane {m}", t.version, t.cipher),
                    None => format!("{} {} {verified}", t.version, t.cipher),
                }
            });
            // Without a server (no session could be set up), name the
            // route: the smart host, or the MX domain.
            let server = result
                .server
                .clone()
                .or_else(|| (!done.label.starts_with("MX of ")).then(|| done.label.clone()));
            for (&ri, r) in rcpts.iter().zip(&result.recipients) {
                let outcome = RecipientOutcome::of(result, r, server.clone());
                let address = &w.env.recipients[ri].address;
                log_attempt(
                    &w.id,
                    address,
                    &done.label,
                    tls.as_deref(),
                    outcome.label(),
                    outcome.diagnosis(),
                );
                for o in &self.observers {
                    o.recipient_attempted(&RecipientAttempt {
                        route: &done.route,
                        outcome: &outcome,
                        tls: result.tls.as_ref(),
                    });
                }
                apply(w, ri, outcome, report);
            }
        }
        for &wi in &done.members {
            work[wi].open_routes = work[wi].open_routes.saturating_sub(1);
        }
        self.save_all(work, report).await;
        self.finish_ready(work, started, report).await;
    }

    /// After the last route: saves what is unsaved, finishes what is ready,
    /// and queues the "relayed" reports interrupted messages still owe.
    pub(super) async fn record_rest(
        &self,
        work: &mut [Work],
        started: u64,
        report: &mut PassReport,
    ) {
        self.save_all(work, report).await;
        self.finish_ready(work, started, report).await;
        for w in work.iter_mut() {
            self.send_relayed(w, started, report).await;
        }
    }

    /// Writes every envelope that changed.
    pub(super) async fn save_all(&self, work: &mut [Work], report: &mut PassReport) {
        for w in work.iter_mut().filter(|w| w.unsaved) {
            self.save(w, report).await;
        }
    }

    async fn save(&self, w: &mut Work, report: &mut PassReport) {
        let store = self.store.clone();
        let id = w.id.clone();
        let env = w.env.clone();
        match blocking(move || store.update(&id, &env)).await {
            Ok(()) => w.unsaved = false,
            Err(e) => {
                tracing::error!(queue_id = %w.id, error = %e, "outbound: cannot record delivery results");
                report.errors.push(format!("{}: update: {e}", w.id));
            }
        }
    }

    /// Finishes every message whose routes are all done.
    async fn finish_ready(&self, work: &mut [Work], started: u64, report: &mut PassReport) {
        for w in work.iter_mut() {
            if w.open_routes == 0 && w.progress == Progress::Attempted {
                self.finish(w, started, report).await;
                w.progress = Progress::Recorded;
                // Counted once, finished once.
                report.messages += 1;
            }
        }
    }

    /// Reports failures (and, past the maximum age, what is still
    /// deferred), schedules the next attempt, removes a finished message.
    async fn finish(&self, w: &mut Work, started: u64, report: &mut PassReport) {
        let now = (self.clock)().max(started);
        w.env.attempts = w.env.attempts.saturating_add(1);
        let max_age = self.settings.retry.max_age;
        let expires = w.env.arrival.saturating_add(max_age.as_secs());
        let expired = now >= expires;
        let mut failed: Vec<(usize, Diagnosis)> = Vec::new();
        w.owed.retain(|(ri, o)| match o {
            RecipientOutcome::Failed(d) => {
                failed.push((*ri, d.clone()));
                false
            }
            _ => true,
        });
        let permanent = failed.len();
        if expired {
            for (ri, r) in w.env.recipients.iter().enumerate() {
                if r.local || !r.status.is_open() || failed.iter().any(|(b, _)| *b == ri) {
                    continue;
                }
                failed.push((ri, expiry_diagnosis(&r.status)));
            }
        }
        if !failed.is_empty() {
            self.report_failures(w, &failed, permanent, now, expired, report)
                .await;
        }
        self.send_relayed(w, now, report).await;
        if !expired {
            self.report_delay(w, now, report).await;
        }
        if w.env.has_open_remote() {
            let delay = self.settings.retry.delay(w.env.attempts).as_secs().max(1);
            let mut next = now.saturating_add(delay).min(expires.max(now + 1));
            // A delay report still owed is sent on time, not at whatever
            // attempt the backoff next allows.
            if let Some(warn) = self.delay_report_due(w).filter(|t| *t > now) {
                next = next.min(warn);
            }
            w.env.next_attempt = next;
        }
        if w.env.is_finished() {
            let store = self.store.clone();
            let id = w.id.clone();
            match blocking(move || store.remove(&id)).await {
                Ok(()) => {
                    report.removed += 1;
                    w.unsaved = false;
                }
                Err(e) => {
                    report.errors.push(format!("{}: remove: {e}", w.id));
                    self.save(w, report).await;
                }
            }
        } else {
            self.save(w, report).await;
        }
        if !w.unsaved {
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

    /// Queues the failure report for `failed` (the first `permanent` of
    /// them failed now, the rest expired), then marks them `Failed`; if the
    /// report cannot be queued they stay open and are retried.
    async fn report_failures(
        &self,
        w: &mut Work,
        failed: &[(usize, Diagnosis)],
        permanent: usize,
        now: u64,
        expired: bool,
        report: &mut PassReport,
    ) {
        let max_age = self.settings.retry.max_age;
        let reason = expired.then(|| {
            format!(
                "The message stayed in the queue for {} without being delivered; delivery has been given up.",
                human(max_age)
            )
        });
        match self
            .queue_report(w, DsnAction::Failed, failed.to_vec(), now, reason)
            .await
        {
            Ok(dsn) => {
                if let Some(dsn) = &dsn {
                    report.dsns += 1;
                    tracing::info!(queue_id = %w.id, dsn = %dsn, recipients = failed.len(), "outbound: DSN queued to the sender");
                }
                for (i, (ri, d)) in failed.iter().enumerate() {
                    let mut d = d.clone();
                    if i >= permanent {
                        let gave_up = format!("gave up: queued longer than {}", human(max_age));
                        d.detail = Some(match d.detail.take() {
                            Some(detail) => format!("{detail}; {gave_up}"),
                            None => gave_up,
                        });
                    }
                    w.env.recipients[*ri].status = RcptStatus::Failed(d);
                    report.failed += 1;
                }
            }
            Err(e) => {
                tracing::error!(queue_id = %w.id, error = %e, "outbound: cannot queue the DSN; recipients kept for retry");
                report.errors.push(format!("{}: DSN: {e}", w.id));
                for (ri, d) in failed {
                    w.env.recipients[*ri].status = RcptStatus::Deferred(d.clone());
                }
            }
        }
        w.unsaved = true;
    }

    /// Queues the "relayed" report owed for `w`, if any. Best effort: the
    /// recipients are delivered whatever happens here, so a failure to
    /// queue the report is logged and not retried.
    async fn send_relayed(&self, w: &mut Work, now: u64, report: &mut PassReport) {
        let relayed: Vec<(usize, Diagnosis)> = std::mem::take(&mut w.owed)
            .into_iter()
            .filter_map(|(ri, o)| match o {
                RecipientOutcome::Delivered { diagnosis, .. } => Some((ri, diagnosis)),
                _ => None,
            })
            .collect();
        if relayed.is_empty() {
            return;
        }
        let reason = "Your message was relayed to a server that does not support delivery status notifications; no further notifications will be sent.";
        match self
            .queue_report(w, DsnAction::Relayed, relayed, now, Some(reason.into()))
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

    /// When `w` owes its one "delayed" report: `delay_warning` after
    /// arrival, unless that is off, already done, or no open remote
    /// recipient would get it (the null sender, `NOTIFY` without `DELAY`).
    fn delay_report_due(&self, w: &Work) -> Option<u64> {
        let after = self.settings.delay_warning.as_secs();
        let wanted = w.env.recipients.iter().any(|r| {
            !r.local && r.status.is_open() && crate::bounce::wants_report(r, DsnAction::Delayed)
        });
        (after > 0 && !w.env.delay_reported && w.env.sender != ReversePath::Null && wanted)
            .then(|| w.env.arrival.saturating_add(after))
    }

    /// Queues the "delayed" report (RFC 3464 `action=delayed`) once the
    /// message has waited `delay_warning`: its open remote recipients, as
    /// their last attempt left them, and until when they are retried. The
    /// envelope remembers it was sent; if it cannot be queued it is tried
    /// again at the next attempt.
    async fn report_delay(&self, w: &mut Work, now: u64, report: &mut PassReport) {
        if self.delay_report_due(w).is_none_or(|at| now < at) {
            return;
        }
        let delayed: Vec<(usize, Diagnosis)> = w
            .env
            .recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.local && r.status.is_open())
            .map(|(ri, r)| (ri, delay_diagnosis(&r.status)))
            .collect();
        let reason = format!(
            "Your message has not been delivered to the recipients below for more than {}. The mail system will keep trying until {}; you do not need to resend it.",
            human(self.settings.delay_warning),
            crate::report::rfc5322_date(self.retry_until(w))
        );
        match self
            .queue_report(w, DsnAction::Delayed, delayed, now, Some(reason))
            .await
        {
            Ok(dsn) => {
                if let Some(dsn) = dsn {
                    report.dsns += 1;
                    tracing::info!(queue_id = %w.id, dsn = %dsn, "outbound: delay DSN queued to the sender");
                }
                w.env.delay_reported = true;
                w.unsaved = true;
            }
            Err(e) => {
                tracing::warn!(queue_id = %w.id, error = %e, "outbound: cannot queue the delay DSN; tried again at the next attempt");
                report.errors.push(format!("{}: delay DSN: {e}", w.id));
            }
        }
    }

    /// Until when the message is retried: its expiry.
    fn retry_until(&self, w: &Work) -> u64 {
        w.env
            .arrival
            .saturating_add(self.settings.retry.max_age.as_secs())
    }

    async fn queue_report(
        &self,
        w: &Work,
        action: DsnAction,
        entries: Vec<(usize, Diagnosis)>,
        now: u64,
        reason: Option<String>,
    ) -> std::io::Result<Option<QueueId>> {
        let bounces = self.bounces.clone();
        let env = w.env.clone();
        let body = w.body.clone();
        let last_attempt = w.last_attempt;
        let until = (action == DsnAction::Delayed).then(|| self.retry_until(w));
        blocking(move || {
            let mut request =
                BounceRequest::new(&env, &body, action, &entries, now).last_attempt(last_attempt);
            request.reason = reason;
            request.will_retry_until = until;
            bounces.bounce(&request)
        })
        .await
    }
}

/// Writes one outcome to the work item: delivered and deferred recipients
/// at once, failures (and owed "relayed" reports) when the message is
/// finished.
fn apply(w: &mut Work, ri: usize, outcome: RecipientOutcome, report: &mut PassReport) {
    match outcome {
        RecipientOutcome::Delivered {
            diagnosis,
            dsn_dropped,
        } => {
            w.env.recipients[ri].status = RcptStatus::Delivered(diagnosis.clone());
            if dsn_dropped && crate::bounce::wants_report(&w.env.recipients[ri], DsnAction::Relayed)
            {
                w.owed.push((
                    ri,
                    RecipientOutcome::Delivered {
                        diagnosis,
                        dsn_dropped,
                    },
                ));
            }
            report.delivered += 1;
        }
        RecipientOutcome::Deferred(diagnosis) => {
            w.env.recipients[ri].status = RcptStatus::Deferred(diagnosis);
            report.deferred += 1;
        }
        RecipientOutcome::Failed(diagnosis) => {
            w.owed.push((ri, RecipientOutcome::Failed(diagnosis)));
        }
    }
    w.unsaved = true;
}

/// The diagnosis of a recipient given up at expiry: its last reply or
/// error, or 4.4.7 (delivery time expired) when there was none.
fn expiry_diagnosis(status: &RcptStatus) -> Diagnosis {
    match status {
        RcptStatus::Deferred(d) if d.reply.is_some() || d.detail.is_some() => d.clone(),
        RcptStatus::Deferred(d) => Diagnosis::local(
            report::status(4, 4, 7),
            "delivery time expired",
            d.remote_mta.clone(),
        ),
        _ => Diagnosis::local(report::status(4, 4, 7), "delivery time expired", None),
    }
}

/// The diagnosis of a recipient still being retried: its last reply, kept
/// transient (a delayed recipient's status is 4.x.x, RFC 3464 §2.3.4).
fn delay_diagnosis(status: &RcptStatus) -> Diagnosis {
    let mut d = match status {
        RcptStatus::Deferred(d) => d.clone(),
        _ => Diagnosis::parse("", report::OTHER_TRANSIENT),
    };
    if d.class() != 4 {
        d.status = report::OTHER_TRANSIENT;
    }
    if d.reply.is_none() && d.detail.is_none() {
        d.detail = Some("not delivered yet; still trying".into());
    }
    d
}

/// A duration as people read it in a report: "5 days", "2 hours",
/// "30 seconds". Hand-written on purpose: humantime (used for the
/// configuration's durations) prints "5days" and "1m", terse forms for
/// operators, not prose for the sender of a bounced message.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_secs(5 * 86_400)), "5 days");
        assert_eq!(human(Duration::from_secs(3600)), "1 hour");
        assert_eq!(human(Duration::from_secs(90)), "90 seconds");
    }
}
