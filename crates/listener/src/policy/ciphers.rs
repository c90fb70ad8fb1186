//! Cipher lists in OpenSSL notation, mapped onto what rustls offers.
//!
//! The cipher string follows OpenSSL's `-cipher` syntax: names separated by
//! `:` (or `,`, spaces), `!X` to delete X for good, `-X` to delete it,
//! `+X` to move it to the end, `A+B` for suites in both A and B, `@...`
//! directives. As in OpenSSL, keywords (`HIGH`, `ECDHE`, `AESGCM`...)
//! select TLS 1.2 suites only; TLS 1.3 suites are chosen by naming them. A
//! list that names no TLS 1.3 suite leaves TLS 1.3 with its default suites
//! (OpenSSL configures them apart, with `-ciphersuites`), and the report
//! says so.
//!
//! Suites rustls cannot offer (CBC, finite-field DHE, DSS, RSA key
//! exchange, 3DES, RC4, NULL, export, CCM...) are listed as unsupported
//! with the reason and the nearest secure equivalent; a name that is no
//! cipher at all is an error, so typos never pass silently.

use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, SupportedCipherSuite};

use postern_proto::TlsVersion;

use super::report::{Problem, Warning};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    Rsa,
    Ecdsa,
    /// TLS 1.3: any key.
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bulk {
    Aes128,
    Aes256,
    Chacha,
}

/// A suite rustls implements.
#[derive(Debug)]
struct Known {
    openssl: &'static str,
    iana: &'static str,
    suite: CipherSuite,
    version: TlsVersion,
    auth: Auth,
    bulk: Bulk,
}

const KNOWN: &[Known] = &[
    Known {
        openssl: "TLS_AES_256_GCM_SHA384",
        iana: "TLS_AES_256_GCM_SHA384",
        suite: CipherSuite::TLS13_AES_256_GCM_SHA384,
        version: TlsVersion::Tls13,
        auth: Auth::Any,
        bulk: Bulk::Aes256,
    },
    Known {
        openssl: "TLS_AES_128_GCM_SHA256",
        iana: "TLS_AES_128_GCM_SHA256",
        suite: CipherSuite::TLS13_AES_128_GCM_SHA256,
        version: TlsVersion::Tls13,
        auth: Auth::Any,
        bulk: Bulk::Aes128,
    },
    Known {
        openssl: "TLS_CHACHA20_POLY1305_SHA256",
        iana: "TLS_CHACHA20_POLY1305_SHA256",
        suite: CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        version: TlsVersion::Tls13,
        auth: Auth::Any,
        bulk: Bulk::Chacha,
    },
    Known {
        openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
        iana: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        version: TlsVersion::Tls12,
        auth: Auth::Ecdsa,
        bulk: Bulk::Aes256,
    },
    Known {
        openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
        iana: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        version: TlsVersion::Tls12,
        auth: Auth::Ecdsa,
        bulk: Bulk::Aes128,
    },
    Known {
        openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
        iana: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        version: TlsVersion::Tls12,
        auth: Auth::Ecdsa,
        bulk: Bulk::Chacha,
    },
    Known {
        openssl: "ECDHE-RSA-AES256-GCM-SHA384",
        iana: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        version: TlsVersion::Tls12,
        auth: Auth::Rsa,
        bulk: Bulk::Aes256,
    },
    Known {
        openssl: "ECDHE-RSA-AES128-GCM-SHA256",
        iana: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        version: TlsVersion::Tls12,
        auth: Auth::Rsa,
        bulk: Bulk::Aes128,
    },
    Known {
        openssl: "ECDHE-RSA-CHACHA20-POLY1305",
        iana: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        version: TlsVersion::Tls12,
        auth: Auth::Rsa,
        bulk: Bulk::Chacha,
    },
];

/// The OpenSSL name of a rustls suite, when it is one of the known ones.
pub(crate) fn openssl_name(suite: CipherSuite) -> Option<&'static str> {
    KNOWN.iter().find(|k| k.suite == suite).map(|k| k.openssl)
}

