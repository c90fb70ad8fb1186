//! Routes: where a batch of messages goes and under which TLS policy. Plain
//! data, shared by the sans-IO core and the driver.

use std::fmt;

use crate::client::RelayCredentials;
use crate::policy::TlsPolicy;

/// Where a route delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// A configured relay host (smart host), the only place credentials
    /// are ever sent.
    SmartHost {
        /// Host name or IP address.
        host: String,
        /// Port: 25, 587 (submission with STARTTLS) or 465 (implicit TLS).
        port: u16,
        /// Credentials for AUTH PLAIN/LOGIN.
        auth: Option<RelayCredentials>,
        /// Allow AUTH without TLS (off: credentials only go over TLS).
        allow_plaintext_auth: bool,
    },
    /// The recipient domain's MX hosts (RFC 5321 §5.1).
    Mx {
        /// The recipient domain.
        domain: String,
        /// The port, 25 outside tests.
        port: u16,
    },
}

/// A route: where to deliver and under which TLS policy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Route {
    /// Where.
    pub target: Target,
    /// How TLS is used.
    pub tls: TlsPolicy,
}

impl Route {
    /// A route to `target` under `tls`.
    pub fn new(target: Target, tls: TlsPolicy) -> Self {
        Self { target, tls }
    }
}

impl Target {
    /// A smart host without credentials.
    pub fn smart_host(host: impl Into<String>, port: u16) -> Self {
        Target::SmartHost {
            host: host.into(),
            port,
            auth: None,
            allow_plaintext_auth: false,
        }
    }

    /// The same target authenticating with `credentials` when it is a smart
    /// host; an MX target is returned unchanged, since credentials are never
    /// sent to MX hosts.
    #[must_use]
    pub fn with_auth(self, credentials: RelayCredentials) -> Self {
        match self {
            Target::SmartHost {
                host,
                port,
                allow_plaintext_auth,
                ..
            } => Target::SmartHost {
                host,
                port,
                auth: Some(credentials),
                allow_plaintext_auth,
            },
            mx => mx,
        }
    }

    /// The MX hosts of `domain`, on `port` (25 outside tests).
    pub fn mx(domain: impl Into<String>, port: u16) -> Self {
        Target::Mx {
            domain: domain.into(),
            port,
        }
    }
}

impl fmt::Display for Target {
    /// `host:port` for a smart host, `MX of domain` for MX delivery (for
    /// logs, and for reports when no server answered).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::SmartHost { host, port, .. } => write!(f, "{host}:{port}"),
            Target::Mx { domain, .. } => write!(f, "MX of {domain}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_attach_to_smart_hosts_only() {
        let creds = RelayCredentials::new("u", "s3cret");
        let t = Target::smart_host("relay.example", 587).with_auth(creds.clone());
        assert!(matches!(&t, Target::SmartHost { auth: Some(c), .. } if *c == creds));
        assert!(!format!("{t:?}").contains("s3cret"), "{t:?}");
        let mx = Target::mx("example.org", 25);
        assert_eq!(mx.clone().with_auth(creds), mx);
    }
}
