//! The policy file at `https://mta-sts.<domain>/.well-known/mta-sts.txt`
//! (RFC 8461 §3.2).

use std::fmt;
use std::time::Duration;

use super::pattern::MxPattern;

/// The largest policy file read. RFC 8461 §3.3 lets senders bound the
/// response; 64 KiB is what large providers document as their own limit.
pub const MAX_POLICY_SIZE: usize = 64 * 1024;

/// The largest `max_age`, one year (§3.2: "between 0 and 31557600").
pub const MAX_AGE_LIMIT: u32 = 31_557_600;

/// What a policy asks of senders (§5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StsMode {
    /// Deliver only to matching MX hosts over TLS with a valid certificate;
    /// otherwise do not deliver.
    Enforce,
    /// Check as for `enforce`, report failures, deliver anyway.
    Testing,
    /// The domain withdraws its policy: behave as if there were none.
    None,
}

impl StsMode {
    /// The value as written in a policy.
    pub const fn as_str(self) -> &'static str {
        match self {
            StsMode::Enforce => "enforce",
            StsMode::Testing => "testing",
            StsMode::None => "none",
        }
    }
}

impl fmt::Display for StsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid MTA-STS policy.
///
/// ```text
/// sts-policy-record  = sts-policy-field *WSP
///                      *(sts-policy-term sts-policy-field *WSP)
///                      [sts-policy-term]
/// sts-policy-field   = sts-policy-version / sts-policy-mode /
///                      sts-policy-max-age / sts-policy-mx / sts-policy-extension
/// sts-policy-field-delim = ":" *WSP
/// sts-policy-version = %s"version" sts-policy-field-delim %s"STSv1"
/// sts-policy-mode    = %s"mode" sts-policy-field-delim
///                      ( %s"testing" / %s"enforce" / %s"none" )
/// sts-policy-max-age = %s"max_age" sts-policy-field-delim 1*10(DIGIT)
/// sts-policy-mx      = %s"mx" sts-policy-field-delim ["*."] Domain
/// sts-policy-term    = LF / CRLF
/// ```
///
/// Read strictly, because a policy that is only partly understood is
/// worse than none: a field given twice (other than `mx`), a value outside
/// the grammar, a missing `version`, `mode` or `max_age`, `max_age` above
/// one year, or `enforce`/`testing` without an `mx` make the whole policy
/// invalid. Unknown fields are ignored (§3.2), and so are blank lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StsPolicy {
    mode: StsMode,
    max_age: u32,
    mx: Vec<MxPattern>,
}

