//! DKIM signing (RFC 6376) of the mail this crate writes itself. TLS-RPT
//! receivers ignore a mailed report without a valid DKIM signature by the
//! reporting domain (RFC 8460 §3), so [`tlsrpt::ReportSender`] signs its
//! reports with a [`DkimSigner`] when it has one.
//!
//! Written here, not taken from a crate: mail-auth (the field's DKIM
//! library) needs Rust 1.89 through `encodify`, past this workspace's MSRV
//! of 1.88; viadkim is GPL-3.0; cfdkim pulls trust-dns 0.x. Signing alone
//! is small: the relaxed canonicalisations (§3.4.2, §3.4.4), SHA-256, and
//! a signature by the crypto provider's own key type (rustls'
//! `SigningKey`), `rsa-sha256` (RFC 8301) or `ed25519-sha256` (RFC 8463).
//!
//! [`tlsrpt::ReportSender`]: crate::tlsrpt::ReportSender
//!
//! ```
//! use postern_queue::dkim::DkimSigner;
//!
//! let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
//! let provider = postern_relay::default_provider();
//! let signer =
//!     DkimSigner::new("example.org", "tlsrpt", key.serialize_pem().as_bytes(), &provider)
//!         .unwrap();
//! let mail = b"From: <a@example.org>\r\nSubject: hi\r\n\r\nbody\r\n";
//! let signed = signer.sign(mail, 1_700_000_000).unwrap();
//! assert!(signed.starts_with(b"DKIM-Signature: v=1; a=ed25519-sha256;"));
//! assert!(signer.txt_record().starts_with("v=DKIM1; k=ed25519; p="));
//! ```

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::sign::SigningKey;
use rustls::{SignatureAlgorithm, SignatureScheme};
use sha2::{Digest as _, Sha256};

/// The header fields signed when present (RFC 6376 §5.4.1's advice, and
/// the two of RFC 8460 §5.3). `From` is listed once more than it occurs
/// (§5.4.2), so that a second `From` added on the way breaks the
/// signature.
const SIGNED: &[&str] = &[
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "tls-report-domain",
    "tls-report-submitter",
];

