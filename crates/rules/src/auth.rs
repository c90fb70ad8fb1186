//! SASL mechanisms and inbound authentication policy.

use std::fmt;

/// A SASL mechanism an SMTP server may advertise in `AUTH`.
///
/// Only registered, widely deployed names are accepted so that a typo in a
/// rule file (`LOGON`) is a load error rather than a mechanism nobody offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mechanism {
    /// `PLAIN` (RFC 4616): the password in the clear.
    Plain,
    /// `LOGIN`: the password in the clear, base64-wrapped.
    Login,
    /// `CRAM-MD5` (RFC 2195).
    CramMd5,
    /// `DIGEST-MD5` (RFC 2831, historic).
    DigestMd5,
    /// `SCRAM-SHA-1` (RFC 5802).
    ScramSha1,
    /// `SCRAM-SHA-1-PLUS` (RFC 5802, channel binding).
    ScramSha1Plus,
    /// `SCRAM-SHA-256` (RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-256-PLUS` (RFC 7677, channel binding).
    ScramSha256Plus,
    /// `XOAUTH2`.
    Xoauth2,
    /// `OAUTHBEARER` (RFC 7628).
    OauthBearer,
    /// `EXTERNAL` (RFC 4422): identity from the TLS client certificate.
    External,
    /// `GSSAPI` (RFC 4752).
    Gssapi,
}

impl Mechanism {
    /// Every mechanism.
    pub const ALL: [Mechanism; 12] = [
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::CramMd5,
        Mechanism::DigestMd5,
        Mechanism::ScramSha1,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha256,
        Mechanism::ScramSha256Plus,
        Mechanism::Xoauth2,
        Mechanism::OauthBearer,
        Mechanism::External,
        Mechanism::Gssapi,
    ];

    /// The registered name, as sent in the EHLO `AUTH` line.
    pub const fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::DigestMd5 => "DIGEST-MD5",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Mechanism::Xoauth2 => "XOAUTH2",
            Mechanism::OauthBearer => "OAUTHBEARER",
            Mechanism::External => "EXTERNAL",
            Mechanism::Gssapi => "GSSAPI",
        }
    }

    /// Parses a mechanism name (SASL names are case-insensitive).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Whether the mechanism sends a reusable password that anyone reading
    /// the connection can take.
    pub const fn sends_cleartext_password(self) -> bool {
        matches!(self, Mechanism::Plain | Mechanism::Login)
    }

    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Mechanism`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MechanismSet(u16);

impl MechanismSet {
    /// No mechanism.
    pub const EMPTY: MechanismSet = MechanismSet(0);

    /// The set of the given mechanisms.
    pub fn of(mechanisms: &[Mechanism]) -> MechanismSet {
        mechanisms
            .iter()
            .fold(MechanismSet::EMPTY, |s, m| s.with(*m))
    }

    /// This set with `mechanism` added.
    #[must_use]
    pub const fn with(self, mechanism: Mechanism) -> MechanismSet {
        MechanismSet(self.0 | mechanism.bit())
    }

    /// Whether `mechanism` is in the set.
    pub const fn contains(self, mechanism: Mechanism) -> bool {
        self.0 & mechanism.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The mechanisms in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Mechanism> {
        Mechanism::ALL
            .into_iter()
            .filter(move |m| self.contains(*m))
    }
}

impl fmt::Debug for MechanismSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for MechanismSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(m.name())?;
        }
        Ok(())
    }
}

/// Whether AUTH is offered on one kind of transport, and with which
/// mechanisms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AuthPolicy {
    /// AUTH is neither advertised nor accepted (the guide's "Not
    /// authenticated"). The default: AUTH is only offered where a rule says so.
    #[default]
    Off,
    /// AUTH is advertised and accepted with these mechanisms.
    On(MechanismSet),
}

impl AuthPolicy {
    /// The mechanisms offered; empty when off.
    pub const fn mechanisms(self) -> MechanismSet {
        match self {
            AuthPolicy::Off => MechanismSet::EMPTY,
            AuthPolicy::On(set) => set,
        }
    }

    /// Whether AUTH is offered at all.
    pub const fn is_on(self) -> bool {
        matches!(self, AuthPolicy::On(_))
    }
}

impl fmt::Display for AuthPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthPolicy::Off => f.write_str("off"),
            AuthPolicy::On(set) if set.is_empty() => f.write_str("on (no mechanism)"),
            AuthPolicy::On(set) => write!(f, "on ({set})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_names_round_trip_case_insensitively() {
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
            assert_eq!(Mechanism::from_name(&m.name().to_lowercase()), Some(m));
        }
        assert_eq!(Mechanism::from_name("LOGON"), None);
    }

    #[test]
    fn policy_display() {
        let set = MechanismSet::of(&[Mechanism::Login, Mechanism::Plain]);
        assert_eq!(AuthPolicy::On(set).to_string(), "on (PLAIN LOGIN)");
        assert_eq!(AuthPolicy::Off.to_string(), "off");
    }
}
