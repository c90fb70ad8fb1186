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
    /// DANE (RFC 7672, Postfix's `dane`): where the destination's MX, host
    /// address and TLSA records are DNSSEC-signed, TLS authenticated by the
    /// TLSA records; elsewhere opportunistic STARTTLS. A failed TLSA lookup
    /// or bogus DNSSEC data defers instead of falling back.
    Dane,
    /// DANE or nothing (Postfix's `dane-only`): mail is deferred unless the
    /// next hop is authenticated by validated TLSA records.
    DaneOnly,
    /// MTA-STS (RFC 8461): where the recipient domain publishes a policy in
    /// `enforce` mode, only the MX hosts it names, over TLS verified for the
    /// MX name; elsewhere (no policy, `testing`, `none`) opportunistic
    /// STARTTLS. DANE still wins where the destination is signed.
    MtaSts,
}

impl RelayTlsMode {
    /// Every mode.
    pub const ALL: [RelayTlsMode; 8] = [
        RelayTlsMode::None,
        RelayTlsMode::Opportunistic,
        RelayTlsMode::Required,
        RelayTlsMode::Verified,
        RelayTlsMode::Implicit,
        RelayTlsMode::Dane,
        RelayTlsMode::DaneOnly,
        RelayTlsMode::MtaSts,
    ];

    /// The lower-case name used in configuration.
    pub const fn name(self) -> &'static str {
        match self {
            RelayTlsMode::None => "none",
            RelayTlsMode::Opportunistic => "opportunistic",
            RelayTlsMode::Required => "required",
            RelayTlsMode::Verified => "verified",
            RelayTlsMode::Implicit => "implicit",
            RelayTlsMode::Dane => "dane",
            RelayTlsMode::DaneOnly => "dane-only",
            RelayTlsMode::MtaSts => "mta-sts",
        }
    }

    /// Parses a mode name (case-insensitive).
    pub fn from_name(name: &str) -> Option<RelayTlsMode> {
        RelayTlsMode::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Whether mail may leave in plaintext under this mode (under `dane`,
    /// to a destination that is not signed).
    pub const fn allows_plaintext(self) -> bool {
        matches!(
            self,
            RelayTlsMode::None
                | RelayTlsMode::Opportunistic
                | RelayTlsMode::Dane
                | RelayTlsMode::MtaSts
        )
    }

    /// Whether the peer certificate is always verified (by PKIX, or under
    /// `dane-only` by TLSA records).
    pub const fn verifies_certificate(self) -> bool {
        matches!(
            self,
            RelayTlsMode::Verified | RelayTlsMode::Implicit | RelayTlsMode::DaneOnly
        )
    }

    /// Whether the mode uses DANE (`dane` or `dane-only`).
    pub const fn is_dane(self) -> bool {
        matches!(self, RelayTlsMode::Dane | RelayTlsMode::DaneOnly)
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
        assert_eq!(
            RelayTlsMode::from_name("DANE-only"),
            Some(RelayTlsMode::DaneOnly)
        );
        assert!(RelayTlsMode::Dane.allows_plaintext());
        assert!(!RelayTlsMode::DaneOnly.allows_plaintext());
        assert_eq!(
            RelayTlsMode::from_name("MTA-STS"),
            Some(RelayTlsMode::MtaSts)
        );
        assert!(RelayTlsMode::MtaSts.allows_plaintext());
    }
}
