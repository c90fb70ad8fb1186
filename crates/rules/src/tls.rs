//! Relay TLS modes. TLS versions are [`postern_proto::TlsVersion`] and
//! [`postern_proto::TlsVersionSet`], the one definition (and one name parser)
//! every Postern crate shares; the set includes the deprecated versions no
//! Postern stack speaks, so that a rule asking for them is loaded, linted and
//! reported instead of being refused vaguely or silently widened.

use std::fmt;

/// How the relay client uses TLS towards the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
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
    fn relay_modes_round_trip() {
        for m in RelayTlsMode::ALL {
            assert_eq!(RelayTlsMode::from_name(m.name()), Some(m));
        }
    }
}
