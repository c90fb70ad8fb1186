//! Key-exchange groups as operators write them (OpenSSL's `-groups`), and
//! what the crypto provider can offer.
//!
//! Names are matched without regard to case, `-` or `_`, so `P-256`,
//! `prime256v1` and `secp256r1` are one group, and `X25519MLKEM768` is
//! also `x25519_mlkem768`. An entry may itself be a `:`-separated list, as
//! OpenSSL writes it. Groups the provider does not implement (every one
//! with ring for the post-quantum hybrids; X448, P-521 and finite-field
//! groups always) are reported with the effective set; a name that is no
//! group at all is an error, so typos never pass silently.

use rustls::NamedGroup;
use rustls::crypto::{CryptoProvider, SupportedKxGroup};

use super::report::{Problem, Warning};

/// Every group an operator may name: the spellings, and rustls's code.
const KNOWN: &[(&[&str], NamedGroup)] = &[
    (&["X25519MLKEM768"], NamedGroup::X25519MLKEM768),
    (
        &["SecP256r1MLKEM768", "P256MLKEM768"],
        NamedGroup::secp256r1MLKEM768,
    ),
    (&["MLKEM768"], NamedGroup::MLKEM768),
    (&["MLKEM1024"], NamedGroup::MLKEM1024),
    (&["X25519"], NamedGroup::X25519),
    (&["X448"], NamedGroup::X448),
    (&["P-256", "prime256v1", "secp256r1"], NamedGroup::secp256r1),
    (&["P-384", "secp384r1"], NamedGroup::secp384r1),
    (&["P-521", "secp521r1"], NamedGroup::secp521r1),
    (&["ffdhe2048"], NamedGroup::FFDHE2048),
    (&["ffdhe3072"], NamedGroup::FFDHE3072),
    (&["ffdhe4096"], NamedGroup::FFDHE4096),
    (&["ffdhe6144"], NamedGroup::FFDHE6144),
    (&["ffdhe8192"], NamedGroup::FFDHE8192),
];

/// Case, `-` and `_` do not distinguish group names.
fn fold(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '-' | '_'))
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn lookup(name: &str) -> Option<NamedGroup> {
    let folded = fold(name);
    KNOWN
        .iter()
        .find(|(names, _)| names.iter().any(|n| fold(n) == folded))
        .map(|(_, g)| *g)
}

/// The name a report uses for a group: OpenSSL's first spelling.
pub(crate) fn name_of(group: NamedGroup) -> String {
    KNOWN
        .iter()
        .find(|(_, g)| *g == group)
        .map_or_else(|| format!("{group:?}"), |(names, _)| names[0].to_owned())
}

/// The names of groups, `:`-joined as OpenSSL prints them.
pub(crate) fn names(groups: &[&'static dyn SupportedKxGroup]) -> String {
    let names: Vec<String> = groups.iter().map(|g| name_of(g.name())).collect();
    names.join(":")
}

/// The groups to offer, in the operator's order, or the provider's own
/// list for `None`. Errors and warnings are pushed; an empty result comes
/// with an error.
pub(crate) fn resolve(
    field: &str,
    listed_names: Option<&[String]>,
    provider: &CryptoProvider,
    warnings: &mut Vec<Warning>,
    errors: &mut Vec<Problem>,
) -> Vec<&'static dyn SupportedKxGroup> {
    let Some(names) = listed_names else {
        return provider.kx_groups.clone();
    };
    let mut chosen: Vec<&'static dyn SupportedKxGroup> = Vec::new();
    let mut unsupported: Vec<String> = Vec::new();
    let mut listed = false;
    for name in names
        .iter()
        .flat_map(|entry| entry.split(':'))
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        listed = true;
        let Some(group) = lookup(name) else {
            errors.push(Problem::new(
                field,
                format!(
                    "unknown key-exchange group {name:?} (known: {})",
                    KNOWN
                        .iter()
                        .map(|(n, _)| n[0])
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            continue;
        };
        match provider.kx_groups.iter().find(|g| g.name() == group) {
            Some(g) => {
                if !chosen.iter().any(|c| c.name() == group) {
                    chosen.push(*g);
                }
            }
            None => {
                let name = name_of(group);
                if !unsupported.contains(&name) {
                    unsupported.push(name);
                }
            }
        }
    }
    if !listed {
        errors.push(Problem::new(
            field,
            format!(
                "no key-exchange group listed; list some of {}",
                names_or_none(&provider.kx_groups)
            ),
        ));
        return Vec::new();
    }
    if !unsupported.is_empty() {
        let why = format!(
            "{} not offered by this crypto provider (it has {})",
            unsupported.join(", "),
            names_or_none(&provider.kx_groups)
        );
        if chosen.is_empty() {
            errors.push(Problem::new(
                field,
                format!("{why}: no group left; list some of those"),
            ));
        } else {
            warnings.push(Warning::new(
                field,
                format!("{why}; effective: {}", self::names(&chosen)),
            ));
        }
    }
    chosen
}

fn names_or_none(groups: &[&'static dyn SupportedKxGroup]) -> String {
    if groups.is_empty() {
        "none".to_owned()
    } else {
        names(groups)
    }
}
