//! TLS protocol versions and relay TLS modes.
//!
//! The version enum deliberately includes protocols the Postern TLS stack
//! (rustls) cannot speak, so that a rule asking for them can be loaded,
//! linted and reported instead of being rejected with a vague parse error or,
//! worse, silently widened.

use std::fmt;

/// A TLS (or SSL) protocol version as an operator may name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// SSL 2.0: broken, never available.
    Ssl2,
    /// SSL 3.0: broken (POODLE), never available.
    Ssl3,
    /// TLS 1.0: deprecated by RFC 8996, not available in rustls.
    Tls10,
    /// TLS 1.1: deprecated by RFC 8996, not available in rustls.
    Tls11,
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    /// Every version, oldest first.
    pub const ALL: [TlsVersion; 6] = [
        TlsVersion::Ssl2,
        TlsVersion::Ssl3,
        TlsVersion::Tls10,
        TlsVersion::Tls11,
        TlsVersion::Tls12,
        TlsVersion::Tls13,
    ];

    /// The canonical name, as OpenSSL and the guide write it.
    pub const fn name(self) -> &'static str {
        match self {
            TlsVersion::Ssl2 => "SSLv2",
            TlsVersion::Ssl3 => "SSLv3",
            TlsVersion::Tls10 => "TLSv1.0",
            TlsVersion::Tls11 => "TLSv1.1",
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }

    /// Parses a version name. Accepts the canonical names and the common
    /// spellings operators copy from other MTAs (`TLSv1`, `TLS1.2`, `tls1_2`),
    /// case-insensitively.
    pub fn from_name(name: &str) -> Option<TlsVersion> {
        let norm: String = name
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .map(|c| {
                if c == '_' {
                    '.'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        let (family, rest) = if let Some(rest) = norm.strip_prefix("tls") {
            ("tls", rest)
        } else {
            ("ssl", norm.strip_prefix("ssl")?)
        };
        let rest = rest.strip_prefix('v').unwrap_or(rest);
        Some(match (family, rest) {
            ("ssl", "2" | "2.0") => TlsVersion::Ssl2,
            ("ssl", "3" | "3.0") => TlsVersion::Ssl3,
            ("tls", "1" | "1.0") => TlsVersion::Tls10,
            ("tls", "1.1") => TlsVersion::Tls11,
            ("tls", "1.2") => TlsVersion::Tls12,
            ("tls", "1.3") => TlsVersion::Tls13,
            _ => return None,
        })
    }

    /// Whether the Postern TLS stack can negotiate this version.
    pub const fn is_supported(self) -> bool {
        matches!(self, TlsVersion::Tls12 | TlsVersion::Tls13)
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`TlsVersion`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VersionSet(u8);

impl VersionSet {
    /// No version.
    pub const EMPTY: VersionSet = VersionSet(0);
    /// The versions the Postern TLS stack can speak: TLS 1.2 and 1.3.
    pub const SUPPORTED: VersionSet = VersionSet(TlsVersion::Tls12.bit() | TlsVersion::Tls13.bit());

    /// The set of the given versions.
    pub fn of(versions: &[TlsVersion]) -> VersionSet {
        versions.iter().fold(VersionSet::EMPTY, |s, v| s.with(*v))
    }

    /// This set with `version` added.
    #[must_use]
    pub const fn with(self, version: TlsVersion) -> VersionSet {
        VersionSet(self.0 | version.bit())
    }

    /// Whether `version` is in the set.
    pub const fn contains(self, version: TlsVersion) -> bool {
        self.0 & version.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The subset the TLS stack can actually negotiate. Never wider than
    /// `self`: asking for TLS 1.1 and 1.2 yields TLS 1.2, not "1.2 and 1.3".
    #[must_use]
    pub const fn usable(self) -> VersionSet {
        VersionSet(self.0 & VersionSet::SUPPORTED.0)
    }

    /// The members the TLS stack cannot negotiate.
    #[must_use]
    pub const fn unusable(self) -> VersionSet {
        VersionSet(self.0 & !VersionSet::SUPPORTED.0)
    }

    /// The versions, oldest first.
    pub fn iter(self) -> impl Iterator<Item = TlsVersion> {
        TlsVersion::ALL
            .into_iter()
            .filter(move |v| self.contains(*v))
    }
}

impl fmt::Debug for VersionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for VersionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(v.name())?;
        }
        Ok(())
    }
}

/// How the relay client uses TLS towards the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelayTlsMode {
    /// Never use TLS. Only sensible towards a host on a trusted network.
    None,
    /// STARTTLS when the peer offers it, without certificate checks; plaintext
    /// otherwise. The guide's "Use StartTLS" and the default.
    Opportunistic,
    /// STARTTLS must succeed or the delivery is deferred; the certificate is
    /// not checked (RFC 7435 "encrypt").
    Required,
    /// STARTTLS must succeed and the certificate must verify against the trust
    /// anchors for the host name.
    Verified,
    /// TLS from the first byte (SMTPS, port 465, RFC 8314), with the
    /// certificate verified.
    Implicit,
}

impl RelayTlsMode {
    /// Every mode.
    pub const ALL: [RelayTlsMode; 5] = [
        RelayTlsMode::None,
        RelayTlsMode::Opportunistic,
        RelayTlsMode::Required,
        RelayTlsMode::Verified,
        RelayTlsMode::Implicit,
    ];

    /// The lower-case name used in configuration.
    pub const fn name(self) -> &'static str {
        match self {
            RelayTlsMode::None => "none",
            RelayTlsMode::Opportunistic => "opportunistic",
            RelayTlsMode::Required => "required",
            RelayTlsMode::Verified => "verified",
            RelayTlsMode::Implicit => "implicit",
        }
    }

    /// Parses a mode name (case-insensitive).
    pub fn from_name(name: &str) -> Option<RelayTlsMode> {
        RelayTlsMode::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Whether mail may leave in plaintext under this mode.
    pub const fn allows_plaintext(self) -> bool {
        matches!(self, RelayTlsMode::None | RelayTlsMode::Opportunistic)
    }

    /// Whether the peer certificate is verified.
    pub const fn verifies_certificate(self) -> bool {
        matches!(self, RelayTlsMode::Verified | RelayTlsMode::Implicit)
    }
}

impl fmt::Display for RelayTlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_parse_in_common_spellings() {
        for v in TlsVersion::ALL {
            assert_eq!(TlsVersion::from_name(v.name()), Some(v));
        }
        assert_eq!(TlsVersion::from_name("TLSv1"), Some(TlsVersion::Tls10));
        assert_eq!(TlsVersion::from_name("tls1_2"), Some(TlsVersion::Tls12));
        assert_eq!(TlsVersion::from_name("TLS1.3"), Some(TlsVersion::Tls13));
        assert_eq!(TlsVersion::from_name("sslv3"), Some(TlsVersion::Ssl3));
        assert_eq!(TlsVersion::from_name("TLSv1.4"), None);
        assert_eq!(TlsVersion::from_name(""), None);
    }

    #[test]
    fn usable_never_widens() {
        let asked = VersionSet::of(&[TlsVersion::Tls11, TlsVersion::Tls12]);
        assert_eq!(asked.usable(), VersionSet::of(&[TlsVersion::Tls12]));
        assert_eq!(asked.unusable(), VersionSet::of(&[TlsVersion::Tls11]));
        let old = VersionSet::of(&[TlsVersion::Ssl3, TlsVersion::Tls10]);
        assert!(old.usable().is_empty());
        assert_eq!(asked.to_string(), "TLSv1.1, TLSv1.2");
    }
}
