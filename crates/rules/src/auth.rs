//! Inbound authentication offers: which SASL mechanisms AUTH offers on a
//! transport. Mechanisms are [`postern_proto::Mechanism`]; this module only
//! keeps the set of them a rule may name.

use std::fmt;

use postern_proto::Mechanism;

/// The mechanisms a rule may name, by registered name; a set's bit `i` is
/// `KNOWN[i]`. Only registered, widely deployed names are accepted so that a
/// typo in a rule file (`LOGON`) is a load error rather than a mechanism
/// nobody offers.
const KNOWN: [&str; 12] = [
    "PLAIN",
    "LOGIN",
    "CRAM-MD5",
    "DIGEST-MD5",
    "SCRAM-SHA-1",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-256-PLUS",
    "XOAUTH2",
    "OAUTHBEARER",
    "EXTERNAL",
    "GSSAPI",
];

/// The mechanisms that send a reusable password anyone reading the
/// connection can take: PLAIN and LOGIN.
const CLEARTEXT: u16 = 0b11;

fn index(mechanism: &Mechanism<'_>) -> Option<usize> {
    let name = mechanism.as_str();
    KNOWN.iter().position(|k| k.eq_ignore_ascii_case(name))
}

/// The registered names a rule may use, for error messages.
pub(crate) fn known_names() -> String {
    KNOWN.join(", ")
}

/// A set of the SASL mechanisms rules know (see [`MechanismSet::try_with`]).
/// Copy, so that evaluating rules allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MechanismSet(u16);

impl MechanismSet {
    /// No mechanism.
    pub const EMPTY: MechanismSet = MechanismSet(0);

    /// The set of the given mechanisms; `None` if one of them is not a
    /// registered, widely deployed mechanism (PLAIN, LOGIN, CRAM-MD5,
    /// DIGEST-MD5, SCRAM-SHA-1(-PLUS), SCRAM-SHA-256(-PLUS), XOAUTH2,
    /// OAUTHBEARER, EXTERNAL, GSSAPI).
    pub fn of(mechanisms: &[Mechanism<'_>]) -> Option<MechanismSet> {
        mechanisms
            .iter()
            .try_fold(MechanismSet::EMPTY, |s, m| s.try_with(m))
    }

    /// This set with `mechanism` added; `None` if rules do not know it.
    #[must_use]
    pub fn try_with(self, mechanism: &Mechanism<'_>) -> Option<MechanismSet> {
        index(mechanism).map(|i| MechanismSet(self.0 | 1 << i))
    }

    /// Parses a mechanism name (SASL names are case-insensitive) and adds
    /// it; `None` if it is not one rules know.
    pub fn with_name(self, name: &str) -> Option<MechanismSet> {
        self.try_with(&Mechanism::parse(name).ok()?)
    }

    /// Whether `mechanism` is in the set.
    pub fn contains(self, mechanism: &Mechanism<'_>) -> bool {
        index(mechanism).is_some_and(|i| self.0 & 1 << i != 0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members that send a reusable password in the clear (PLAIN,
    /// LOGIN).
    #[must_use]
    pub const fn cleartext(self) -> MechanismSet {
        MechanismSet(self.0 & CLEARTEXT)
    }

    /// The members that do not send a reusable password in the clear.
    #[must_use]
    pub const fn not_cleartext(self) -> MechanismSet {
        MechanismSet(self.0 & !CLEARTEXT)
    }

    /// The mechanisms, in a fixed order (PLAIN and LOGIN first).
    pub fn iter(self) -> impl Iterator<Item = Mechanism<'static>> {
        KNOWN
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & 1 << i != 0)
            // The names are valid and static, so this borrows and never fails.
            .filter_map(|(_, name)| Mechanism::parse(name).ok())
            .map(Mechanism::into_owned)
    }

    /// The names, in the order of [`MechanismSet::iter`].
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        KNOWN
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & 1 << i != 0)
            .map(|(_, name)| *name)
    }
}

impl fmt::Debug for MechanismSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl fmt::Display for MechanismSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.names().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(m)?;
        }
        Ok(())
    }
}

/// Whether AUTH is offered on one kind of transport, and with which
/// mechanisms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum AuthOffer {
    /// AUTH is neither advertised nor accepted (the guide's "Not
    /// authenticated"). The default: AUTH is only offered where a rule says so.
    #[default]
    Off,
    /// AUTH is advertised and accepted with these mechanisms.
    On(MechanismSet),
}

impl AuthOffer {
    /// The mechanisms offered; empty when off.
    pub const fn mechanisms(self) -> MechanismSet {
        match self {
            AuthOffer::Off => MechanismSet::EMPTY,
            AuthOffer::On(set) => set,
        }
    }

    /// Whether AUTH is offered at all.
    pub const fn is_on(self) -> bool {
        matches!(self, AuthOffer::On(_))
    }

    /// Whether AUTH with `mechanism` is offered (and so may be accepted).
    pub fn allows(self, mechanism: &Mechanism<'_>) -> bool {
        self.mechanisms().contains(mechanism)
    }
}

impl fmt::Display for AuthOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthOffer::Off => f.write_str("off"),
            AuthOffer::On(set) if set.is_empty() => f.write_str("on (no mechanism)"),
            AuthOffer::On(set) => write!(f, "on ({set})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_names_round_trip_case_insensitively() {
        for name in KNOWN {
            let set = MechanismSet::EMPTY.with_name(name).unwrap();
            assert_eq!(set.names().collect::<Vec<_>>(), [name]);
            assert_eq!(
                MechanismSet::EMPTY.with_name(&name.to_lowercase()),
                Some(set)
            );
            assert!(set.contains(&Mechanism::parse(name).unwrap()));
            assert_eq!(
                set.iter().next().map(|m| m.as_str().to_owned()),
                Some(name.to_owned())
            );
        }
        assert_eq!(MechanismSet::EMPTY.with_name("LOGON"), None);
        assert_eq!(MechanismSet::EMPTY.with_name(""), None);
    }

    #[test]
    fn policy_display() {
        let set = MechanismSet::of(&[Mechanism::Login, Mechanism::Plain]).unwrap();
        assert_eq!(AuthOffer::On(set).to_string(), "on (PLAIN LOGIN)");
        assert_eq!(AuthOffer::Off.to_string(), "off");
        assert!(AuthOffer::On(set).allows(&Mechanism::Plain));
        assert!(!AuthOffer::On(set).allows(&Mechanism::CramMd5));
        assert_eq!(set.cleartext(), set);
        assert!(set.not_cleartext().is_empty());
    }
}