/// Why a key or a message cannot be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DkimError {
    /// The key file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key is no PEM private key the provider can load.
    #[error("not a private key in PEM the crypto provider can use: {0}")]
    Key(String),
    /// The key is of a type DKIM does not sign with.
    #[error("DKIM signs with RSA (RFC 8301) or Ed25519 (RFC 8463) keys, not {0:?}")]
    Algorithm(SignatureAlgorithm),
    /// The domain or selector is not a DNS name.
    #[error("{what} {value:?} is not a domain name")]
    Name {
        /// `domain` or `selector`.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// The message has no header block ending in an empty line.
    #[error("the message has no header block")]
    NoHeader,
    /// The provider failed to sign.
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Signs messages for one domain and selector with one key.
#[derive(Clone)]
pub struct DkimSigner {
    domain: String,
    selector: String,
    key: Arc<dyn SigningKey>,
    ed25519: bool,
}

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSigner")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl DkimSigner {
    /// A signer for `d=domain`, `s=selector`, with the PEM private key
    /// (PKCS#8, or PKCS#1 for RSA) loaded by `provider`.
    pub fn new(
        domain: &str,
        selector: &str,
        key_pem: &[u8],
        provider: &CryptoProvider,
    ) -> Result<Self, DkimError> {
        for (what, value) in [("domain", domain), ("selector", selector)] {
            let ok = !value.is_empty()
                && value.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            if !ok {
                return Err(DkimError::Name {
                    what,
                    value: value.to_owned(),
                });
            }
        }
        let der =
            PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| DkimError::Key(e.to_string()))?;
        let key = provider
            .key_provider
            .load_private_key(der)
            .map_err(|e| DkimError::Key(e.to_string()))?;
        let ed25519 = match key.algorithm() {
            SignatureAlgorithm::RSA => false,
            SignatureAlgorithm::ED25519 => true,
            other => return Err(DkimError::Algorithm(other)),
        };
        Ok(Self {
            domain: domain.to_ascii_lowercase(),
            selector: selector.to_ascii_lowercase(),
            key,
            ed25519,
        })
    }

    /// [`DkimSigner::new`] with the key read from `path`.
    pub fn from_file(
        domain: &str,
        selector: &str,
        path: &Path,
        provider: &CryptoProvider,
    ) -> Result<Self, DkimError> {
        let pem = std::fs::read(path).map_err(|source| DkimError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::new(domain, selector, &pem, provider)
    }

    /// `rsa-sha256` or `ed25519-sha256`.
    pub fn algorithm(&self) -> &'static str {
        if self.ed25519 {
            "ed25519-sha256"
        } else {
            "rsa-sha256"
        }
    }

    /// The signing domain (`d=`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The name the public key is published at:
    /// `<selector>._domainkey.<domain>` (§3.6.2.1).
    pub fn record_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// The TXT record to publish at [`record_name`](Self::record_name)
    /// (§3.6.1): the key's SubjectPublicKeyInfo for RSA, the bare 32-octet
    /// key for Ed25519 (RFC 8463 §4.2). Empty when the provider does not
    /// give the public key.
    pub fn txt_record(&self) -> String {
        let Some(spki) = self.key.public_key() else {
            return String::new();
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        if self.ed25519 {
            // An Ed25519 SubjectPublicKeyInfo is 12 octets of algorithm
            // identifier and bit-string header, then the key (RFC 8410 §4).
            let raw = &spki.as_ref()[spki.as_ref().len().saturating_sub(32)..];
            format!("v=DKIM1; k=ed25519; p={}", b64.encode(raw))
        } else {
            format!("v=DKIM1; k=rsa; p={}", b64.encode(spki.as_ref()))
        }
    }

    /// `message` (header block, empty line, body) with a `DKIM-Signature`
    /// header field in front, signed at `now` (Unix seconds) with
    /// relaxed/relaxed canonicalisation.
    ///
    /// Each bare CR and bare LF is rewritten to CRLF first, in what is
    /// signed and in what is returned: the relay sends them so
    /// (`LineEndings::Normalise`), and a signature over anything else
    /// would not verify at the receiver.
    pub fn sign(&self, message: &[u8], now: u64) -> Result<Vec<u8>, DkimError> {
        let message = &postern_proto::data::crlf_line_endings(message)[..];
        let (header, body) = split_message(message).ok_or(DkimError::NoHeader)?;
        let fields = crate::report::header_fields(header);
        let b64 = base64::engine::general_purpose::STANDARD;
        let body_hash = b64.encode(Sha256::digest(relaxed_body(body)));

        // The fields to sign, each instance taken from the bottom up
        // (§5.4.2); `from` once more than it occurs.
        let mut names: Vec<&str> = Vec::new();
        for name in SIGNED {
            let n = fields
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .count();
            names.extend(std::iter::repeat_n(*name, n + usize::from(*name == "from")));
        }
        let mut data = Vec::new();
        let mut used: Vec<(&str, usize)> = Vec::new();
        for name in &names {
            let seen = match used.iter_mut().find(|(n, _)| n == name) {
                Some((_, k)) => {
                    *k += 1;
                    *k
                }
                None => {
                    used.push((name, 1));
                    1
                }
            };
            let instance = fields
                .iter()
                .rev()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .nth(seen - 1);
            if let Some((k, v)) = instance {
                relaxed_header(k, v, &mut data);
                data.extend_from_slice(b"\r\n");
            }
        }
        let prefix = format!(
            "DKIM-Signature: v=1; a={}; c=relaxed/relaxed; d={}; s={}; t={now};\r\n\th={};\r\n\tbh={body_hash};\r\n\tb=",
            self.algorithm(),
            self.domain,
            self.selector,
            names.join(":"),
        );
        let (k, v) = prefix.split_once(':').unwrap_or((&prefix, ""));
        relaxed_header(k, v.as_bytes(), &mut data);

        let (scheme, input) = if self.ed25519 {
            // RFC 8463 §3: Ed25519 signs the SHA-256 hash of the data.
            (SignatureScheme::ED25519, Sha256::digest(&data).to_vec())
        } else {
            (SignatureScheme::RSA_PKCS1_SHA256, data)
        };
        let signer = self
            .key
            .choose_scheme(&[scheme])
            .ok_or_else(|| DkimError::Sign(format!("the key does not sign {scheme:?}")))?;
        let signature = signer
            .sign(&input)
            .map_err(|e| DkimError::Sign(e.to_string()))?;
        let sig = b64.encode(signature);

        let mut out = Vec::with_capacity(prefix.len() + sig.len() + message.len() + 16);
        out.extend_from_slice(prefix.as_bytes());
        for (i, chunk) in sig.as_bytes().chunks(72).enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n\t ");
            }
            out.extend_from_slice(chunk);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(message);
        Ok(out)
    }
}

/// The header block (up to and with the CRLF of its last line) and the
/// body after the empty line.
fn split_message(message: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = message.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((&message[..at + 2], &message[at + 4..]))
}

/// `relaxed` header canonicalisation (§3.4.2): the name in lower case,
/// the value unfolded, runs of WSP as one SP, no WSP at either end, no
/// WSP around the colon. No CRLF is appended.
fn relaxed_header(name: &str, value: &[u8], out: &mut Vec<u8>) {
    out.extend(name.trim().bytes().map(|b| b.to_ascii_lowercase()));
    out.push(b':');
    let mut pending_space = false;
    let mut any = false;
    for &b in value {
        match b {
            b'\r' | b'\n' => {}
            b' ' | b'\t' => pending_space = true,
            _ => {
                if pending_space && any {
                    out.push(b' ');
                }
                pending_space = false;
                any = true;
                out.push(b);
            }
        }
    }
}

