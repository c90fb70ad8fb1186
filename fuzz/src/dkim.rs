//! DKIM signing (`postern_queue::dkim`) of arbitrary messages: the signer
//! reads header fields and body lines of whatever it is given.

use std::sync::OnceLock;

use postern_queue::dkim::DkimSigner;

/// RFC 8032 §7.1 TEST 1's secret key, as PKCS#8.
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n";

fn signer() -> &'static DkimSigner {
    static SIGNER: OnceLock<DkimSigner> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let provider = postern_relay::default_provider();
        DkimSigner::new("example.org", "fuzz", KEY.as_bytes(), &provider).expect("the test key")
    })
}

/// Signs arbitrary bytes: never panics; signs exactly the inputs that have
/// a header block (an empty line, once bare CR and LF are CRLF); the signed
/// message is the input as the relay sends it behind one `DKIM-Signature`
/// field of ASCII lines ended by CRLF, continued with
/// WSP; Ed25519 makes it deterministic, and whitespace at body line ends
/// (which relaxed canonicalisation ignores) leaves the body hash alone.
pub fn dkim(data: &[u8]) {
    let signer = signer();
    // The relay's normalisation: each bare CR or LF becomes CRLF.
    let mut sent = Vec::with_capacity(data.len());
    for (i, &b) in data.iter().enumerate() {
        let bare = (b == b'\r' && data.get(i + 1) != Some(&b'\n'))
            || (b == b'\n' && (i == 0 || data[i - 1] != b'\r'));
        if bare {
            sent.extend_from_slice(b"\r\n");
        } else {
            sent.push(b);
        }
    }
    let has_header = sent.windows(4).any(|w| w == b"\r\n\r\n");
    let Ok(signed) = signer.sign(data, 1_764_547_200) else {
        assert!(!has_header, "a message with a header block was refused");
        return;
    };
    assert!(has_header, "signed without a header block");
    assert!(
        signed.ends_with(&sent),
        "the message is not what the relay sends"
    );
    let field = &signed[..signed.len() - sent.len()];
    assert!(field.starts_with(b"DKIM-Signature: v=1; a=ed25519-sha256;"));
    assert!(field.is_ascii() && field.ends_with(b"\r\n"));
    for (i, line) in field[..field.len() - 2].split(|&b| b == b'\n').enumerate() {
        assert!(
            !line[..line.len().saturating_sub(1)].contains(&b'\r'),
            "bare CR"
        );
        if i > 0 {
            assert!(matches!(line.first(), Some(b' ' | b'\t')), "unfolded line");
        }
    }
    assert_eq!(
        signer.sign(data, 1_764_547_200).ok().as_deref(),
        Some(&signed[..])
    );
    let mut padded = data.to_vec();
    padded.extend_from_slice(b" \t\r\n\r\n");
    let again = signer
        .sign(&padded, 1_764_547_200)
        .expect("still has a header block");
    let bh = |s: &[u8]| {
        let t = String::from_utf8_lossy(s).into_owned();
        t.split("bh=").nth(1).map(|r| r[..44].to_owned())
    };
    // Padding an unterminated last line ends it: that changes the body.
    if sent.ends_with(b"\r\n") {
        assert_eq!(
            bh(&again),
            bh(&signed),
            "trailing whitespace changed the body hash"
        );
    }
}
