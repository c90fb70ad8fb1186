//! The offline DANE matrix, rebuilt: the idea and the case list come from
//! Viktor Dukhovni's public-domain ssl_dane `test-offline.sh`
//! (github.com/vdukhovni/ssl_dane), which checks OpenSSL's DANE code
//! against chains made with `openssl x509`. Here rcgen makes the chains at
//! test time and the cases run against [`DaneVerifier::authenticate`],
//! plus full rustls handshakes for the `ServerCertVerifier` wiring.
//! PKIX-TA(0) and PKIX-EE(1) rows become "unusable" checks, since SMTP
//! ignores them (RFC 7672 §3.1.3).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
    PublicKeyData, date_time_ymd,
};
use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use sha2::{Digest as _, Sha256, Sha512};

use super::*;

const HOST: &str = "mail.example.com";

struct Leaf {
    cert: Certificate,
    key: KeyPair,
}

impl Leaf {
    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }
}

/// Root CA → CA 1 → CA 2 → mail.example.com, as in ssl_dane, plus the
/// odd ones: a self-signed CA used as its own server certificate, an
/// expired name-less key-only certificate, an expired server certificate
/// under CA 2 and a server certificate with another key.
struct Pki {
    root: CertifiedIssuer<'static, KeyPair>,
    ca1: CertifiedIssuer<'static, KeyPair>,
    ca2: CertifiedIssuer<'static, KeyPair>,
    ee: Leaf,
    expired_ee: Leaf,
    self_signed: Leaf,
    key_only: Leaf,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p
}

fn leaf_params(names: &[&str]) -> CertificateParams {
    let mut p =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("key only"),
    );
    p
}

fn expire(p: &mut CertificateParams) {
    p.not_before = date_time_ymd(2001, 1, 1);
    p.not_after = date_time_ymd(2002, 1, 1);
}

impl Pki {
    fn new() -> Self {
        let root = CertifiedIssuer::self_signed(ca_params("Root CA"), KeyPair::generate().unwrap())
            .unwrap();
        let ca1 =
            CertifiedIssuer::signed_by(ca_params("CA 1"), KeyPair::generate().unwrap(), &root)
                .unwrap();
        let ca2 = CertifiedIssuer::signed_by(ca_params("CA 2"), KeyPair::generate().unwrap(), &ca1)
            .unwrap();
        let signed = |mut p: CertificateParams, expired: bool| {
            if expired {
                expire(&mut p);
            }
            let key = KeyPair::generate().unwrap();
            Leaf {
                cert: p.signed_by(&key, &ca2).unwrap(),
                key,
            }
        };
        let ee = signed(leaf_params(&[HOST]), false);
        let expired_ee = signed(leaf_params(&[HOST]), true);
        let self_signed = {
            let mut p = leaf_params(&[HOST]);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let key = KeyPair::generate().unwrap();
            Leaf {
                cert: p.self_signed(&key).unwrap(),
                key,
            }
        };
        let key_only = {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            expire(&mut p);
            let key = KeyPair::generate().unwrap();
            Leaf {
                cert: p.self_signed(&key).unwrap(),
                key,
            }
        };
        Pki {
            root,
            ca1,
            ca2,
            ee,
            expired_ee,
            self_signed,
            key_only,
        }
    }

    /// The server's chain without the root ("chain1" in ssl_dane).
    fn chain1(&self) -> Vec<CertificateDer<'static>> {
        vec![self.ca2.der().clone(), self.ca1.der().clone()]
    }

    /// The chain with the root.
    fn chain(&self) -> Vec<CertificateDer<'static>> {
        let mut c = self.chain1();
        c.push(self.root.der().clone());
        c
    }
}

const SELECTORS: [TlsaSelector; 2] = [TlsaSelector::Cert, TlsaSelector::Spki];
const MATCHINGS: [TlsaMatching; 3] = [
    TlsaMatching::Full,
    TlsaMatching::Sha256,
    TlsaMatching::Sha512,
];

/// A TLSA record for a certificate, computed independently of the code
/// under test: the SPKI comes from rcgen's key, not from our DER walker.
fn tlsa(
    usage: TlsaUsage,
    s: TlsaSelector,
    m: TlsaMatching,
    cert: &CertificateDer<'_>,
    spki: &[u8],
) -> TlsaRecord {
    let content = match s {
        TlsaSelector::Cert => cert.as_ref(),
        _ => spki,
    };
    let data = match m {
        TlsaMatching::Full => content.to_vec(),
        TlsaMatching::Sha256 => Sha256::digest(content).to_vec(),
        _ => Sha512::digest(content).to_vec(),
    };
    TlsaRecord::new(usage, s, m, data).unwrap()
}

