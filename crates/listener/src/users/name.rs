//! Which user names a users file may hold.

/// A user name that cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid user name {0:?}: use letters, digits, '.', '_', '+', '-' and at most one '@domain'"
)]
pub struct BadUserName(pub String);

/// Checks a user name: `local` or `local@domain`, ASCII letters, digits and
/// `._+-`, no leading dot, at most 64 octets before the `@` (the names are
/// also Maildir directory names, so nothing else is allowed).
pub fn validate_name(name: &str) -> Result<(), BadUserName> {
    let (local, domain) = match name.split_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (name, None),
    };
    let ok_local = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'));
    let ok_domain = domain.is_none_or(|d| {
        !d.is_empty()
            && d.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
    });
    if ok_local && ok_domain {
        Ok(())
    } else {
        Err(BadUserName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("alice").is_ok());
        assert!(validate_name("alice@example.org").is_ok());
        for bad in ["", "a:b", "a b", ".x", "a/b", "a@b@c", "a@"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
