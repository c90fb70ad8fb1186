//! DKIM signatures (`postern_queue::dkim`) checked by dkimpy, a verifier we
//! did not write: RSA and Ed25519 keys, messages whose canonical forms
//! differ from their text (folded and repeated header fields, runs of
//! whitespace, trailing blank lines, bare CR and LF, which are signed as the
//! relay sends them, as CRLF; an empty body), and a changed message
//! that must fail. dkimpy reads the key from the TXT record the signer
//! gives, handed to it in place of a DNS lookup.
//!
//! Skipped loudly without Python's `dkim` module (dkimpy, installed by
//! scripts/install-peers.sh); failed with POSTERN_REQUIRE_PEERS=1.

mod common;

use std::path::Path;

use postern_queue::dkim::DkimSigner;

const VERIFY: &str = r#"
import sys, dkim
record = open(sys.argv[2], "rb").read()
message = open(sys.argv[1], "rb").read()
def dns(name, timeout=5):
    assert name == sys.argv[3].encode() + b".", name
    return record
print("ok" if dkim.verify(message, dnsfunc=dns) else "bad")
"#;

/// dkimpy's verdict on `message`: `ok` or `bad`.
fn verify(python: &Path, dir: &Path, signer: &DkimSigner, message: &[u8]) -> String {
    let (mail, record) = (dir.join("mail.eml"), dir.join("record.txt"));
    std::fs::write(&mail, message).unwrap();
    std::fs::write(&record, signer.txt_record()).unwrap();
    let out = std::process::Command::new(python)
        .args(["-c", VERIFY])
        .arg(&mail)
        .arg(&record)
        .arg(signer.record_name())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const MESSAGES: &[&[u8]] = &[
    b"From: <tlsrpt-noreply@relay.test>\r\nTo: <tlsrpt@reports.test>\r\nSubject: Report Domain: a.test\r\n\r\nbody\r\n",
    // Folding, whitespace runs and a tab in the header; trailing spaces,
    // inner tabs and blank lines at the end of the body.
    b"From:   Report  Sender <tlsrpt-noreply@relay.test>\r\nSubject: a\r\n\tfolded\t  subject  \r\nTo: <x@reports.test>\r\nTo: <y@reports.test>\r\nX-Unsigned: 1\r\n\r\n  line \t with   runs  \r\n\r\nlast\t\r\n\r\n\r\n",
    // Bare CR and bare LF in the body are content, not line ends.
    b"From: <a@relay.test>\r\nSubject: bare\r\n\r\nr b\r\r\na \n b \r\nx\ry \r\n",
    // An empty body.
    b"From: <a@relay.test>\r\nDate: Tue, 1 Dec 2026 00:00:00 +0000\r\n\r\n",
];

fn check(key: &rcgen::KeyPair) {
    let Some(python) = postern_testkit::python_with("dkim") else {
        return;
    };
    let dir = common::tempdir("dkim");
    let provider = postern_relay::default_provider();
    let signer = DkimSigner::new(
        "relay.test",
        "tlsrpt",
        key.serialize_pem().as_bytes(),
        &provider,
    )
    .unwrap();
    for message in MESSAGES {
        let signed = signer.sign(message, 1_764_547_200).unwrap();
        assert_eq!(
            verify(&python, &dir, &signer, &signed),
            "ok",
            "{}",
            String::from_utf8_lossy(&signed)
        );
        // A changed body, or a second From added on the way, breaks it.
        let mut changed = signed.clone();
        changed.extend_from_slice(b"more\r\n");
        assert_eq!(verify(&python, &dir, &signer, &changed), "bad");
        let mut second_from = b"From: <evil@elsewhere.test>\r\n".to_vec();
        let at = signed.windows(2).position(|w| w == b"\nF").unwrap() + 1;
        second_from.splice(0..0, signed[..at].iter().copied());
        second_from.extend_from_slice(&signed[at..]);
        assert_eq!(verify(&python, &dir, &signer, &second_from), "bad");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rsa_signatures_verify_with_dkimpy() {
    check(&rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap());
}

#[test]
fn ed25519_signatures_verify_with_dkimpy() {
    check(&rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap());
}
