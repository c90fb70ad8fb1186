//! Protocol versions as operators write them, and what rustls can offer.

use postern_proto::TlsVersion;

use super::report::{Problem, Warning};

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
        // The one name parser of the workspace; what rustls cannot speak
        // (everything deprecated) is reported, never offered.
        match TlsVersion::from_name(name) {
            Some(v) if rustls_version(v).is_some() => {
                if !supported.contains(&v) {
                    supported.push(v);
                }
            }
            Some(v) => {
                if !unsupported.contains(&v.name()) {
                    unsupported.push(v.name());
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
