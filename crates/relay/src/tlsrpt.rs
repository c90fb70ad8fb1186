//! The facts SMTP TLS Reporting (RFC 8460) counts, as the relay sees them:
//! which policy applied to a session ([`PolicyKey`]: DANE's TLSA records,
//! an MTA-STS policy, or none found) and, when the session failed, why
//! ([`Failure`], with RFC 8460 §4.3's [`ResultType`]).
//!
//! [`Relay::deliver_reporting`](crate::Relay::deliver_reporting) returns
//! one [`TlsSession`] per session it tried (and one per policy that could
//! not be applied at all, such as an MTA-STS fetch that failed); the queue
//! counts them per day and builds the aggregate report
//! (`postern_queue::tlsrpt`).

use std::net::IpAddr;

/// Which policy applied to a session (§4.4 `policy-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
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

impl PolicyType {
    /// The name RFC 8460 §4.4 gives it (`tlsa`, `sts`, `no-policy-found`).
    pub fn name(self) -> &'static str {
        match self {
            PolicyType::Tlsa => "tlsa",
            PolicyType::Sts => "sts",
            PolicyType::NoPolicyFound => "no-policy-found",
        }
    }
}

impl ResultType {
    /// The name RFC 8460 §4.3 gives it (`certificate-expired`...).
    pub fn name(self) -> &'static str {
        match self {
            ResultType::StarttlsNotSupported => "starttls-not-supported",
            ResultType::CertificateHostMismatch => "certificate-host-mismatch",
            ResultType::CertificateExpired => "certificate-expired",
            ResultType::CertificateNotTrusted => "certificate-not-trusted",
            ResultType::ValidationFailure => "validation-failure",
            ResultType::TlsaInvalid => "tlsa-invalid",
            ResultType::DnssecInvalid => "dnssec-invalid",
            ResultType::DaneRequired => "dane-required",
            ResultType::StsPolicyFetchError => "sts-policy-fetch-error",
            ResultType::StsPolicyInvalid => "sts-policy-invalid",
            ResultType::StsWebpkiInvalid => "sts-webpki-invalid",
        }
    }

    /// The result type of a TLS handshake that failed with `error`:
    /// certificate errors by their kind (§4.3.1), anything else (a DANE
    /// mismatch, a protocol alert) `validation-failure`.
    pub fn of_rustls(error: &rustls::Error) -> ResultType {
        use rustls::CertificateError as C;
        match error {
            rustls::Error::InvalidCertificate(c) => match c {
                C::Expired | C::ExpiredContext { .. } => ResultType::CertificateExpired,
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    ResultType::CertificateHostMismatch
                }
                C::UnknownIssuer | C::BadSignature | C::Revoked | C::InvalidPurpose => {
                    ResultType::CertificateNotTrusted
                }
                _ => ResultType::ValidationFailure,
            },
            _ => ResultType::ValidationFailure,
        }
    }

    /// The result type of an I/O error from a TLS handshake, reading the
    /// rustls error inside it.
    pub fn of_handshake(error: &std::io::Error) -> ResultType {
        error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map_or(ResultType::ValidationFailure, ResultType::of_rustls)
    }
}

/// The policy a result is counted under (§4.4 `policy`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
#[non_exhaustive]
pub struct PolicyKey {
    /// The policy's kind.
    pub policy_type: PolicyType,
    /// The policy as text, a line an element (the TLSA records, or the
    /// MTA-STS policy's lines); empty for `no-policy-found`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub policy_string: Vec<String>,
    /// The recipient domain the policy belongs to.
    pub policy_domain: String,
    /// The MX host patterns (MTA-STS) or the MX host (DANE).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
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
    #[must_use]
    pub fn with_policy_string(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.policy_string = lines.into_iter().collect();
        self
    }

    /// With the MX hosts or patterns.
    #[must_use]
    pub fn with_mx_host(mut self, hosts: impl IntoIterator<Item = String>) -> Self {
        self.mx_host = hosts.into_iter().collect();
        self
    }
}

/// One failed session's details (§4.4 `failure-details`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
#[non_exhaustive]
pub struct Failure {
    /// Why it failed.
    pub result_type: ResultType,
    /// The address we sent from.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub sending_mta_ip: Option<IpAddr>,
    /// The MX host we tried.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub receiving_mx_hostname: Option<String>,
    /// The address we connected to.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub receiving_ip: Option<IpAddr>,
    /// A short code of our own saying more than the result type
    /// (`failure-reason-code`, e.g. `mx-not-in-policy`).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub failure_reason_code: Option<String>,
}

impl Failure {
    /// A failure of `result_type`, without addresses.
    pub fn new(result_type: ResultType) -> Self {
        Self {
            result_type,
            sending_mta_ip: None,
            receiving_mx_hostname: None,
            receiving_ip: None,
            failure_reason_code: None,
        }
    }

    /// With the MX host and the address connected to.
    #[must_use]
    pub fn at(mut self, mx: impl Into<String>, ip: Option<IpAddr>) -> Self {
        self.receiving_mx_hostname = Some(mx.into());
        self.receiving_ip = ip;
        self
    }

    /// With the address the session was sent from.
    #[must_use]
    pub fn from_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.sending_mta_ip = ip;
        self
    }

    /// With a reason code.
    #[must_use]
    pub fn with_reason(mut self, code: impl Into<String>) -> Self {
        self.failure_reason_code = Some(code.into());
        self
    }
}

/// One counted session (or one policy that failed before any session):
/// the policy it was under, and its failure, `None` for a success.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsSession {
    /// The policy.
    pub policy: PolicyKey,
    /// Why it failed; `None`: TLS was negotiated as the policy required.
    pub failure: Option<Failure>,
}

impl TlsSession {
    /// A successful session under `policy`.
    pub fn success(policy: PolicyKey) -> Self {
        Self {
            policy,
            failure: None,
        }
    }

    /// A failed session under `policy`.
    pub fn failed(policy: PolicyKey, failure: Failure) -> Self {
        Self {
            policy,
            failure: Some(failure),
        }
    }

    /// The session succeeded.
    pub fn is_success(&self) -> bool {
        self.failure.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CertificateError as C;

    #[test]
    fn certificate_errors_map_to_their_result_types() {
        let cert = |c| ResultType::of_rustls(&rustls::Error::InvalidCertificate(c));
        assert_eq!(cert(C::Expired), ResultType::CertificateExpired);
        assert_eq!(
            cert(C::NotValidForName),
            ResultType::CertificateHostMismatch
        );
        assert_eq!(cert(C::UnknownIssuer), ResultType::CertificateNotTrusted);
        assert_eq!(cert(C::BadEncoding), ResultType::ValidationFailure);
        assert_eq!(
            ResultType::of_rustls(&rustls::Error::DecryptError),
            ResultType::ValidationFailure
        );
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(C::Expired),
        );
        assert_eq!(
            ResultType::of_handshake(&io),
            ResultType::CertificateExpired
        );
        let plain = std::io::Error::other("reset");
        assert_eq!(
            ResultType::of_handshake(&plain),
            ResultType::ValidationFailure
        );
    }
}