fn find_name(name: &str) -> Option<usize> {
    KNOWN.iter().position(|k| {
        k.openssl.eq_ignore_ascii_case(name)
            || k.iana.eq_ignore_ascii_case(name)
            || format!("{:?}", k.suite).eq_ignore_ascii_case(name)
    })
}

/// What a keyword selects among the known TLS 1.2 suites, or why it
/// selects nothing rustls has.
enum Keyword {
    Suites(Vec<usize>),
    Nothing { reason: &'static str, dhe: bool },
}

fn keyword(word: &str) -> Option<Keyword> {
    let tls12 = |f: &dyn Fn(&Known) -> bool| -> Keyword {
        Keyword::Suites(
            KNOWN
                .iter()
                .enumerate()
                .filter(|(_, k)| k.version == TlsVersion::Tls12 && f(k))
                .map(|(i, _)| i)
                .collect(),
        )
    };
    let nothing = |reason| Keyword::Nothing { reason, dhe: false };
    Some(match word.to_ascii_uppercase().as_str() {
        "ALL" | "DEFAULT" | "HIGH" | "AEAD" | "TLSV1.2" | "ECDHE" | "EECDH" | "KECDHE"
        | "KEECDH" | "FIPS" => tls12(&|_| true),
        "ARSA" => tls12(&|k| k.auth == Auth::Rsa),
        "AECDSA" | "ECDSA" => tls12(&|k| k.auth == Auth::Ecdsa),
        "AESGCM" | "AES" => tls12(&|k| k.bulk != Bulk::Chacha),
        "AES128" => tls12(&|k| k.bulk == Bulk::Aes128),
        "AES256" => tls12(&|k| k.bulk == Bulk::Aes256),
        "CHACHA20" => tls12(&|k| k.bulk == Bulk::Chacha),
        "DHE" | "EDH" | "KDHE" | "KEDH" | "DH" | "KDH" => Keyword::Nothing {
            reason: "finite-field DHE key exchange",
            dhe: true,
        },
        "ADH" | "ANULL" | "AECDH" => nothing("anonymous key exchange"),
        "ENULL" | "NULL" => nothing("no encryption"),
        "EXPORT" | "EXP" | "LOW" => nothing("export/low-grade ciphers"),
        "MEDIUM" | "RC4" => nothing("RC4"),
        "3DES" | "DES" => nothing("3DES/DES"),
        "MD5" | "SHA1" | "SHA" => nothing("SHA-1/MD5 MAC (CBC suites)"),
        "ADSS" | "DSS" => nothing("DSS authentication"),
        "KRSA" | "RSA" => nothing("RSA key exchange (no forward secrecy)"),
        "PSK" | "SRP" | "KPSK" | "KSRP" | "APSK" | "ASRP" => nothing("PSK/SRP"),
        "CAMELLIA" | "ARIA" | "SEED" | "IDEA" => nothing("cipher rustls does not implement"),
        "CCM" | "CCM8" | "AESCCM" | "AESCCM8" => nothing("AES-CCM"),
        "KECDH" | "AECDHE" | "ECDH" => nothing("static ECDH key exchange"),
        "SSLV3" | "TLSV1" | "TLSV1.0" | "TLSV1.1" | "SSLV2" => {
            nothing("suites of versions rustls does not speak")
        }
        "COMPLEMENTOFDEFAULT" | "COMPLEMENTOFALL" => Keyword::Suites(Vec::new()),
        _ => return None,
    })
}

/// Why a cipher suite name (OpenSSL or IANA style) is not offered, with the
/// nearest secure equivalent; `None` when the name is not a cipher suite.
fn unsupported_suite(name: &str) -> Option<(String, &'static str, bool)> {
    const VOCAB: &[&str] = &[
        "TLS",
        "SSL",
        "WITH",
        "ECDHE",
        "EECDH",
        "DHE",
        "EDH",
        "DH",
        "ECDH",
        "RSA",
        "ECDSA",
        "DSS",
        "PSK",
        "SRP",
        "ADH",
        "AECDH",
        "ANON",
        "AES",
        "AES128",
        "AES256",
        "128",
        "256",
        "GCM",
        "CCM",
        "8",
        "CBC",
        "CBC3",
        "DES",
        "3DES",
        "EDE",
        "RC4",
        "RC2",
        "40",
        "56",
        "CAMELLIA",
        "CAMELLIA128",
        "CAMELLIA256",
        "ARIA",
        "ARIA128",
        "ARIA256",
        "SEED",
        "IDEA",
        "NULL",
        "CHACHA20",
        "POLY1305",
        "SHA",
        "SHA1",
        "SHA256",
        "SHA384",
        "MD5",
        "EXP",
        "EXPORT",
        "EXPORT1024",
        "EXP1024",
        "KRB5",
        "CCM8",
    ];
    let upper = name.to_ascii_uppercase();
    let words: Vec<&str> = upper.split(['-', '_']).filter(|w| !w.is_empty()).collect();
    if words.len() < 2 || !words.iter().all(|w| VOCAB.contains(w)) {
        return None;
    }
    let has = |w: &str| words.contains(&w);
    let bulk_word = [
        "AES",
        "AES128",
        "AES256",
        "DES",
        "CBC3",
        "3DES",
        "RC4",
        "RC2",
        "CAMELLIA",
        "CAMELLIA128",
        "CAMELLIA256",
        "ARIA",
        "ARIA128",
        "ARIA256",
        "SEED",
        "IDEA",
        "NULL",
        "CHACHA20",
    ]
    .iter()
    .any(|w| has(w));
    if !bulk_word {
        return None;
    }
    let tls13_style = words.first() == Some(&"TLS") && !has("WITH");
    let mut reasons = Vec::new();
    if has("NULL") {
        reasons.push("no encryption");
    }
    if has("EXP") || has("EXPORT") || has("EXPORT1024") || has("EXP1024") || has("40") {
        reasons.push("export-grade");
    }
    if has("RC4") || has("RC2") {
        reasons.push("RC4/RC2");
    }
    if has("DES") || has("CBC3") || has("3DES") {
        reasons.push("3DES/DES");
    }
    if has("ADH") || has("AECDH") || has("ANON") {
        reasons.push("anonymous");
    }
    if has("PSK") || has("SRP") || has("KRB5") {
        reasons.push("PSK/SRP/Kerberos");
    }
    if has("DSS") {
        reasons.push("DSS authentication");
    }
    let dhe = has("DHE") || has("EDH") || has("DH") || has("ADH");
    if dhe {
        reasons.push("finite-field DHE key exchange");
    }
    if has("ECDH") {
        reasons.push("static ECDH key exchange");
    }
    let ecdhe = has("ECDHE") || has("EECDH");
    if !tls13_style && !ecdhe && !dhe && !has("ECDH") && !has("ADH") && !has("AECDH") {
        reasons.push("RSA key exchange (no forward secrecy)");
    }
    if has("CAMELLIA")
        || has("CAMELLIA128")
        || has("CAMELLIA256")
        || has("ARIA")
        || has("ARIA128")
        || has("ARIA256")
        || has("SEED")
        || has("IDEA")
    {
        reasons.push("cipher rustls does not implement");
    }
    if has("CCM") || has("CCM8") {
        reasons.push("AES-CCM");
    } else if !has("GCM") && !has("POLY1305") && !has("NULL") && !has("RC4") {
        reasons.push("CBC mode");
    }
    if reasons.is_empty() {
        // A well-formed name for a suite rustls has would have matched;
        // this is some other combination.
        reasons.push("not implemented by rustls");
    }
    let nearest = if tls13_style {
        if has("CHACHA20") {
            "TLS_CHACHA20_POLY1305_SHA256"
        } else if has("256") || has("SHA384") {
            "TLS_AES_256_GCM_SHA384"
        } else {
            "TLS_AES_128_GCM_SHA256"
        }
    } else {
        let ecdsa = has("ECDSA");
        let big = has("AES256") || has("256") || has("CAMELLIA256") || has("ARIA256");
        match (ecdsa, has("CHACHA20"), big) {
            (true, true, _) => "ECDHE-ECDSA-CHACHA20-POLY1305",
            (true, false, true) => "ECDHE-ECDSA-AES256-GCM-SHA384",
            (true, false, false) => "ECDHE-ECDSA-AES128-GCM-SHA256",
            (false, true, _) => "ECDHE-RSA-CHACHA20-POLY1305",
            (false, false, true) => "ECDHE-RSA-AES256-GCM-SHA384",
            (false, false, false) => "ECDHE-RSA-AES128-GCM-SHA256",
        }
    };
    Some((reasons.join(", "), nearest, dhe))
}

/// The version a suite name or keyword concerns: TLS 1.3 names start with
/// `TLS_` (or `TLS13_`) and have no `_WITH_`.
fn names_tls13(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    (upper.starts_with("TLS_") || upper.starts_with("TLS13_")) && !upper.contains("_WITH_")
}

/// What a cipher specification resolves to.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    /// The suites to offer, in preference order.
    pub(crate) suites: Vec<SupportedCipherSuite>,
    /// DHE suites or keywords the list asked for (none are offered).
    pub(crate) dhe: Vec<String>,
}

