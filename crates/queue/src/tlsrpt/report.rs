//! The result log and the aggregate report (RFC 8460 §4).

use std::collections::BTreeMap;
use std::io::Write as _;

use serde::{Deserialize, Serialize};

pub use postern_relay::tlsrpt::{Failure, PolicyKey, PolicyType, ResultType};

/// The counts under one policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Counts {
    success: u64,
    failures: BTreeMap<String, (Failure, u64)>,
}

/// Outbound TLS results, counted per policy (and day, by the caller: one
/// log a reporting period). Serialises as JSON so a restart loses nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsRptLog {
    // Keyed by the key's JSON form, so the map serialises as an object.
    policies: BTreeMap<String, (PolicyKey, Counts)>,
}

fn key_of<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl TlsRptLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    fn counts(&mut self, policy: &PolicyKey) -> &mut Counts {
        &mut self
            .policies
            .entry(key_of(policy))
            .or_insert_with(|| (policy.clone(), Counts::default()))
            .1
    }

    /// Counts a session that negotiated TLS as the policy required.
    pub fn success(&mut self, policy: &PolicyKey) {
        self.counts(policy).success += 1;
    }

    /// Counts a failed session.
    pub fn failure(&mut self, policy: &PolicyKey, failure: Failure) {
        let counts = self.counts(policy);
        counts
            .failures
            .entry(key_of(&failure))
            .or_insert_with(|| (failure, 0))
            .1 += 1;
    }

    /// The domains with results, each once.
    pub fn domains(&self) -> Vec<&str> {
        let d: std::collections::BTreeSet<&str> = self
            .policies
            .values()
            .map(|(k, _)| k.policy_domain.as_str())
            .collect();
        d.into_iter().collect()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The aggregate report for `domain` over `range`, or `None` when the
    /// log has nothing for it.
    pub fn report(
        &self,
        domain: &str,
        organization_name: &str,
        contact_info: &str,
        report_id: &str,
        range: DateRange,
    ) -> Option<Report> {
        let domain = domain.to_ascii_lowercase();
        let policies: Vec<PolicyReport> = self
            .policies
            .values()
            .filter(|(k, _)| k.policy_domain == domain)
            .map(|(k, c)| PolicyReport {
                policy: k.clone(),
                summary: Summary {
                    total_successful_session_count: c.success,
                    total_failure_session_count: c.failures.values().map(|(_, n)| n).sum(),
                },
                failure_details: c
                    .failures
                    .values()
                    .map(|(f, n)| FailureDetail {
                        failure: f.clone(),
                        failed_session_count: *n,
                    })
                    .collect(),
            })
            .collect();
        (!policies.is_empty()).then(|| Report {
            organization_name: organization_name.to_owned(),
            date_range: range,
            contact_info: contact_info.to_owned(),
            report_id: report_id.to_owned(),
            policies,
        })
    }
}

/// The period a report covers, as RFC 3339 UTC times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DateRange {
    /// The start (`2016-04-01T00:00:00Z`).
    pub start_datetime: String,
    /// The end (`2016-04-01T23:59:59Z`).
    pub end_datetime: String,
}

impl DateRange {
    /// The UTC day that starts at `day_start` (seconds since the epoch,
    /// rounded down to midnight).
    pub fn utc_day(day_start: u64) -> DateRange {
        let start = day_start - day_start % 86_400;
        DateRange {
            start_datetime: rfc3339(start),
            end_datetime: rfc3339(start + 86_399),
        }
    }
}

fn rfc3339(unix: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix).unwrap_or(i64::MAX))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// An aggregate report (§4.4), ready to serialise as its JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Report {
    /// Who sends the report.
    pub organization_name: String,
    /// The period covered.
    pub date_range: DateRange,
    /// How to reach the sender.
    pub contact_info: String,
    /// A unique id.
    pub report_id: String,
    policies: Vec<PolicyReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct PolicyReport {
    policy: PolicyKey,
    summary: Summary,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    failure_details: Vec<FailureDetail>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Summary {
    total_successful_session_count: u64,
    total_failure_session_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct FailureDetail {
    #[serde(flatten)]
    failure: Failure,
    failed_session_count: u64,
}

impl Report {
    /// The JSON text (§4.4).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The gzip-compressed JSON, as mailed (`application/tlsrpt+gzip`) and
    /// POSTed (§5.3, §5.4).
    pub fn to_gzip(&self) -> std::io::Result<Vec<u8>> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(self.to_json().as_bytes())?;
        gz.finish()
    }

    /// Successful and failed sessions over every policy.
    pub fn totals(&self) -> (u64, u64) {
        self.policies.iter().fold((0, 0), |(s, f), p| {
            (
                s + p.summary.total_successful_session_count,
                f + p.summary.total_failure_session_count,
            )
        })
    }
}

/// The attachment's file name (§5.3):
/// `submitter!policy-domain!begin-timestamp!end-timestamp[!unique-id].json.gz`.
pub fn report_file_name(submitter: &str, domain: &str, start: u64, end: u64, id: &str) -> String {
    format!("{submitter}!{domain}!{start}!{end}!{id}.json.gz")
}