/// Why a policy file is not a valid policy. Each names the line (1-based)
/// where that applies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Longer than [`MAX_POLICY_SIZE`].
    #[error("policy larger than {MAX_POLICY_SIZE} octets")]
    TooLarge,
    /// Not UTF-8 (policies are ASCII text).
    #[error("policy is not text")]
    NotText,
    /// A line that is not `key: value`, or holds a bare CR.
    #[error("line {line}: {why}")]
    Line {
        /// The line number.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// A field other than `mx` appears twice.
    #[error("line {line}: {field} given twice")]
    Duplicate {
        /// The line number of the second occurrence.
        line: usize,
        /// The field.
        field: &'static str,
    },
    /// A required field is missing.
    #[error("no {0} field")]
    Missing(&'static str),
    /// `enforce` or `testing` without any `mx` pattern.
    #[error("mode {0} needs at least one mx pattern")]
    NoMx(StsMode),
}

impl StsPolicy {
    /// The mode.
    pub fn mode(&self) -> StsMode {
        self.mode
    }

    /// How long the policy may be cached after it was fetched.
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(u64::from(self.max_age))
    }

    /// The MX patterns, in the policy's order.
    pub fn mx(&self) -> &[MxPattern] {
        &self.mx
    }

    /// Whether MX host `host` may receive mail under this policy (§4.1).
    /// Under `none` every host may (the policy is withdrawn).
    pub fn allows_mx(&self, host: &str) -> bool {
        self.mode == StsMode::None || self.mx.iter().any(|p| p.matches(host))
    }

    /// Parses a policy file's body.
    pub fn parse(body: &[u8]) -> Result<StsPolicy, PolicyError> {
        if body.len() > MAX_POLICY_SIZE {
            return Err(PolicyError::TooLarge);
        }
        let text = std::str::from_utf8(body).map_err(|_| PolicyError::NotText)?;
        let mut version = false;
        let mut mode = None;
        let mut max_age = None;
        let mut mx = Vec::new();
        // A final line terminator is optional; after it, nothing.
        let text = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        for (i, raw) in text.split('\n').enumerate() {
            let line = i + 1;
            let bad = |why| PolicyError::Line { line, why };
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.contains('\r') {
                return Err(bad("bare CR"));
            }
            // Trailing white space is allowed after every field.
            let raw = raw.trim_end_matches([' ', '\t']);
            // Blank lines are outside the grammar but harmless; refusing
            // them would turn a publisher's cosmetic slip into "no policy",
            // a downgrade.
            if raw.is_empty() {
                continue;
            }
            let (key, value) = raw.split_once(':').ok_or(bad("not key: value"))?;
            let value = value.trim_start_matches([' ', '\t']);
            match key {
                "version" => {
                    if std::mem::replace(&mut version, true) {
                        return Err(PolicyError::Duplicate {
                            line,
                            field: "version",
                        });
                    }
                    if value != "STSv1" {
                        return Err(bad("version is not STSv1"));
                    }
                }
                "mode" => {
                    let m = match value {
                        "enforce" => StsMode::Enforce,
                        "testing" => StsMode::Testing,
                        "none" => StsMode::None,
                        _ => return Err(bad("mode is not enforce, testing or none")),
                    };
                    if mode.replace(m).is_some() {
                        return Err(PolicyError::Duplicate {
                            line,
                            field: "mode",
                        });
                    }
                }
                "max_age" => {
                    if value.is_empty()
                        || value.len() > 10
                        || !value.bytes().all(|b| b.is_ascii_digit())
                    {
                        return Err(bad("max_age is not 1 to 10 digits"));
                    }
                    let n: u64 = value.parse().map_err(|_| bad("max_age is not a number"))?;
                    let n = u32::try_from(n)
                        .ok()
                        .filter(|n| *n <= MAX_AGE_LIMIT)
                        .ok_or(bad("max_age above 31557600 (one year)"))?;
                    if max_age.replace(n).is_some() {
                        return Err(PolicyError::Duplicate {
                            line,
                            field: "max_age",
                        });
                    }
                }
                "mx" => mx
                    .push(MxPattern::parse(value).ok_or(bad("mx is not a host name or *.domain"))?),
                _ => {
                    // An extension: its name and value must still be
                    // well-formed (sts-policy-ext-name / -value).
                    let name_ok = key.len() <= 32
                        && key
                            .bytes()
                            .next()
                            .is_some_and(|b| b.is_ascii_alphanumeric())
                        && key
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                    let value_ok = !value.is_empty()
                        && value
                            .bytes()
                            .all(|b| matches!(b, 0x21..=0x7e | b' ' | b'\t'));
                    if !name_ok || !value_ok {
                        return Err(bad("malformed extension field"));
                    }
                }
            }
        }
        if !version {
            return Err(PolicyError::Missing("version"));
        }
        let mode = mode.ok_or(PolicyError::Missing("mode"))?;
        let max_age = max_age.ok_or(PolicyError::Missing("max_age"))?;
        if mx.is_empty() && mode != StsMode::None {
            return Err(PolicyError::NoMx(mode));
        }
        Ok(StsPolicy { mode, max_age, mx })
    }
}

impl fmt::Display for StsPolicy {
    /// The canonical policy file, which [`StsPolicy::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "version: STSv1")?;
        writeln!(f, "mode: {}", self.mode)?;
        for p in &self.mx {
            writeln!(f, "mx: {p}")?;
        }
        writeln!(f, "max_age: {}", self.max_age)
    }
}
