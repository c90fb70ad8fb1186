//! SCRAM-SHA-256(-PLUS) client messages (RFC 5802 §7), from an
//! unauthenticated client on the submission port.

use std::sync::{Arc, OnceLock};

use postern_session::{
    ProofCheck, SaslContext, SaslMechanism as _, SaslStep, ScramKeys, ScramSha256, ScramStore,
    TlsInfo,
};

/// The one user of the fuzzed store (RFC 7677 §3's).
struct Store;

impl ScramStore for Store {
    fn scram_keys(&self, authcid: &str) -> Option<ScramKeys> {
        static KEYS: OnceLock<ScramKeys> = OnceLock::new();
        (authcid == "user").then(|| {
            KEYS.get_or_init(|| {
                ScramKeys::derive(b"pencil", b"fuzzing salt", 4096).expect("valid parameters")
            })
            .clone()
        })
    }
}

/// Runs one SCRAM exchange of arbitrary client messages. The first octet
/// picks the variant (plain or -PLUS, over TLS with an exporter value or
/// not, -PLUS offered or not); the rest is the client-first message, a NUL,
/// and the client-final message, in which `%N` stands for the nonce the
/// server chose (so the fuzzer reaches the proof check). Nothing panics, a
/// server message is small, an exchange never verifies (the fuzzer cannot
/// know a proof), and nothing is accepted after the exchange ends.
pub fn scram(data: &[u8]) {
    postern_session::sasl::scram::fuzz_messages(data);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (first, last) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let store: Arc<dyn ScramStore> = Arc::new(Store);
    let mechanism = if mode & 1 == 0 {
        ScramSha256::new(store)
    } else {
        ScramSha256::plus(store)
    };
    let mut tls = TlsInfo::new(postern_proto::TlsVersion::Tls13, "TLS13_AES_128_GCM_SHA256");
    tls.tls_exporter = (mode & 2 != 0).then(|| vec![0x5a; 32]);
    let offered = [postern_proto::Mechanism::Other(
        postern_session::SCRAM_SHA_256_PLUS.into(),
    )];
    let mut ctx = SaslContext::default();
    if mode & 4 != 0 {
        ctx.tls = Some(&tls);
    }
    if mode & 8 != 0 {
        ctx.offered = &offered;
    }
    if !mechanism.available(ctx.tls) {
        return;
    }
    let mut server = mechanism.start_with(&ctx);
    let nonce = match server.step(Some(first)) {
        SaslStep::Challenge(c) => {
            assert!(c.len() <= 8192, "a server-first of {} octets", c.len());
            let text = String::from_utf8(c).expect("server-first is text");
            let nonce = text
                .split(',')
                .find_map(|a| a.strip_prefix("r="))
                .expect("server-first has a nonce")
                .to_owned();
            assert!(text.contains(",s=") && text.contains(",i="), "{text}");
            nonce
        }
        SaslStep::Done(_) => panic!("a client-first completed an exchange"),
        _ => return,
    };
    let Some(last) = last else {
        return;
    };
    let last = replace(last, b"%N", nonce.as_bytes());
    match server.step(Some(&last)) {
        SaslStep::Challenge(_) => panic!("a made-up proof was verified"),
        SaslStep::Done(c) => assert_eq!(c.check, ProofCheck::Refuted),
        _ => {}
    }
    assert!(
        matches!(server.step(Some(b"")), SaslStep::Malformed(_)),
        "a finished exchange went on"
    );
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}
