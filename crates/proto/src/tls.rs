//! TLS protocol versions, as operators name them and as the wire numbers
//! them.
//!
//! This is the one `TlsVersion` of the Postern crates, with the one name
//! parser: the listener's policy, the rules' relay settings and the relay's
//! route policy all read version names through [`TlsVersion::from_name`], so
//! `"TLS-1.2"` means the same everywhere.
//!
//! The enum deliberately includes protocols no Postern TLS stack speaks
//! (SSL 2.0 and 3.0, TLS 1.0 and 1.1), so that a policy naming them can be
//! loaded, linted and *reported* with its effective setting instead of failing
//! with a vague parse error or, worse, being silently widened.

use std::fmt;
use std::str::FromStr;

/// A TLS (or SSL) protocol version.
///
/// Ordered oldest first, so `a < b` means `a` is older.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum TlsVersion {
    /// SSL 2.0: prohibited by RFC 6176.
    Ssl2,
    /// SSL 3.0: deprecated by RFC 7568 (POODLE).
    Ssl3,
    /// TLS 1.0: deprecated by RFC 8996.
    Tls10,
    /// TLS 1.1: deprecated by RFC 8996.
    Tls11,
    /// TLS 1.2 (RFC 5246).
    Tls12,
    /// TLS 1.3 (RFC 8446).
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

    /// The canonical name, as OpenSSL and the hardening guide write it
    /// (`TLSv1.2`). [`TlsVersion::from_name`] reads it back.
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

    /// Parses a version name, case-insensitively: the canonical names and the
    /// spellings operators copy from other MTAs and guides: `TLSv1`,
    /// `TLSv1.2`, `TLS1.2`, `TLS-1.2`, `TLS 1.2`, `tls1_2`, `tls12`, `SSLv3`.
    ///
    /// ```
    /// use postern_proto::TlsVersion;
    /// for name in ["TLSv1.2", "TLS-1.2", "TLS 1.2", "tls1_2", "tls12", "TLS1.2"] {
    ///     assert_eq!(TlsVersion::from_name(name), Some(TlsVersion::Tls12));
    /// }
    /// assert_eq!(TlsVersion::from_name("TLSv1"), Some(TlsVersion::Tls10));
    /// assert_eq!(TlsVersion::from_name("TLSv1.4"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<TlsVersion> {
        // Separators carry no meaning in any spelling in use; dropping them
        // leaves "tls12", "tlsv12", "sslv3" and so on.
        let mut norm = [0u8; 8];
        let mut len = 0;
        for b in name.bytes() {
            if matches!(b, b' ' | b'-' | b'_' | b'.') {
                continue;
            }
            if len == norm.len() {
                return None;
            }
            norm[len] = b.to_ascii_lowercase();
            len += 1;
        }
        let norm = &norm[..len];
        let (tls, rest) = if let Some(rest) = norm.strip_prefix(b"tls") {
            (true, rest)
        } else {
            (false, norm.strip_prefix(b"ssl")?)
        };
        let rest = rest.strip_prefix(b"v").unwrap_or(rest);
        Some(match (tls, rest) {
            (false, b"2" | b"20") => TlsVersion::Ssl2,
            (false, b"3" | b"30") => TlsVersion::Ssl3,
            (true, b"1" | b"10") => TlsVersion::Tls10,
            (true, b"11") => TlsVersion::Tls11,
            (true, b"12") => TlsVersion::Tls12,
            (true, b"13") => TlsVersion::Tls13,
            _ => return None,
        })
    }

    /// The version's number on the wire (`ProtocolVersion`, RFC 8446 §4.1.2):
    /// `0x0303` for TLS 1.2.
    pub const fn wire(self) -> u16 {
        match self {
            TlsVersion::Ssl2 => 0x0200,
            TlsVersion::Ssl3 => 0x0300,
            TlsVersion::Tls10 => 0x0301,
            TlsVersion::Tls11 => 0x0302,
            TlsVersion::Tls12 => 0x0303,
            TlsVersion::Tls13 => 0x0304,
        }
    }

    /// The version a wire number names, if any.
    pub const fn from_wire(wire: u16) -> Option<TlsVersion> {
        Some(match wire {
            0x0200 | 0x0002 => TlsVersion::Ssl2,
            0x0300 => TlsVersion::Ssl3,
            0x0301 => TlsVersion::Tls10,
            0x0302 => TlsVersion::Tls11,
            0x0303 => TlsVersion::Tls12,
            0x0304 => TlsVersion::Tls13,
            _ => return None,
        })
    }

    /// True for the versions the IETF has deprecated or prohibited
    /// (SSL 2.0 by RFC 6176, SSL 3.0 by RFC 7568, TLS 1.0 and 1.1 by RFC
    /// 8996). No Postern TLS stack negotiates them.
    pub const fn is_deprecated(self) -> bool {
        !matches!(self, TlsVersion::Tls12 | TlsVersion::Tls13)
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

/// A name that [`TlsVersion::from_name`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown TLS version {0:?} (known: SSLv2, SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)")]
pub struct UnknownTlsVersion(pub String);

impl FromStr for TlsVersion {
    type Err = UnknownTlsVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TlsVersion::from_name(s).ok_or_else(|| UnknownTlsVersion(s.to_owned()))
    }
}

