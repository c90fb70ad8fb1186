//! SMTP stages at which rules are evaluated.

use std::fmt;

/// A point in an SMTP transaction at which the caller asks for a decision.
///
/// Stages are ordered as they happen on the wire; each evaluation is
/// independent, so the caller evaluates again at every stage with the facts
/// it knows by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Stage {
    /// The TCP (or implicit TLS) connection was accepted; nothing was said yet.
    Connect,
    /// HELO/EHLO was received; the auth policy decides what EHLO advertises.
    Helo,
    /// An AUTH command was received.
    Auth,
    /// MAIL FROM was received.
    Mail,
    /// RCPT TO was received; evaluated once per recipient.
    Rcpt,
    /// The message content was received (end of DATA or last BDAT).
    Data,
}

impl Stage {
    /// Every stage, in wire order.
    pub const ALL: [Stage; 6] = [
        Stage::Connect,
        Stage::Helo,
        Stage::Auth,
        Stage::Mail,
        Stage::Rcpt,
        Stage::Data,
    ];

    /// The lower-case name used in configuration and traces.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Helo => "helo",
            Stage::Auth => "auth",
            Stage::Mail => "mail",
            Stage::Rcpt => "rcpt",
            Stage::Data => "data",
        }
    }

    /// Parses a stage name as written in configuration (case-insensitive).
    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Stage`]s, stored as a bit set so that checking membership on the
/// evaluation path costs nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StageSet(u8);

impl StageSet {
    /// No stage.
    pub const EMPTY: StageSet = StageSet(0);
    /// Every stage.
    pub const ALL: StageSet = StageSet(0b11_1111);

    /// The set holding only `stage`.
    pub const fn only(stage: Stage) -> StageSet {
        StageSet(stage.bit())
    }

    /// `stage` and every stage after it: the stages at which a fact first
    /// known at `stage` is still known.
    pub const fn from(stage: Stage) -> StageSet {
        StageSet(StageSet::ALL.0 & !(stage.bit() - 1))
    }

    /// The set of the given stages.
    pub fn of(stages: &[Stage]) -> StageSet {
        stages.iter().fold(StageSet::EMPTY, |set, s| set.with(*s))
    }

    /// This set with `stage` added.
    #[must_use]
    pub const fn with(self, stage: Stage) -> StageSet {
        StageSet(self.0 | stage.bit())
    }

    /// The stages in both sets.
    #[must_use]
    pub const fn intersect(self, other: StageSet) -> StageSet {
        StageSet(self.0 & other.0)
    }

    /// Whether `stage` is in the set.
    pub const fn contains(self, stage: Stage) -> bool {
        self.0 & stage.bit() != 0
    }

    /// Whether every stage of `other` is in this set.
    pub const fn contains_all(self, other: StageSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set has no stage.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The stages in wire order.
    pub fn iter(self) -> impl Iterator<Item = Stage> {
        Stage::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl fmt::Debug for StageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for StageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no stage");
        }
        for (i, s) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(s.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_includes_later_stages_only() {
        let set = StageSet::from(Stage::Mail);
        assert!(!set.contains(Stage::Auth));
        assert!(set.contains(Stage::Mail));
        assert!(set.contains(Stage::Data));
        assert_eq!(StageSet::from(Stage::Connect), StageSet::ALL);
        assert_eq!(set.to_string(), "mail, rcpt, data");
    }

    #[test]
    fn names_round_trip() {
        for s in Stage::ALL {
            assert_eq!(Stage::from_name(s.name()), Some(s));
        }
        assert_eq!(Stage::from_name("RCPT"), Some(Stage::Rcpt));
        assert_eq!(Stage::from_name("quit"), None);
    }
}
