//! Every policy case of issue 4: versions, cipher mapping, DH files,
//! certificates, client auth, never widening.

mod common;

use std::path::PathBuf;

use base64::Engine as _;
use common::{Pki, provider};
use postern_listener::{
    CertSpec, ClientAuth, PemSource, PolicyError, TlsPolicyReport, TlsSettings,
};
use postern_session::TlsVersion;

fn ecdsa_cert() -> CertSpec {
    let pki = postern_testkit::dev_pki(&["mx.test"]);
    CertSpec::pem(&["mx.test"], pki.cert_pem, pki.key_pem)
}

fn settings(versions: &[&str], ciphers: Option<&str>) -> TlsSettings {
    let mut s = TlsSettings::new(vec![ecdsa_cert()]).with_versions(versions.iter().copied());
    s.ciphers = ciphers.map(str::to_owned);
    s
}

fn ok(s: &TlsSettings) -> TlsPolicyReport {
    match s.build(provider()) {
        Ok((_, report)) => report,
        Err(e) => panic!("policy should build:\n{e}"),
    }
}

fn err(s: &TlsSettings) -> PolicyError {
    match s.build(provider()) {
        Ok((_, report)) => panic!("policy should fail, built:\n{report}"),
        Err(e) => e,
    }
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn default_policy_is_clean() {
    let report = ok(&TlsSettings::new(vec![ecdsa_cert()]));
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.versions, [TlsVersion::Tls13, TlsVersion::Tls12]);
    assert_eq!(report.suites.len(), 9, "{:?}", report.suites);
}

#[test]
fn old_versions_beside_supported_warn_with_effective_value() {
    let report = ok(&settings(
        &["SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2"],
        None,
    ));
    assert_eq!(report.versions, [TlsVersion::Tls12]);
    let w = &report.warnings[0];
    assert_eq!(w.field, "tls.versions");
    assert_eq!(
        w.message,
        "SSLv2, SSLv3, TLSv1.0, TLSv1.1 not supported (RFC 8996); effective: TLSv1.2"
    );
    assert!(report.to_string().contains("effective: TLSv1.2"));
    // Only TLS 1.2 suites are offered.
    assert!(
        report.suites.iter().all(|s| s.starts_with("ECDHE-")),
        "{:?}",
        report.suites
    );
}

#[test]
fn only_unsupported_versions_is_an_error() {
    let e = err(&settings(&["SSLv3", "TLSv1", "TLSv1.1"], None));
    assert!(e.concerns("tls.versions"), "{e}");
    assert!(e.to_string().contains("no version left"), "{e}");
}

#[test]
fn empty_and_unknown_versions_are_errors() {
    assert!(err(&settings(&[], None)).concerns("tls.versions"));
    let e = err(&settings(&["TLSv1.2", "TLSv9"], None));
    assert!(e.to_string().contains("\"TLSv9\""), "{e}");
}

