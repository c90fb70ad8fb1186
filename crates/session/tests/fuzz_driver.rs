//! The `session` fuzz target's body (`tests/fuzz/body.rs`) driven on
//! stable: by proptest with structured programs and raw bytes, and over
//! the committed corpus in `fuzz/corpus/session/`.

include!("fuzz/body.rs");

use proptest::prelude::*;

/// One driver action, encoded as the fuzz program expects.
fn op() -> impl Strategy<Value = Vec<u8>> {
    const LINES: &[&[u8]] = &[
        b"EHLO c.example\r\n",
        b"LHLO c.example\r\n",
        b"HELO c.example\r\n",
        b"MAIL FROM:<a@example.org>\r\n",
        b"MAIL FROM:<a@example.org> BODY=BINARYMIME SIZE=10\r\n",
        b"RCPT TO:<b@example.org>\r\n",
        b"DATA\r\n",
        b"hello\r\n.\r\n",
        b"x\n.\nQUIT\r\n",
        b"BDAT 5\r\n12345",
        b"BDAT 3 LAST\r\nabc",
        b"STARTTLS\r\n",
        b"AUTH PLAIN AGFsaWNlAHB3\r\n",
        b"AUTH LOGIN\r\n",
        b"YWxpY2U=\r\n",
        b"*\r\n",
        b"RSET\r\n",
        b"NOOP\r\n",
        b"QUIT\r\n",
    ];
    let feed = prop_oneof![
        proptest::sample::select(LINES).prop_map(<[u8]>::to_vec),
        proptest::collection::vec(any::<u8>(), 1..40),
    ]
    .prop_flat_map(|bytes| {
        // Split into feed ops of random sizes (at most 128 octets each).
        let len = bytes.len();
        (Just(bytes), proptest::collection::vec(1usize..128, 1..4)).prop_map(move |(b, sizes)| {
            let mut out = Vec::new();
            let mut at = 0;
            let mut i = 0;
            while at < len {
                let n = sizes[i % sizes.len()].min(len - at);
                out.push((n - 1) as u8);
                out.extend_from_slice(&b[at..at + n]);
                at += n;
                i += 1;
            }
            out
        })
    });
    prop_oneof![
        6 => feed,
        3 => (0x80u8..=0x82).prop_map(|o| vec![o]),
        1 => (0x83u8..=0x84, any::<u8>()).prop_map(|(o, c)| vec![o, c]),
        1 => Just(vec![0x85]),
        1 => (0x86u8..=0x88).prop_map(|o| vec![o]),
        1 => any::<u8>().prop_map(|n| vec![0x89, n]),
        1 => Just(vec![0x8a]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn structured_programs(selector in any::<u8>(), ops in proptest::collection::vec(op(), 0..60)) {
        let mut program = vec![selector];
        for o in ops {
            program.extend_from_slice(&o);
        }
        let _ = fuzz_session(&program);
    }

    #[test]
    fn raw_programs(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = fuzz_session(&data);
    }
}

#[test]
fn corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/session");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        panic!("no corpus at {}", dir.display());
    };
    let mut n = 0;
    let mut total = FuzzOutcome::default();
    for entry in entries {
        let path = entry.unwrap().path();
        let o = fuzz_session(&std::fs::read(&path).unwrap());
        total.messages += o.messages;
        total.upgrades += o.upgrades;
        n += 1;
    }
    assert!(n > 0, "empty corpus");
    // The seed corpus reaches the interesting states.
    assert!(total.messages >= 3 && total.upgrades >= 1, "{total:?}");
    eprintln!("replayed {n} corpus inputs: {total:?}");
}
