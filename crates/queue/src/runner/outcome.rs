//! The typed result of one delivery attempt for one recipient.

use postern_relay::{MessageResult, RecipientResult};

use crate::report::Diagnosis;

/// What one attempt did for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecipientOutcome {
    /// The next hop accepted the message (a 2xx reply to the end of data).
    Delivered {
        /// The reply and the server.
        diagnosis: Diagnosis,
        /// The server does not offer DSN but the recipient's `NOTIFY`
        /// parameters were set: a "relayed" report may be owed (RFC 3461 §4).
        dsn_dropped: bool,
    },
    /// A transient failure: retried at the next attempt.
    Deferred(Diagnosis),
    /// A permanent failure: the sender gets a report.
    Failed(Diagnosis),
}

impl RecipientOutcome {
    /// The diagnosis, whatever the outcome.
    pub fn diagnosis(&self) -> &Diagnosis {
        match self {
            RecipientOutcome::Delivered { diagnosis, .. }
            | RecipientOutcome::Deferred(diagnosis)
            | RecipientOutcome::Failed(diagnosis) => diagnosis,
        }
    }

    /// `delivered`, `deferred` or `failed`, for logs.
    pub fn label(&self) -> &'static str {
        match self {
            RecipientOutcome::Delivered { .. } => "delivered",
            RecipientOutcome::Deferred(_) => "deferred",
            RecipientOutcome::Failed(_) => "failed",
        }
    }

    /// Classifies one recipient's relay result. `server` names who answered
    /// (or the route, when no server did).
    pub(crate) fn of(
        message: &MessageResult,
        result: &RecipientResult,
        server: Option<String>,
    ) -> Self {
        match &result.outcome {
            Ok(reply) if reply.is_positive() => RecipientOutcome::Delivered {
                diagnosis: Diagnosis::from_reply(reply.clone(), server),
                dsn_dropped: message.dsn_dropped,
            },
            outcome => {
                let diagnosis = match outcome {
                    Ok(reply) => Diagnosis::from_reply(reply.clone(), server),
                    Err(e) => diagnose(e, server),
                };
                if result.is_permanent() {
                    RecipientOutcome::Failed(diagnosis)
                } else {
                    RecipientOutcome::Deferred(diagnosis)
                }
            }
        }
    }
}

/// The diagnosis of a relay error: the server's reply when there was one,
/// with the RFC 3463 status the relay error carries
/// ([`RelayError::status`](postern_relay::RelayError::status)), so no
/// caller maps errors to statuses by hand.
pub(crate) fn diagnose(e: &postern_relay::RelayError, server: Option<String>) -> Diagnosis {
    let status = e.status();
    if let Some(reply) = e.reply() {
        let mut d = Diagnosis::from_reply(reply.clone(), server);
        d.status = status;
        if matches!(e, postern_relay::RelayError::StartTlsRefused(_)) {
            // The reply is to STARTTLS; what matters is that TLS was required.
            d.detail = Some(e.to_string());
        }
        return d;
    }
    Diagnosis::local(status, &e.to_string(), server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_errors_map_to_rfc3463_statuses() {
        use postern_relay::RelayError as E;
        let status = |d: Diagnosis| d.status.to_string();
        assert_eq!(status(diagnose(&E::TlsUnavailable, None)), "4.7.4");
        assert_eq!(status(diagnose(&E::NullMx("x".into()), None)), "5.1.10");
        assert_eq!(
            status(diagnose(&E::Timeout(postern_relay::Phase::Greeting), None)),
            "4.4.2"
        );
        let d = diagnose(
            &E::NoSuchDomain("nx.example".into()),
            Some("h[1.2.3.4]:25".into()),
        );
        assert_eq!(d.class(), 5);
        assert_eq!(d.remote_host(), Some("h"));
    }
}