fn verifier(records: impl IntoIterator<Item = TlsaRecord>, names: &[&str]) -> DaneVerifier {
    let names = names
        .iter()
        .map(|n| DnsName::try_from(n.to_string()).unwrap());
    DaneVerifier::new(
        UsableTlsa::select(records).expect("a usable record"),
        names,
        &crate::default_provider(),
    )
}

fn check(
    records: impl IntoIterator<Item = TlsaRecord>,
    names: &[&str],
    leaf: &CertificateDer<'_>,
    chain: &[CertificateDer<'_>],
) -> Result<DaneMatch, DaneError> {
    verifier(records, names).authenticate(leaf, chain, UnixTime::now())
}

macro_rules! pass {
    ($what:expr, $result:expr) => {
        if let Err(e) = $result {
            panic!("{}: expected pass, got {e}", $what);
        }
    };
}

macro_rules! fail {
    ($what:expr, $result:expr) => {
        if let Ok(m) = $result {
            panic!("{}: expected failure, matched {m}", $what);
        }
    };
}

#[test]
fn dane_ta_matrix() {
    let pki = Pki::new();
    let ee = pki.ee.der();
    for s in SELECTORS {
        for m in MATCHINGS {
            let ta = |issuer: &CertifiedIssuer<'_, KeyPair>| {
                tlsa(
                    TlsaUsage::DaneTa,
                    s,
                    m,
                    issuer.der(),
                    &issuer.key().subject_public_key_info(),
                )
            };
            let case = |name: &str| format!("2 {} {} {name}", s.wire(), m.wire());
            for (label, t) in [("CA 1", &pki.ca1), ("CA 2", &pki.ca2)] {
                let found = check([ta(t)], &[HOST], &ee, &pki.chain1());
                pass!(case(&format!("valid TA {label}")), &found);
                let found = found.unwrap();
                assert_eq!(found.name().map(|n| n.as_ref()), Some(HOST));
                let depth = if label == "CA 1" { 2 } else { 1 };
                assert_eq!(found.depth(), Some(depth), "{}", case(label));
                pass!(
                    case(&format!("valid TA+root {label}")),
                    check([ta(t)], &[HOST], &ee, &pki.chain())
                );
                // The TLSA base domain and the MX host name both count.
                pass!(
                    case(&format!("second reference identifier {label}")),
                    check([ta(t)], &["example.net", HOST], &ee, &pki.chain1())
                );
                fail!(
                    case(&format!("wrong name {label}")),
                    check([ta(t)], &["whatever.example.net"], &ee, &pki.chain())
                );
            }
            pass!(
                case("in-chain root TA"),
                check([ta(&pki.root)], &[HOST], &ee, &pki.chain())
            );
            // A root left out of the chain anchors it only when the record
            // carries the whole certificate or key (ssl_dane "OOB root TA"
            // against "missing root TA").
            let oob = check([ta(&pki.root)], &[HOST], &ee, &pki.chain1());
            if m == TlsaMatching::Full {
                pass!(case("out-of-band root TA"), &oob);
                assert_eq!(oob.unwrap().depth(), None);
                pass!(
                    case("out-of-band CA 2 TA"),
                    check([ta(&pki.ca2)], &[HOST], &ee, &[])
                );
            } else {
                fail!(case("missing root TA"), oob);
            }
            let ee_as_ta = tlsa(
                TlsaUsage::DaneTa,
                s,
                m,
                &ee,
                &pki.ee.key.subject_public_key_info(),
            );
            fail!(
                case("non-TA"),
                check([ee_as_ta], &[HOST], &ee, &pki.chain1())
            );
            let ss = pki.self_signed.der();
            let ss_ta = tlsa(
                TlsaUsage::DaneTa,
                s,
                m,
                &ss,
                &pki.self_signed.key.subject_public_key_info(),
            );
            pass!(
                case("depth 0 TA"),
                check([ss_ta.clone()], &[HOST], &ss, &[])
            );
            fail!(
                case("depth 0 TA namecheck"),
                check([ss_ta], &["whatever"], &ss, &[])
            );
            // Expiry counts under DANE-TA (RFC 7672 §3.2.2 applies PKIX
            // path validation from the anchor down).
            let expired = pki.expired_ee.der();
            let found = check([ta(&pki.ca2)], &[HOST], &expired, &pki.chain1());
            match found {
                Err(DaneError::TrustAnchor { reason, .. }) => assert!(
                    matches!(
                        reason,
                        rustls::Error::InvalidCertificate(
                            rustls::CertificateError::Expired
                                | rustls::CertificateError::ExpiredContext { .. }
                        )
                    ),
                    "{}: {reason}",
                    case("expired")
                ),
                other => panic!("{}: {other:?}", case("expired")),
            }
        }
    }
}