/// A set of [`TlsVersion`]s, such as a policy's allowed versions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TlsVersionSet(u8);

impl TlsVersionSet {
    /// No version.
    pub const EMPTY: TlsVersionSet = TlsVersionSet(0);
    /// The versions not deprecated: TLS 1.2 and 1.3.
    pub const CURRENT: TlsVersionSet =
        TlsVersionSet(TlsVersion::Tls12.bit() | TlsVersion::Tls13.bit());

    /// The set of the given versions.
    pub fn of(versions: &[TlsVersion]) -> TlsVersionSet {
        versions
            .iter()
            .fold(TlsVersionSet::EMPTY, |s, v| s.with(*v))
    }

    /// This set with `version` added.
    #[must_use]
    pub const fn with(self, version: TlsVersion) -> TlsVersionSet {
        TlsVersionSet(self.0 | version.bit())
    }

    /// Whether `version` is in the set.
    pub const fn contains(self, version: TlsVersion) -> bool {
        self.0 & version.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members that are not deprecated. Never wider than `self`: asking
    /// for TLS 1.1 and 1.2 yields TLS 1.2, not "1.2 and 1.3".
    #[must_use]
    pub const fn current(self) -> TlsVersionSet {
        TlsVersionSet(self.0 & TlsVersionSet::CURRENT.0)
    }

    /// The deprecated members.
    #[must_use]
    pub const fn deprecated(self) -> TlsVersionSet {
        TlsVersionSet(self.0 & !TlsVersionSet::CURRENT.0)
    }

    /// The versions, oldest first.
    pub fn iter(self) -> impl Iterator<Item = TlsVersion> {
        TlsVersion::ALL
            .into_iter()
            .filter(move |v| self.contains(*v))
    }
}

impl FromIterator<TlsVersion> for TlsVersionSet {
    fn from_iter<I: IntoIterator<Item = TlsVersion>>(iter: I) -> Self {
        iter.into_iter()
            .fold(TlsVersionSet::EMPTY, TlsVersionSet::with)
    }
}

impl fmt::Debug for TlsVersionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for TlsVersionSet {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_canonical_name_round_trips() {
        for v in TlsVersion::ALL {
            assert_eq!(TlsVersion::from_name(v.name()), Some(v));
            assert_eq!(v.name().parse::<TlsVersion>(), Ok(v));
            assert_eq!(TlsVersion::from_wire(v.wire()), Some(v));
        }
    }

    #[test]
    fn the_spellings_in_use_are_one_parser() {
        // The three parsers this replaces disagreed on "TLS-1.2" (the
        // relay's refused it); now every spelling means the same.
        for name in [
            "TLSv1.2", "tlsv1.2", "TLS1.2", "TLS-1.2", "TLS 1.2", "tls1_2", "tls12", "TLSv12",
        ] {
            assert_eq!(
                TlsVersion::from_name(name),
                Some(TlsVersion::Tls12),
                "{name}"
            );
        }
        assert_eq!(TlsVersion::from_name("TLSv1"), Some(TlsVersion::Tls10));
        assert_eq!(TlsVersion::from_name("TLSv1.0"), Some(TlsVersion::Tls10));
        assert_eq!(TlsVersion::from_name("sslv3"), Some(TlsVersion::Ssl3));
        assert_eq!(TlsVersion::from_name("SSLv2"), Some(TlsVersion::Ssl2));
    }

    #[test]
    fn unknown_names_are_refused() {
        for name in [
            "", "TLS", "TLSv1.4", "TLSv2", "SSLv1", "tls1.2.3", "v1.2", "DTLSv1.2",
        ] {
            assert_eq!(TlsVersion::from_name(name), None, "{name}");
        }
        let err = "TLSv9".parse::<TlsVersion>().unwrap_err();
        assert!(err.to_string().contains("\"TLSv9\""), "{err}");
        assert_eq!(TlsVersion::from_wire(0x0305), None);
    }

    #[test]
    fn current_never_widens() {
        let asked = TlsVersionSet::of(&[TlsVersion::Tls11, TlsVersion::Tls12]);
        assert_eq!(asked.current(), TlsVersionSet::of(&[TlsVersion::Tls12]));
        assert_eq!(asked.deprecated(), TlsVersionSet::of(&[TlsVersion::Tls11]));
        let old: TlsVersionSet = [TlsVersion::Ssl3, TlsVersion::Tls10].into_iter().collect();
        assert!(old.current().is_empty());
        assert_eq!(asked.to_string(), "TLSv1.1, TLSv1.2");
        assert_eq!(TlsVersionSet::EMPTY.to_string(), "none");
        assert!(TlsVersion::Tls11.is_deprecated() && !TlsVersion::Tls13.is_deprecated());
    }
}