/// Resolves `spec` (None: every suite of the provider) for `versions`.
pub(crate) fn resolve(
    field: &str,
    spec: Option<&str>,
    versions: &[TlsVersion],
    provider: &CryptoProvider,
    warnings: &mut Vec<Warning>,
    errors: &mut Vec<Problem>,
) -> Selection {
    let in_provider = |suite: CipherSuite| {
        provider
            .cipher_suites
            .iter()
            .find(|s| s.suite() == suite)
            .copied()
    };
    let version_of = |s: &SupportedCipherSuite| match s {
        SupportedCipherSuite::Tls13(_) => TlsVersion::Tls13,
        SupportedCipherSuite::Tls12(_) => TlsVersion::Tls12,
    };
    let Some(spec) = spec else {
        let suites = provider
            .cipher_suites
            .iter()
            .filter(|s| versions.contains(&version_of(s)))
            .copied()
            .collect();
        return Selection {
            suites,
            dhe: Vec::new(),
        };
    };

    let tokens: Vec<&str> = spec
        .split([':', ',', ' ', ';'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() {
        errors.push(Problem::new(
            field,
            "empty cipher list: nothing would be offered (an empty list never means all); \
             leave the setting out for rustls' defaults",
        ));
        return Selection::default();
    }

    let mut chosen: Vec<usize> = Vec::new();
    let mut banned: Vec<usize> = Vec::new();
    let mut unsupported: Vec<(String, String, &'static str)> = Vec::new();
    let mut ignored: Vec<String> = Vec::new();
    let mut dhe = Vec::new();
    let mut named_tls13 = false;

    for token in tokens {
        if token.starts_with('@') {
            ignored.push(token.to_owned());
            continue;
        }
        let (op, body) = match token.as_bytes()[0] {
            b'!' | b'-' | b'+' => (token.as_bytes()[0], &token[1..]),
            _ => (b' ', token),
        };
        if body.is_empty() {
            errors.push(Problem::new(field, format!("empty cipher token {token:?}")));
            continue;
        }
        if names_tls13(body) {
            named_tls13 = true;
        }
        // A set of known suites, or the reason the token selects none.
        let mut set: Option<Vec<usize>> = None;
        let mut none_reason: Option<(&'static str, Option<&'static str>, bool)> = None;
        let mut unknown = false;
        if let Some(i) = find_name(body) {
            set = Some(vec![i]);
        } else if let Some((reason, nearest, is_dhe)) = unsupported_suite(body) {
            if op == b' ' {
                unsupported.push((body.to_owned(), reason, nearest));
                if is_dhe {
                    dhe.push(body.to_owned());
                }
            }
            continue;
        } else {
            for part in body.split('+') {
                match keyword(part) {
                    Some(Keyword::Suites(s)) => {
                        set = Some(match set {
                            None => s,
                            Some(prev) => prev.into_iter().filter(|i| s.contains(i)).collect(),
                        });
                    }
                    Some(Keyword::Nothing { reason, dhe: d }) => {
                        none_reason = Some((reason, None, d));
                    }
                    None => unknown = true,
                }
            }
        }
        if unknown {
            errors.push(Problem::new(
                field,
                format!("unknown cipher or keyword {body:?}"),
            ));
            continue;
        }
        if let Some((reason, _, is_dhe)) = none_reason {
            if op == b' ' {
                unsupported.push((body.to_owned(), reason.to_owned(), ""));
                if is_dhe {
                    dhe.push(body.to_owned());
                }
            }
            continue;
        }
        let set = set.unwrap_or_default();
        match op {
            b'!' => {
                chosen.retain(|i| !set.contains(i));
                banned.extend(set);
            }
            b'-' => chosen.retain(|i| !set.contains(i)),
            b'+' => {
                let moved: Vec<usize> =
                    chosen.iter().copied().filter(|i| set.contains(i)).collect();
                chosen.retain(|i| !set.contains(i));
                chosen.extend(moved);
            }
            _ => {
                for i in set {
                    if !chosen.contains(&i) && !banned.contains(&i) {
                        chosen.push(i);
                    }
                }
            }
        }
    }

    let mut suites = Vec::new();
    let mut other_version = Vec::new();
    let mut not_in_provider = Vec::new();
    for i in chosen {
        let k = &KNOWN[i];
        if !versions.contains(&k.version) {
            other_version.push(k.openssl);
            continue;
        }
        match in_provider(k.suite) {
            Some(s) => suites.push(s),
            None => not_in_provider.push(k.openssl),
        }
    }
    // OpenSSL semantics: TLS 1.3 suites are set apart from the cipher list.
    let mut tls13_default = Vec::new();
    if versions.contains(&TlsVersion::Tls13) && !named_tls13 {
        for s in provider
            .cipher_suites
            .iter()
            .filter(|s| version_of(s) == TlsVersion::Tls13)
        {
            suites.push(*s);
            tls13_default.push(name_of(s));
        }
    }

    let effective: Vec<String> = suites.iter().map(name_of).collect();
    let effective = if effective.is_empty() {
        "none".to_owned()
    } else {
        effective.join(":")
    };
    if !unsupported.is_empty() {
        let listed: Vec<String> = unsupported
            .iter()
            .map(|(t, r, _)| format!("{t} ({r})"))
            .collect();
        warnings.push(Warning::new(
            field,
            format!(
                "not supported by rustls: {}; effective: {effective}",
                listed.join(", ")
            ),
        ));
    }
    if !ignored.is_empty() {
        warnings.push(Warning::new(
            field,
            format!("directives ignored: {}", ignored.join(", ")),
        ));
    }
    if !other_version.is_empty() {
        warnings.push(Warning::new(
            field,
            format!(
                "suites of a version not enabled are not offered: {}",
                other_version.join(", ")
            ),
        ));
    }
    if !not_in_provider.is_empty() {
        warnings.push(Warning::new(
            field,
            format!(
                "suites the crypto provider does not implement are not offered: {}",
                not_in_provider.join(", ")
            ),
        ));
    }
    if !tls13_default.is_empty() {
        warnings.push(Warning::new(
            field,
            format!(
                "the list names no TLS 1.3 suite (OpenSSL sets those apart); effective TLS 1.3 suites: {}",
                tls13_default.join(":")
            ),
        ));
    }
    for v in versions {
        if suites.iter().any(|s| version_of(s) == *v) {
            continue;
        }
        let mut nearest: Vec<&str> = unsupported
            .iter()
            .filter(|(t, _, n)| {
                !n.is_empty() && names_tls13(n) == (*v == TlsVersion::Tls13) && !t.is_empty()
            })
            .map(|(_, _, n)| *n)
            .collect();
        nearest.dedup();
        if nearest.is_empty() {
            nearest = KNOWN
                .iter()
                .filter(|k| k.version == *v)
                .map(|k| k.openssl)
                .collect();
        }
        let mut seen = Vec::new();
        nearest.retain(|n| {
            let fresh = !seen.contains(n);
            seen.push(*n);
            fresh
        });
        errors.push(Problem::new(
            field,
            format!(
                "no cipher suite left for {v}; nearest secure equivalents: {}",
                nearest.join(":")
            ),
        ));
    }
    Selection { suites, dhe }
}

/// How a suite is named in reports: its OpenSSL name.
pub(crate) fn name_of(s: &SupportedCipherSuite) -> String {
    openssl_name(s.suite()).map_or_else(|| format!("{:?}", s.suite()), str::to_owned)
}
