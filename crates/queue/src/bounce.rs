//! Where delivery status reports go: the [`BounceSink`] trait, and
//! [`SpoolBounces`], which renders an RFC 3464 report and queues it in the
//! spool with the null reverse-path.

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::report::{self, Diagnosis, DsnAction, RecipientReport};
use postern_proto::{Body, Notify, Ret, ReversePath};

use crate::{Envelope, QueueId, RecipientState, Store};

/// One report to send about some recipients of a queued message.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BounceRequest<'a> {
    /// The message reported on.
    pub envelope: &'a Envelope,
    /// Its content as queued.
    pub original: &'a [u8],
    /// What happened to the recipients.
    pub action: DsnAction,
    /// The recipients (index into `envelope.recipients`) and why.
    pub entries: &'a [(usize, Diagnosis)],
    /// Unix seconds now (`Date`).
    pub now: u64,
    /// Unix seconds of the last delivery attempt (`Last-Attempt-Date`).
    pub last_attempt: u64,
    /// Why delivery was given up, for the human-readable part.
    pub reason: Option<String>,
    /// Unix seconds until which delivery is retried, for a "delayed"
    /// report (`Will-Retry-Until`).
    pub will_retry_until: Option<u64>,
}

impl<'a> BounceRequest<'a> {
    /// A report with `action` on `entries` of `envelope`, at `now`.
    pub fn new(
        envelope: &'a Envelope,
        original: &'a [u8],
        action: DsnAction,
        entries: &'a [(usize, Diagnosis)],
        now: u64,
    ) -> Self {
        BounceRequest {
            envelope,
            original,
            action,
            entries,
            now,
            last_attempt: now,
            reason: None,
            will_retry_until: None,
        }
    }

    /// Sets `Last-Attempt-Date`.
    #[must_use]
    pub fn last_attempt(mut self, at: u64) -> Self {
        self.last_attempt = at;
        self
    }

    /// Sets `Will-Retry-Until` (for a "delayed" report).
    #[must_use]
    pub fn will_retry_until(mut self, at: u64) -> Self {
        self.will_retry_until = Some(at);
        self
    }

    /// Sets the explanation for the human-readable part.
    #[must_use]
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// Takes the delivery status reports the runner and local delivery owe a
/// sender. Blocking: called from a blocking thread.
///
/// `Ok(Some(id))` means the report is durable (queued as `id`): only then
/// are the recipients recorded as failed, so a crash in between repeats the
/// report rather than losing it. `Ok(None)`: no report is due (the null
/// sender, or `NOTIFY` excludes this action).
pub trait BounceSink: Send + Sync + fmt::Debug + 'static {
    /// Queues (or sends) the report described by `request`.
    fn bounce(&self, request: &BounceRequest<'_>) -> io::Result<Option<QueueId>>;
}

/// The usual [`BounceSink`]: an RFC 3464 report queued in the spool with
/// the null reverse-path, to the original sender. A sender in one of the
/// local domains gets a `local` recipient (local delivery takes it);
/// others are relayed by the runner.
#[derive(Debug, Clone)]
pub struct SpoolBounces {
    store: Arc<dyn Store>,
    reporting_mta: String,
    local_domains: Vec<String>,
}

impl SpoolBounces {
    /// Reports queued in `store`, from `reporting_mta` (our host name).
    pub fn new(store: Arc<dyn Store>, reporting_mta: impl Into<String>) -> Self {
        SpoolBounces {
            store,
            reporting_mta: reporting_mta.into(),
            local_domains: Vec::new(),
        }
    }

    /// Domains whose senders get their reports by local delivery.
    #[must_use]
    pub fn local_domains(mut self, domains: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.local_domains = domains.into_iter().map(Into::into).collect();
        self
    }