/// `relaxed` body canonicalisation (§3.4.4): runs of WSP as one SP, no WSP
/// at line ends, no empty lines at the end; a non-empty body ends in CRLF
/// and an empty one stays empty. Lines end at CRLF ([`DkimSigner::sign`]
/// has rewritten bare CR and LF before).
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 2);
    let mut blank_run = 0usize;
    let mut rest = body;
    while !rest.is_empty() {
        let (line, next) = match rest.windows(2).position(|w| w == b"\r\n") {
            Some(at) => (&rest[..at], &rest[at + 2..]),
            None => (rest, &[][..]),
        };
        rest = next;
        let mut canon = Vec::with_capacity(line.len());
        let mut space = false;
        for &b in line {
            if b == b' ' || b == b'\t' {
                space = true;
            } else {
                if space {
                    canon.push(b' ');
                }
                space = false;
                canon.push(b);
            }
        }
        if canon.is_empty() {
            blank_run += 1;
            continue;
        }
        for _ in 0..blank_run {
            out.extend_from_slice(b"\r\n");
        }
        blank_run = 0;
        out.extend_from_slice(&canon);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6376 §3.4.5's example.
    #[test]
    fn canonicalisation_follows_the_rfc_example() {
        let message = b"A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n";
        let (header, body) = split_message(message).unwrap();
        let mut out = Vec::new();
        for (k, v) in crate::report::header_fields(header) {
            relaxed_header(k, v, &mut out);
            out.extend_from_slice(b"\r\n");
        }
        assert_eq!(out, b"a:X\r\nb:Y Z\r\n");
        assert_eq!(relaxed_body(body), b" C\r\nD E\r\n");
    }

    #[test]
    fn empty_bodies_and_trailing_blank_lines() {
        assert_eq!(relaxed_body(b""), b"");
        assert_eq!(relaxed_body(b"\r\n\r\n"), b"");
        assert_eq!(relaxed_body(b"a"), b"a\r\n");
        assert_eq!(relaxed_body(b"a\r\n\r\nb \r\n \r\n"), b"a\r\n\r\nb\r\n");
        // Only CRLF ends a line here (a fuzz finding: a CR before the last
        // CRLF was taken for the CR of a line end).
        assert_eq!(relaxed_body(b"r b\r\r\n"), b"r b\r\r\n");
        assert_eq!(relaxed_body(b"x\r\n  "), b"x\r\n");
    }

    #[test]
    fn bad_names_keys_and_messages_are_refused() {
        let provider = postern_relay::default_provider();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let pem = key.serialize_pem();
        let err = DkimSigner::new("exa mple.org", "s", pem.as_bytes(), &provider).unwrap_err();
        assert!(
            matches!(err, DkimError::Name { what: "domain", .. }),
            "{err}"
        );
        let err = DkimSigner::new("example.org", "", pem.as_bytes(), &provider).unwrap_err();
        assert!(
            matches!(
                err,
                DkimError::Name {
                    what: "selector",
                    ..
                }
            ),
            "{err}"
        );
        let err = DkimSigner::new("example.org", "s", b"junk", &provider).unwrap_err();
        assert!(matches!(err, DkimError::Key(_)), "{err}");
        let ecdsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let err = DkimSigner::new(
            "example.org",
            "s",
            ecdsa.serialize_pem().as_bytes(),
            &provider,
        )
        .unwrap_err();
        assert!(matches!(err, DkimError::Algorithm(_)), "{err}");
        let signer = DkimSigner::new("Example.org", "S1", pem.as_bytes(), &provider).unwrap();
        assert_eq!(signer.record_name(), "s1._domainkey.example.org");
        assert!(matches!(
            signer.sign(b"no header", 0),
            Err(DkimError::NoHeader)
        ));
    }

    #[test]
    fn the_signed_fields_are_listed_from_and_oversigned() {
        let provider = postern_relay::default_provider();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let signer = DkimSigner::new(
            "example.org",
            "s",
            key.serialize_pem().as_bytes(),
            &provider,
        )
        .unwrap();
        let signed = signer
            .sign(
                b"From: <a@example.org>\r\nX-Other: 1\r\nTo: <b@example.net>\r\n\r\nhi\r\n",
                7,
            )
            .unwrap();
        let text = String::from_utf8(signed).unwrap();
        assert!(text.contains("t=7;"), "{text}");
        assert!(text.contains("h=from:from:to;"), "{text}");
        assert!(text.ends_with(
            "\r\nFrom: <a@example.org>\r\nX-Other: 1\r\nTo: <b@example.net>\r\n\r\nhi\r\n"
        ));
        // sha256("hi\r\n")
        assert!(
            text.contains("bh=RHI91NDg1Go8f6isolS2HCe2tXiflhd+gsgHAECfFTU=;"),
            "{text}"
        );
    }
}
