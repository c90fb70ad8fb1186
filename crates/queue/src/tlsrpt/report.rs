//! The result log and the aggregate report (RFC 8460 §4).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Which policy applied to a session (§4.4 `policy-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PolicyType {
    /// DANE (the TLSA records, RFC 7672).
    Tlsa,
    /// MTA-STS (RFC 8461).
    Sts,
    /// Neither was found.
    NoPolicyFound,
}

/// Why a session failed (§4.3 result types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ResultType {
    /// The server did not offer STARTTLS.
    StarttlsNotSupported,
    /// The certificate is not valid for the MX host name.
    CertificateHostMismatch,
    /// The certificate has expired.
    CertificateExpired,
    /// The certificate does not chain to a trusted root.
    CertificateNotTrusted,
    /// Any other failure to negotiate or validate.
    ValidationFailure,
    /// The TLSA records were invalid.
    TlsaInvalid,
    /// DNSSEC validation failed (bogus).
    DnssecInvalid,
    /// DANE was required but no usable TLSA record authenticated.
    DaneRequired,
    /// The MTA-STS policy could not be fetched.
    StsPolicyFetchError,
    /// The MTA-STS policy was invalid.
    StsPolicyInvalid,
    /// The MTA-STS policy host's certificate did not validate.
    StsWebpkiInvalid,
}

/// The policy a result is counted under (§4.4 `policy`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PolicyKey {
    /// The policy's kind.
    pub policy_type: PolicyType,
    /// The policy as text, a line an element (the TLSA records, or the
    /// MTA-STS policy's lines); empty for `no-policy-found`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_string: Vec<String>,
    /// The recipient domain the policy belongs to.
    pub policy_domain: String,
    /// The MX host patterns (MTA-STS) or the MX host (DANE).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mx_host: Vec<String>,
}

impl PolicyKey {
    /// A key for `policy_domain` under a policy of `policy_type`.
    pub fn new(policy_type: PolicyType, policy_domain: impl Into<String>) -> Self {
        Self {
            policy_type,
            policy_string: Vec::new(),
            policy_domain: policy_domain.into().to_ascii_lowercase(),
            mx_host: Vec::new(),
        }
    }

    /// With the policy's text.
    pub fn with_policy_string(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.policy_string = lines.into_iter().collect();
        self
    }

    /// With the MX hosts or patterns.
    pub fn with_mx_host(mut self, hosts: impl IntoIterator<Item = String>) -> Self {
        self.mx_host = hosts.into_iter().collect();
        self
    }
}

/// One failed session's details (§4.4 `failure-details`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Failure {
    /// Why it failed.
    pub result_type: ResultType,
    /// The address we sent from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending_mta_ip: Option<IpAddr>,
    /// The MX host we tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving_mx_hostname: Option<String>,
    /// The address we connected to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving_ip: Option<IpAddr>,
}

impl Failure {
    /// A failure of `result_type`, without addresses.
    pub fn new(result_type: ResultType) -> Self {
        Self {
            result_type,
            sending_mta_ip: None,
            receiving_mx_hostname: None,
            receiving_ip: None,
        }
    }
}

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