#[test]
fn openssl_names_map_onto_rustls_in_order() {
    let report = ok(&settings(
        &["TLSv1.2"],
        Some("ECDHE-ECDSA-AES256-GCM-SHA384:TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    ));
    assert_eq!(
        report.suites,
        [
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-CHACHA20-POLY1305"
        ]
    );
    assert!(report.is_clean(), "{report}");
}

#[test]
fn unsupported_suites_are_listed_with_reasons_and_effective_set() {
    let report = ok(&settings(
        &["TLSv1.2"],
        Some(
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA:AES256-SHA:DES-CBC3-SHA:RC4-SHA:ECDHE-ECDSA-AES128-SHA256",
        ),
    ));
    assert_eq!(report.suites, ["ECDHE-ECDSA-AES128-GCM-SHA256"]);
    let text = report.to_string();
    for expected in [
        "ECDHE-RSA-AES128-SHA (CBC mode)",
        "AES256-SHA (RSA key exchange (no forward secrecy), CBC mode)",
        "DES-CBC3-SHA (3DES/DES, RSA key exchange (no forward secrecy), CBC mode)",
        "RC4-SHA (RC4/RC2, RSA key exchange (no forward secrecy))",
        "effective: ECDHE-ECDSA-AES128-GCM-SHA256",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn nothing_left_for_a_version_is_an_error_naming_equivalents() {
    let mut s = settings(
        &["TLSv1.2"],
        Some("DHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384"),
    );
    s.dh_params = Some(data("ffdhe2048.pem"));
    let e = err(&s);
    let text = e.to_string();
    assert!(e.concerns("tls.ciphers"), "{text}");
    assert!(
        text.contains("no cipher suite left for TLSv1.2; nearest secure equivalents: ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"),
        "{text}"
    );
}

#[test]
fn empty_cipher_list_never_means_all() {
    for spec in ["", " : ", "!aNULL"] {
        let e = err(&settings(&["TLSv1.2"], Some(spec)));
        assert!(e.concerns("tls.ciphers"), "{spec:?}: {e}");
    }
}

#[test]
fn unknown_cipher_token_is_an_error() {
    let e = err(&settings(
        &["TLSv1.2"],
        Some("ECDHE-ECDSA-AES128-GCM-SHA256:BOGUS-CIPHER"),
    ));
    assert!(
        e.to_string()
            .contains("unknown cipher or keyword \"BOGUS-CIPHER\""),
        "{e}"
    );
}

#[test]
fn keywords_and_exclusions_follow_openssl() {
    let report = ok(&settings(
        &["TLSv1.2"],
        Some("HIGH:!aNULL:!CHACHA20:!aRSA:@STRENGTH"),
    ));
    assert_eq!(
        report.suites,
        [
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-AES128-GCM-SHA256"
        ]
    );
    assert!(report.to_string().contains("directives ignored: @STRENGTH"));
}

#[test]
fn tls13_suites_default_when_list_names_none_and_report_says_so() {
    let report = ok(&settings(
        &["TLSv1.2", "TLSv1.3"],
        Some("ECDHE-ECDSA-AES128-GCM-SHA256"),
    ));
    assert_eq!(report.suites.len(), 4, "{:?}", report.suites);
    assert!(
        report
            .to_string()
            .contains("the list names no TLS 1.3 suite (OpenSSL sets those apart); effective TLS 1.3 suites: TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"),
        "{report}"
    );
    // Naming one TLS 1.3 suite restricts TLS 1.3 to it.
    let report = ok(&settings(
        &["TLSv1.3"],
        Some("TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256"),
    ));
    assert_eq!(report.suites, ["TLS_AES_128_GCM_SHA256"]);
    assert!(report.to_string().contains("version not enabled"));
    // TLS 1.3 named but none usable (CCM): error, not the defaults.
    let e = err(&settings(&["TLSv1.3"], Some("TLS_AES_128_CCM_SHA256")));
    assert!(
        e.to_string().contains(
            "no cipher suite left for TLSv1.3; nearest secure equivalents: TLS_AES_128_GCM_SHA256"
        ),
        "{e}"
    );
}

#[test]
fn dhe_without_dh_file_is_an_error() {
    let e = err(&settings(
        &["TLSv1.2"],
        Some("ECDHE-ECDSA-AES128-GCM-SHA256:DHE-RSA-AES128-SHA256:DHE-DSS-AES128-SHA256"),
    ));
    assert!(e.concerns("tls.dh_params"), "{e}");
    assert!(
        e.to_string()
            .contains("DHE-RSA-AES128-SHA256, DHE-DSS-AES128-SHA256"),
        "{e}"
    );
}

#[test]
fn guide_dhe_list_with_dh_file_builds_and_reports_unused() {
    // The guide's DHE list next to ECDHE suites.
    let mut s = settings(
        &["SSLv3", "TLSv1.2", "TLSv1.3"],
        Some(
            "ECDHE-ECDSA-AES128-GCM-SHA256:DHE-RSA-AES128-SHA256:DHE-RSA-AES128-SHA:DHE-DSS-AES128-SHA256:DHE-RSA-AES256-SHA256:DHE-DSS-AES256-SHA:DHE-RSA-AES256-SHA",
        ),
    );
    s.dh_params = Some(data("ffdhe2048.pem"));
    let report = ok(&s);
    let text = report.to_string();
    assert!(
        text.contains("valid 2048-bit group, unused: rustls offers no finite-field DHE"),
        "{text}"
    );
    assert!(
        text.contains(
            "DHE-DSS-AES256-SHA (DSS authentication, finite-field DHE key exchange, CBC mode)"
        ),
        "{text}"
    );
    assert!(
        text.contains("SSLv3 not supported (RFC 8996); effective: TLSv1.3, TLSv1.2"),
        "{text}"
    );
}

#[test]
fn small_or_broken_dh_files_are_errors() {
    let mut s = settings(&["TLSv1.2"], None);
    s.dh_params = Some(data("dh1024.pem"));
    let e = err(&s);
    assert!(
        e.to_string().contains("prime has 1024 bits; at least 2048"),
        "{e}"
    );

    s.dh_params = Some(PathBuf::from("/nonexistent/dh.pem"));
    assert!(
        err(&s)
            .to_string()
            .contains("cannot read /nonexistent/dh.pem")
    );

    // A 2048-bit odd number that is not prime.
    let pem = std::fs::read_to_string(data("ffdhe2048.pem")).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    der[100] ^= 0x10;
    let bad = base64::engine::general_purpose::STANDARD.encode(der);
    let dir = std::env::temp_dir().join(format!("postern-dh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notprime.pem");
    std::fs::write(
        &path,
        format!("-----BEGIN DH PARAMETERS-----\n{bad}\n-----END DH PARAMETERS-----\n"),
    )
    .unwrap();
    s.dh_params = Some(path);
    assert!(err(&s).to_string().contains("not prime"), "{}", err(&s));

    // Not DH at all.
    let pki = Pki::new("dh", &["x.test"]);
    s.dh_params = Some(pki.cert());
    assert!(
        err(&s)
            .to_string()
            .contains("expected a \"DH PARAMETERS\" PEM block")
    );
}

#[test]
fn certificate_errors_name_the_field_and_entry() {
    let mut s = settings(&["TLSv1.2"], None);
    s.certificates = vec![];
    assert!(err(&s).concerns("tls.certificates"));

    let a = postern_testkit::dev_pki(&["a.test"]);
    let b = postern_testkit::dev_pki(&["b.test"]);
    s.certificates = vec![
        CertSpec::pem(&["a.test"], a.cert_pem.clone(), a.key_pem.clone()),
        CertSpec::pem(&["b.test"], a.cert_pem, b.key_pem),
    ];
    let e = err(&s).to_string();
    assert!(e.contains("tls.certificates[1] (b.test)"), "{e}");
    assert!(e.contains("does not fit"), "{e}");

    s.certificates = vec![CertSpec::files(
        &["c.test"],
        "/nonexistent/c.pem",
        "/nonexistent/k.pem",
    )];
    assert!(
        err(&s)
            .to_string()
            .contains("cannot read /nonexistent/c.pem")
    );
}

#[test]
fn rsa_suites_without_rsa_key_are_reported() {
    let report = ok(&settings(
        &["TLSv1.2"],
        Some("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256"),
    ));
    assert!(
        report
            .to_string()
            .contains("never negotiated: ECDHE-RSA-AES128-GCM-SHA256"),
        "{report}"
    );
}

#[test]
fn client_auth_roots_must_load() {
    let mut s = settings(&["TLSv1.2"], None);
    s.client_auth = ClientAuth::Required {
        roots: PemSource::Inline("not pem".into()),
    };
    assert!(err(&s).concerns("tls.client_auth"));
    let pki = postern_testkit::dev_pki(&["client.test"]);
    s.client_auth = ClientAuth::Optional {
        roots: PemSource::Inline(pki.ca_pem),
    };
    ok(&s);
}

#[test]
fn errors_are_all_reported_at_once() {
    let mut s = settings(&["SSLv3"], Some("DHE-RSA-AES128-SHA"));
    s.certificates.clear();
    let e = err(&s);
    for field in ["tls.versions", "tls.dh_params", "tls.certificates"] {
        assert!(e.concerns(field), "{field} missing in:\n{e}");
    }
}

fn groups(names: &[&str]) -> TlsSettings {
    TlsSettings::new(vec![ecdsa_cert()]).with_groups(names.iter().copied())
}

/// A provider without the post-quantum hybrid, as ring is.
fn classical_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    let full = provider();
    std::sync::Arc::new(rustls::crypto::CryptoProvider {
        kx_groups: full
            .kx_groups
            .iter()
            .copied()
            .filter(|g| g.name() != rustls::NamedGroup::X25519MLKEM768)
            .collect(),
        ..(*full).clone()
    })
}

#[test]
fn default_groups_offer_the_hybrid_first() {
    let report = ok(&TlsSettings::new(vec![ecdsa_cert()]));
    assert_eq!(
        report.groups,
        ["X25519MLKEM768", "X25519", "P-256", "P-384"]
    );
    assert!(
        report
            .to_string()
            .ends_with("effective groups: X25519MLKEM768, X25519, P-256, P-384"),
        "{report}"
    );
}

#[test]
fn group_names_follow_openssl_in_the_operators_order() {
    let report = ok(&groups(&[
        "prime256v1",
        "secp384r1:x25519",
        "X25519_MLKEM768",
        "P-256",
    ]));
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        report.groups,
        ["P-256", "P-384", "X25519", "X25519MLKEM768"]
    );
    let report = ok(&groups(&["secp256r1"]));
    assert_eq!(report.groups, ["P-256"]);
}

#[test]
fn unsupported_groups_warn_with_the_effective_set() {
    let report = ok(&groups(&[
        "X448",
        "X25519MLKEM768",
        "P-521",
        "X25519",
        "ffdhe2048",
    ]));
    assert_eq!(report.groups, ["X25519MLKEM768", "X25519"]);
    let w: Vec<&str> = report
        .warnings
        .iter()
        .filter(|w| w.field == "tls.groups")
        .map(|w| w.message.as_str())
        .collect();
    assert_eq!(w.len(), 1, "{report}");
    assert!(
        w[0].starts_with("X448, P-521, ffdhe2048 not offered by this crypto provider")
            && w[0].ends_with("effective: X25519MLKEM768:X25519"),
        "{}",
        w[0]
    );
}

#[test]
fn the_hybrid_without_provider_support_is_a_warning_not_a_silent_drop() {
    let s = groups(&["X25519MLKEM768", "X25519"]);
    let (_, report) = s.build(classical_provider()).expect("builds");
    assert_eq!(report.groups, ["X25519"]);
    assert!(
        report.warnings.iter().any(|w| w.field == "tls.groups"
            && w.message.contains("X25519MLKEM768 not offered")
            && w.message.ends_with("effective: X25519")),
        "{report}"
    );
    // The provider's default without the hybrid is clean: nothing asked.
    let (_, report) = TlsSettings::new(vec![ecdsa_cert()])
        .build(classical_provider())
        .expect("builds");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.groups, ["X25519", "P-256", "P-384"]);
}

#[test]
fn empty_unknown_or_all_unsupported_groups_are_errors() {
    for list in [&[][..], &[""], &[" : "]] {
        let e = err(&groups(list));
        assert!(e.concerns("tls.groups"), "{list:?}: {e}");
        assert!(
            e.to_string().contains("no key-exchange group listed"),
            "{e}"
        );
    }
    let e = err(&groups(&["X25519", "X25519Kyber768Draft00"]));
    assert!(
        e.to_string()
            .contains("unknown key-exchange group \"X25519Kyber768Draft00\""),
        "{e}"
    );
    let e = err(&groups(&["X448", "P-521"]));
    assert!(e.to_string().contains("no group left"), "{e}");
    let e = groups(&["X25519MLKEM768"])
        .build(classical_provider())
        .expect_err("nothing left");
    assert!(e.concerns("tls.groups"), "{e}");
}

#[test]
fn hybrid_only_with_tls12_warns_that_tls12_clients_have_no_group() {
    let report = ok(&groups(&["X25519MLKEM768"]));
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.field == "tls.groups" && w.message.contains("exist only in TLS 1.3")),
        "{report}"
    );
    let s = groups(&["X25519MLKEM768"]).with_versions(["TLSv1.3"]);
    assert!(ok(&s).is_clean());
}
