//! The honest report of a TLS policy: what was asked, what is in effect.

use std::fmt;

use postern_session::TlsVersion;

/// A setting honoured only in part: what was asked, and the effective value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Warning {
    /// The setting, e.g. `tls.versions` or `tls.ciphers`.
    pub field: String,
    /// What was not honoured and what is in effect instead.
    pub message: String,
}

impl Warning {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "warning: {}: {}", self.field, self.message)
    }
}

/// A setting that cannot be honoured at all: the policy does not build.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The setting, e.g. `tls.versions`.
    pub field: String,
    /// What is wrong, and where it helps, what would work.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}: {}", self.field, self.message)
    }
}

/// What a built policy offers, and every setting honoured only in part.
///
/// `Display` prints one line per warning, then the effective versions,
/// suites and key-exchange groups, so `postern-mta check` can print it as is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TlsPolicyReport {
    /// Settings honoured in part, each with the effective value.
    pub warnings: Vec<Warning>,
    /// The protocol versions offered, highest first.
    pub versions: Vec<TlsVersion>,
    /// The cipher suites offered, in preference order, by their OpenSSL
    /// names (e.g. `TLS_AES_256_GCM_SHA384`, `ECDHE-RSA-AES128-GCM-SHA256`).
    pub suites: Vec<String>,
    /// The key-exchange groups offered, in preference order, by their
    /// OpenSSL names (e.g. `X25519MLKEM768`, `X25519`, `P-256`).
    pub groups: Vec<String>,
    /// The names of the certificates loaded, default first.
    pub certificates: Vec<String>,
}

impl TlsPolicyReport {
    /// Whether every setting was honoured as written.
    pub fn is_clean(&self) -> bool {
        self.warnings.is_empty()
    }
}

impl fmt::Display for TlsPolicyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for w in &self.warnings {
            writeln!(f, "{w}")?;
        }
        let versions: Vec<String> = self.versions.iter().map(ToString::to_string).collect();
        writeln!(f, "effective versions: {}", versions.join(", "))?;
        writeln!(f, "effective suites: {}", self.suites.join(", "))?;
        write!(f, "effective groups: {}", self.groups.join(", "))
    }
}

/// A policy that cannot be built: every error found, and the warnings
/// gathered on the way (so one run shows everything to fix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct PolicyError {
    /// What cannot be honoured; never empty.
    pub errors: Vec<Problem>,
    /// What would be honoured only in part.
    pub warnings: Vec<Warning>,
}

impl PolicyError {
    pub(crate) fn one(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            errors: vec![Problem::new(field, message)],
            warnings: Vec::new(),
        }
    }

    /// Whether some error is about `field`.
    pub fn concerns(&self, field: &str) -> bool {
        self.errors.iter().any(|e| e.field == field)
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for line in self
            .errors
            .iter()
            .map(ToString::to_string)
            .chain(self.warnings.iter().map(ToString::to_string))
        {
            if !first {
                f.write_str("\n")?;
            }
            first = false;
            f.write_str(&line)?;
        }
        Ok(())
    }
}
