//! Protocol versions as operators write them, and what rustls can offer.

use postern_session::TlsVersion;

use super::report::{Problem, Warning};

/// A version named in a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Named {
    /// Speakable by rustls.
    Supported(TlsVersion),
    /// Known, deprecated and not speakable (RFC 8996 and RFC 7568).
    Unsupported(&'static str),
}

/// Parses `SSLv2`, `SSLv3`, `TLSv1`, `TLSv1.0`, `TLSv1.1`, `TLSv1.2`,
/// `TLSv1.3` (case-insensitive; `TLS1.2`, `TLS 1.2` and `tls12` too).
pub(crate) fn parse(name: &str) -> Option<Named> {
    let norm: String = name
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '.' | 'v' | 'V'))
        .flat_map(char::to_lowercase)
        .collect();
    Some(match norm.as_str() {
        "ssl2" => Named::Unsupported("SSLv2"),
        "ssl3" => Named::Unsupported("SSLv3"),
        "tls1" | "tls10" => Named::Unsupported("TLSv1.0"),
        "tls11" => Named::Unsupported("TLSv1.1"),
        "tls12" => Named::Supported(TlsVersion::Tls12),
        "tls13" => Named::Supported(TlsVersion::Tls13),
        _ => return None,
    })
}

/// The effective versions, highest first, or the errors.
pub(crate) fn resolve(
    field: &str,
    names: &[String],
    warnings: &mut Vec<Warning>,
    errors: &mut Vec<Problem>,
) -> Vec<TlsVersion> {
    if names.is_empty() {
        errors.push(Problem::new(
            field,
            "no protocol version listed; list TLSv1.2 and/or TLSv1.3",
        ));
        return Vec::new();
    }
    let mut supported = Vec::new();
    let mut unsupported = Vec::new();
    for name in names {
        match parse(name) {
            Some(Named::Supported(v)) => {
                if !supported.contains(&v) {
                    supported.push(v);
                }
            }
            Some(Named::Unsupported(n)) => {
                if !unsupported.contains(&n) {
                    unsupported.push(n);
                }
            }
            None => errors.push(Problem::new(
                field,
                format!(
                    "unknown protocol version {name:?} (known: SSLv2, SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)"
                ),
            )),
        }
    }
    // Highest first.
    supported.sort_by_key(|v| match v {
        TlsVersion::Tls13 => 0,
        _ => 1,
    });
    let effective: Vec<String> = supported.iter().map(ToString::to_string).collect();
    if !unsupported.is_empty() {
        if supported.is_empty() {
            errors.push(Problem::new(
                field,
                format!(
                    "{} not supported (RFC 8996/7568): no version left; list TLSv1.2 and/or TLSv1.3",
                    unsupported.join(", ")
                ),
            ));
        } else {
            warnings.push(Warning::new(
                field,
                format!(
                    "{} not supported (RFC 8996); effective: {}",
                    unsupported.join(", "),
                    effective.join(", ")
                ),
            ));
        }
    }
    supported
}

/// The rustls version for a supported one.
pub(crate) fn rustls_version(v: TlsVersion) -> Option<&'static rustls::SupportedProtocolVersion> {
    match v {
        TlsVersion::Tls12 => Some(&rustls::version::TLS12),
        TlsVersion::Tls13 => Some(&rustls::version::TLS13),
        _ => None,
    }
}