    fn is_local(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.');
        self.local_domains
            .iter()
            .any(|d| d.trim_end_matches('.').eq_ignore_ascii_case(domain))
    }
}

impl BounceSink for SpoolBounces {
    /// Recipients are reported only when their `NOTIFY` asks for it:
    /// failures unless `NEVER` or a list without `FAILURE`; delays with
    /// `DELAY` (or no `NOTIFY`); `relayed` and `delivered` only with
    /// `SUCCESS` (RFC 3461 §4.1). `RET=FULL` returns the whole message in
    /// failure reports only; other reports carry the headers.
    fn bounce(&self, request: &BounceRequest<'_>) -> io::Result<Option<QueueId>> {
        let env = request.envelope;
        let ReversePath::Mailbox(sender) = &env.sender else {
            tracing::info!(queue_id = %env.id, "no DSN for the null sender");
            return Ok(None);
        };
        let recipients: Vec<RecipientReport> = request
            .entries
            .iter()
            .filter_map(|(ri, d)| Some((env.recipients.get(*ri)?, d)))
            .filter(|(r, _)| wants_report(r, request.action))
            .map(|(r, d)| RecipientReport {
                final_recipient: r.address.to_string(),
                original_recipient: r
                    .orcpt
                    .as_ref()
                    .map(|o| format!("{};{}", o.addr_type, o.address)),
                action: request.action,
                diagnosis: d.clone(),
                last_attempt: Some(request.last_attempt),
                will_retry_until: request.will_retry_until,
            })
            .collect();
        if recipients.is_empty() {
            tracing::info!(queue_id = %env.id, action = request.action.as_str(), "NOTIFY excludes this report; no DSN");
            return Ok(None);
        }
        let dsn_id = self.store.new_id();
        let original_sender = sender.to_string();
        let bytes = report::render(&report::Report {
            reporting_mta: &self.reporting_mta,
            queue_id: env.id.as_str(),
            report_id: dsn_id.as_str(),
            original_sender: &original_sender,
            envid: env.params.envid.as_deref(),
            arrival: env.arrival,
            now: request.now,
            recipients,
            original: request.original,
            // RFC 8689 §5: a report on a REQUIRETLS message returns the
            // headers only, whatever RET says.
            return_full: request.action == DsnAction::Failed
                && env.params.ret == Some(Ret::Full)
                && !env.params.requiretls,
            received_from_mta: env.helo.as_deref(),
            reason: request.reason.clone(),
        });
        let mut dsn_env = Envelope::new(dsn_id.clone(), ReversePath::Null);
        dsn_env.arrival = request.now;
        let local = sender.domain().is_some_and(|d| self.is_local(d.as_str()));
        dsn_env
            .recipients
            .push(RecipientState::pending(sender.clone(), local));
        if bytes.iter().any(|&b| b >= 0x80) {
            dsn_env.params.body = Some(Body::EightBitMime);
        }
        dsn_env.params.smtputf8 = sender.is_utf8();
        // RFC 8689 §5: the report on a REQUIRETLS message travels under
        // REQUIRETLS too (it quotes the message's headers).
        dsn_env.params.requiretls = env.params.requiretls;
        // Released at once: local delivery or the next pass takes it.
        self.store.put(&dsn_env, &bytes)?;
        Ok(Some(dsn_id))
    }
}

/// Whether the recipient's `NOTIFY` asks for a report with `action`
/// (RFC 3461 §4.1: no `NOTIFY` means `FAILURE,DELAY`).
pub fn wants_report(r: &RecipientState, action: DsnAction) -> bool {
    let (success, failure, delay) = match r.notify {
        None => (false, true, true),
        Some(Notify::Never) => (false, false, false),
        Some(Notify::On {
            success,
            failure,
            delay,
        }) => (success, failure, delay),
    };
    match action {
        DsnAction::Failed => failure,
        DsnAction::Delayed => delay,
        DsnAction::Delivered | DsnAction::Relayed => success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_decides_whether_a_failure_is_reported() {
        let address = postern_proto::Mailbox::parse("a@b.example").unwrap();
        let mut r = RecipientState::pending(address.into_owned(), false);
        assert!(wants_report(&r, DsnAction::Failed));
        assert!(wants_report(&r, DsnAction::Delayed));
        assert!(!wants_report(&r, DsnAction::Relayed));
        r.notify = Some(Notify::Never);
        assert!(!wants_report(&r, DsnAction::Failed));
        r.notify = Notify::from_keyword("DELAY");
        assert!(!wants_report(&r, DsnAction::Failed));
        r.notify = Notify::from_keyword("SUCCESS,FAILURE");
        assert!(wants_report(&r, DsnAction::Failed));
        assert!(wants_report(&r, DsnAction::Relayed));
        assert!(!wants_report(&r, DsnAction::Delayed));
    }
}
