//! Bad input never panics: arbitrary version names, cipher strings and DH
//! files give errors or warnings.

use std::sync::Arc;

use postern_listener::{CertSpec, TlsSettings};
use proptest::prelude::*;

fn cert() -> CertSpec {
    static PKI: std::sync::OnceLock<postern_testkit::DevPki> = std::sync::OnceLock::new();
    let pki = PKI.get_or_init(|| postern_testkit::dev_pki(&["mx.test"]));
    CertSpec::pem(&["mx.test"], pki.cert_pem.clone(), pki.key_pem.clone())
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ECDHE-ECDSA-AES128-GCM-SHA256".to_owned()),
        Just("DHE-RSA-AES128-SHA".to_owned()),
        Just("TLS_AES_128_GCM_SHA256".to_owned()),
        Just("HIGH".to_owned()),
        Just("!aNULL".to_owned()),
        Just("+AES".to_owned()),
        Just("-".to_owned()),
        Just("@STRENGTH".to_owned()),
        "[!+@-]?[A-Za-z0-9_+.-]{0,12}",
        "\\PC{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_policy_builds_or_errs(
        versions in prop::collection::vec("(SSLv[23]|TLSv1(\\.[0-3])?|\\PC{0,6})", 0..4),
        tokens in prop::collection::vec(token(), 0..6),
        sep in "[:, ;]",
    ) {
        let settings = TlsSettings::new(vec![cert()])
            .with_versions(versions)
            .with_ciphers(tokens.join(&sep));
        let provider = Arc::new(postern_listener::default_provider());
        match settings.build(provider) {
            Ok((_, report)) => {
                prop_assert!(!report.suites.is_empty());
                prop_assert!(!report.versions.is_empty());
            }
            Err(e) => prop_assert!(!e.errors.is_empty()),
        }
    }

    #[test]
    fn any_dh_file_is_validated_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), pem in any::<bool>()) {
        let dir = std::env::temp_dir().join(format!("postern-nopanic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dh.pem");
        if pem {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
            std::fs::write(&path, format!("-----BEGIN DH PARAMETERS-----\n{b64}\n-----END DH PARAMETERS-----\n")).unwrap();
        } else {
            std::fs::write(&path, &bytes).unwrap();
        }
        prop_assert!(postern_listener::policy::validate_dh_params(&path).is_err());
    }
}
