//! TLS policy: version sets are applied exactly, unsupported versions are
//! reported and never widened, an empty set fails before connecting.

// These tests need `Connector` (the driver) and `Anchors::WebPki`; the
// sans-IO core is tested without them
// (`cargo test -p postern-relay --no-default-features`).
#![cfg(all(feature = "tokio", feature = "webpki-roots"))]

use std::sync::Arc;

use postern_proto::TlsVersion;
use postern_relay::{Anchors, Connector, RelayError, TlsMode, TlsPolicy, client_config};
use rustls::ProtocolVersion;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Runs a handshake in memory between `client` and a server speaking
/// `server_versions`; the negotiated version or the error.
fn handshake(
    client: Arc<rustls::ClientConfig>,
    server_versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<ProtocolVersion, String> {
    let pki = postern_testkit::dev_pki(&["localhost"]);
    let cert = CertificateDer::from_pem_slice(pki.cert_pem.as_bytes()).unwrap();
    let key = PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(ring())
        .with_protocol_versions(server_versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let mut s = rustls::ServerConnection::new(Arc::new(server)).unwrap();
    let mut c =
        rustls::ClientConnection::new(client, ServerName::try_from("localhost").unwrap()).unwrap();
    for _ in 0..10 {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).unwrap();
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
        }
        if let Err(e) = s.process_new_packets() {
            // Deliver the server's alert to the client, as on the wire.
            let mut buf = Vec::new();
            let _ = s.write_tls(&mut buf);
            let mut rd = &buf[..];
            let _ = c.read_tls(&mut rd);
            let client_err = c.process_new_packets().err();
            return Err(format!("server: {e}; client: {client_err:?}"));
        }
        let mut buf = Vec::new();
        s.write_tls(&mut buf).unwrap();
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
        }
        c.process_new_packets()
            .map_err(|e| format!("client: {e}"))?;
        if !c.is_handshaking() {
            return Ok(c.protocol_version().unwrap());
        }
    }
    Err("handshake did not finish".into())
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(postern_relay::default_provider())
}

#[test]
fn config_offers_exactly_the_policy_versions() {
    let only12 = TlsPolicy::new(TlsMode::Required).with_versions([TlsVersion::Tls12]);
    let c = client_config(&only12, ring()).unwrap().unwrap();
    assert_eq!(
        handshake(c.clone(), rustls::ALL_VERSIONS),
        Ok(ProtocolVersion::TLSv1_2)
    );
    let err = handshake(c, &[&rustls::version::TLS13]).unwrap_err();
    assert!(
        err.contains("ProtocolVersion") || err.contains("protocol"),
        "{err}"
    );

    let only13 = TlsPolicy::new(TlsMode::Opportunistic).with_versions([TlsVersion::Tls13]);
    let c = client_config(&only13, ring()).unwrap().unwrap();
    assert_eq!(
        handshake(c.clone(), rustls::ALL_VERSIONS),
        Ok(ProtocolVersion::TLSv1_3)
    );
    assert!(handshake(c, &[&rustls::version::TLS12]).is_err());
}

#[test]
fn old_versions_are_reported_not_widened() {
    // The guide's "TLS 1.1 and TLS 1.2": 1.1 is reported, 1.2 alone offered,
    // 1.3 is *not* added.
    let policy = TlsPolicy::new(TlsMode::Verified {
        anchors: Anchors::WebPki,
    })
    .with_versions([TlsVersion::Tls11, TlsVersion::Tls12]);
    let report = policy.versions();
    assert_eq!(report.effective, [TlsVersion::Tls12]);
    assert_eq!(report.unsupported, [TlsVersion::Tls11]);
    assert_eq!(
        report.warnings(),
        ["TLSv1.1 is not supported by rustls and is ignored; effective versions: TLSv1.2"]
    );
    let connector = Connector::new(&policy, ring()).unwrap();
    // Verified against webpki roots: the dev certificate fails, so check
    // the versions with an unverified config built from the same policy.
    assert!(connector.rustls_config().is_some());
    let mut unverified = policy;
    unverified.mode = TlsMode::Required;
    let c = client_config(&unverified, ring()).unwrap().unwrap();
    assert_eq!(
        handshake(c.clone(), rustls::ALL_VERSIONS),
        Ok(ProtocolVersion::TLSv1_2)
    );
    assert!(handshake(c, &[&rustls::version::TLS13]).is_err());
}

#[test]
fn empty_effective_set_is_an_error_before_connecting() {
    for versions in [
        vec![TlsVersion::Tls10, TlsVersion::Tls11],
        vec![TlsVersion::Ssl3],
        vec![],
    ] {
        for mode in [
            TlsMode::Opportunistic,
            TlsMode::Required,
            TlsMode::Implicit { anchors: None },
        ] {
            let policy = TlsPolicy::new(mode).with_versions(versions.clone());
            let err = Connector::new(&policy, ring()).unwrap_err();
            assert_eq!(
                err,
                RelayError::NoUsableTlsVersion {
                    requested: versions.clone()
                }
            );
            assert!(
                err.is_transient(),
                "a configuration error must not bounce mail"
            );
        }
    }
    let err = Connector::new(
        &TlsPolicy::new(TlsMode::Required).with_versions([TlsVersion::Tls10, TlsVersion::Tls11]),
        ring(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no usable TLS version: the policy allows TLSv1.0, TLSv1.1, which rustls cannot speak (it speaks TLSv1.2 and TLSv1.3)"
    );
    // Without TLS, versions do not matter.
    let none = TlsPolicy::new(TlsMode::None).with_versions([]);
    assert!(
        Connector::new(&none, ring())
            .unwrap()
            .rustls_config()
            .is_none()
    );
}

#[test]
fn version_names_parse() {
    for (s, v) in [
        ("TLSv1.2", TlsVersion::Tls12),
        ("tls1.3", TlsVersion::Tls13),
        ("TLSv1", TlsVersion::Tls10),
        ("TLS1.1", TlsVersion::Tls11),
        ("SSLv3", TlsVersion::Ssl3),
    ] {
        assert_eq!(s.parse::<TlsVersion>().unwrap(), v);
        assert_eq!(v.name().parse::<TlsVersion>().unwrap(), v);
    }
    assert!("TLSv2".parse::<TlsVersion>().is_err());
    // Supported means rustls speaks it: TLS 1.2 yes, TLS 1.1 no.
    let report = TlsPolicy::new(TlsMode::Required)
        .with_versions([TlsVersion::Tls11, TlsVersion::Tls12])
        .versions();
    assert!(report.effective == [TlsVersion::Tls12] && report.unsupported == [TlsVersion::Tls11]);
}

#[test]
fn anchors_from_pem() {
    let pki = postern_testkit::dev_pki(&["localhost"]);
    let Anchors::Custom(certs) = Anchors::from_pem(pki.ca_pem.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(certs.len(), 1);
    assert!(Anchors::from_pem(b"not pem").is_err());
}