#[test]
fn dane_ee_matrix() {
    let pki = Pki::new();
    let ee = pki.ee.der();
    let other_key = KeyPair::generate().unwrap();
    let other = leaf_params(&[HOST])
        .signed_by(&other_key, &pki.ca2)
        .unwrap();
    for s in SELECTORS {
        for m in MATCHINGS {
            let case = |name: &str| format!("3 {} {} {name}", s.wire(), m.wire());
            let ee_rec = |leaf: &Leaf| {
                tlsa(
                    TlsaUsage::DaneEe,
                    s,
                    m,
                    &leaf.der(),
                    &leaf.key.subject_public_key_info(),
                )
            };
            // DANE-EE ignores names (RFC 7672 §3.2.1).
            let found = check([ee_rec(&pki.ee)], &["whatever"], &ee, &pki.chain1());
            pass!(case("valid EE"), &found);
            let found = found.unwrap();
            assert_eq!((found.depth(), found.name()), (Some(0), None));
            assert_eq!(found.record(), &ee_rec(&pki.ee));
            pass!(
                case("valid EE, no chain"),
                check([ee_rec(&pki.ee)], &[HOST], &ee, &[])
            );
            // ... and expiry: an expired certificate, and one with no name.
            pass!(
                case("expired EE"),
                check(
                    [ee_rec(&pki.expired_ee)],
                    &[HOST],
                    &pki.expired_ee.der(),
                    &pki.chain1()
                )
            );
            pass!(
                case("key-only EE"),
                check(
                    [ee_rec(&pki.key_only)],
                    &["whatever"],
                    &pki.key_only.der(),
                    &[]
                )
            );
            let wrong = tlsa(
                TlsaUsage::DaneEe,
                s,
                m,
                pki.ca2.der(),
                &pki.ca2.key().subject_public_key_info(),
            );
            fail!(
                case("wrong EE"),
                check([wrong], &[HOST], &ee, &pki.chain1())
            );
            // The same names and issuer, another key.
            let other_rec = tlsa(
                TlsaUsage::DaneEe,
                s,
                m,
                other.der(),
                &other_key.subject_public_key_info(),
            );
            fail!(
                case("wrong key"),
                check([other_rec.clone()], &[HOST], &ee, &pki.chain1())
            );
            // A wrong EE record does not spoil a right TA record.
            let ta = tlsa(
                TlsaUsage::DaneTa,
                s,
                m,
                pki.ca2.der(),
                &pki.ca2.key().subject_public_key_info(),
            );
            let found = check([other_rec, ta.clone()], &[HOST], &ee, &pki.chain1()).unwrap();
            assert_eq!(found.record(), &ta, "{}", case("EE + TA"));
        }
    }
}

#[test]
fn pkix_usages_and_unknown_parameters_are_unusable() {
    let pki = Pki::new();
    let spki = pki.ee.key.subject_public_key_info();
    for usage in [
        TlsaUsage::PkixTa,
        TlsaUsage::PkixEe,
        TlsaUsage::Unassigned(4),
    ] {
        for s in SELECTORS {
            for m in MATCHINGS {
                let r = tlsa(usage, s, m, &pki.ee.der(), &spki);
                assert!(r.matches(&pki.ee.der()), "{r} matches, yet");
                assert_eq!(UsableTlsa::select([r.clone()]), None, "{r} is unusable");
            }
        }
    }
    let digest = Sha256::digest(&spki).to_vec();
    let odd = [
        TlsaRecord::new(
            TlsaUsage::DaneEe,
            TlsaSelector::Unassigned(2),
            TlsaMatching::Sha256,
            digest.clone(),
        )
        .unwrap(),
        TlsaRecord::new(
            TlsaUsage::DaneEe,
            TlsaSelector::Spki,
            TlsaMatching::Unassigned(3),
            digest,
        )
        .unwrap(),
    ];
    assert_eq!(UsableTlsa::select(odd.clone()), None);
    // Unusable records next to a usable one are dropped, not matched.
    let ee = tlsa(
        TlsaUsage::DaneEe,
        TlsaSelector::Spki,
        TlsaMatching::Sha256,
        &pki.ee.der(),
        &spki,
    );
    let set = UsableTlsa::select(odd.into_iter().chain([ee.clone()])).unwrap();
    assert_eq!(set.records(), [ee]);
}

