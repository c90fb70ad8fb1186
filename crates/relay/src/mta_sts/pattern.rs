//! MX patterns of a policy and how MX host names match them (RFC 8461
//! §3.2 `mx`, §4.1).

use std::fmt;

/// One `mx:` value: a host name, or `*.` and a domain, where the wildcard
/// stands for exactly one leftmost label (§4.1: `*.example.com` matches
/// `mx1.example.com`, not `example.com` nor `a.b.example.com`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MxPattern {
    wildcard: bool,
    /// Lower case, without a trailing dot.
    name: String,
}

impl MxPattern {
    /// Parses an `mx` value:
    /// `sts-policy-mx-value = ["*."] Domain` (RFC 5321 `Domain`).
    pub fn parse(value: &str) -> Option<MxPattern> {
        let (wildcard, name) = match value.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        let valid_label = |l: &str| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
            return None;
        }
        Some(MxPattern {
            wildcard,
            name: name.to_ascii_lowercase(),
        })
    }

    /// Whether `host` (an MX host name, any case, trailing dot allowed)
    /// matches this pattern.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        if !self.wildcard {
            return host.eq_ignore_ascii_case(&self.name);
        }
        // "*.example.com": exactly one non-empty label before ".example.com".
        // Compared as bytes: a host name from DNS may hold any octets.
        let (h, n) = (host.as_bytes(), self.name.as_bytes());
        if h.len() < n.len() + 2 {
            return false;
        }
        let (label, rest) = h.split_at(h.len() - n.len() - 1);
        rest[0] == b'.' && rest[1..].eq_ignore_ascii_case(n) && !label.contains(&b'.')
    }

    /// True for `*.domain`.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }
}

impl fmt::Display for MxPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.name)
    }
}