#[test]
fn no_match_is_reported_as_such() {
    let pki = Pki::new();
    let r = tlsa(
        TlsaUsage::DaneTa,
        TlsaSelector::Spki,
        TlsaMatching::Sha256,
        pki.root.der(),
        &pki.root.key().subject_public_key_info(),
    );
    let e = check([r], &[HOST], &pki.ee.der(), &pki.chain1()).unwrap_err();
    assert!(matches!(e, DaneError::NoMatch), "{e}");
}

/// Runs a rustls handshake in memory between a server presenting `chain`
/// and a client using `verifier`.
fn handshake(
    verifier: Arc<DaneVerifier>,
    chain: Vec<CertificateDer<'static>>,
    key: &KeyPair,
) -> Result<(), rustls::Error> {
    use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
    let provider = Arc::new(crate::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    client.resumption = rustls::client::Resumption::disabled();
    let mut c = ClientConnection::new(Arc::new(client), "mx.example.com".try_into().unwrap())?;
    let mut s = ServerConnection::new(Arc::new(server))?;
    while c.is_handshaking() || s.is_handshaking() {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).unwrap();
        s.read_tls(&mut &buf[..]).unwrap();
        if let Err(e) = s.process_new_packets() {
            // Deliver the server's alert, then report the client's view.
            let mut alert = Vec::new();
            s.write_tls(&mut alert).unwrap();
            c.read_tls(&mut &alert[..]).unwrap();
            return c.process_new_packets().map(|_| ()).and(Err(e));
        }
        let mut buf = Vec::new();
        s.write_tls(&mut buf).unwrap();
        c.read_tls(&mut &buf[..]).unwrap();
        c.process_new_packets()?;
    }
    Ok(())
}

#[test]
fn rustls_handshake_uses_the_verifier() {
    let pki = Pki::new();
    let mut chain = vec![pki.ee.der()];
    chain.extend(pki.chain1());
    let spki = pki.ee.key.subject_public_key_info();
    let ee = tlsa(
        TlsaUsage::DaneEe,
        TlsaSelector::Spki,
        TlsaMatching::Sha256,
        &pki.ee.der(),
        &spki,
    );
    let v = Arc::new(verifier([ee.clone()], &[HOST]));
    handshake(v.clone(), chain.clone(), &pki.ee.key).expect("DANE-EE handshake");
    assert_eq!(v.matched().map(|m| m.record().clone()), Some(ee));

    let ta = tlsa(
        TlsaUsage::DaneTa,
        TlsaSelector::Cert,
        TlsaMatching::Sha256,
        pki.ca1.der(),
        &[],
    );
    let v = Arc::new(verifier([ta], &["mx.example.com", HOST]));
    handshake(v.clone(), chain.clone(), &pki.ee.key).expect("DANE-TA handshake");
    assert_eq!(
        v.matched().unwrap().to_string(),
        format!("DANE-TA(2) Cert(0) SHA2-256(1) matched depth 2 for {HOST}")
    );

    let wrong = tlsa(
        TlsaUsage::DaneEe,
        TlsaSelector::Spki,
        TlsaMatching::Sha256,
        pki.root.der(),
        &pki.root.key().subject_public_key_info(),
    );
    let v = Arc::new(verifier([wrong], &[HOST]));
    let e = handshake(v.clone(), chain, &pki.ee.key).unwrap_err();
    assert!(
        matches!(DaneError::from_rustls(&e), Some(DaneError::NoMatch)),
        "{e}"
    );
    assert_eq!(v.matched(), None);
}
