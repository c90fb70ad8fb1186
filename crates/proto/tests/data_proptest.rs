//! Property tests of the DATA body decoder against a reference dot-stuffing encoder and
//! a naive octet-by-octet reference decoder, with arbitrary splits of the input.

use bytes::BytesMut;
use postern_proto::data::{BareLineEndings, DataConfig, DataDecoder, DataStep, DataSummary};
use proptest::prelude::*;

/// What a decoder made of a sequence of reads (see `feed`).
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    body: Vec<u8>,
    summary: DataSummary,
    ended: bool,
    /// After the end: everything after the terminator. Otherwise: what was held back.
    rest: Vec<u8>,
}

/// Feeds `input` cut at the offsets in `cuts` (taken modulo the length, in any order).
fn feed(config: DataConfig, input: &[u8], cuts: &[usize]) -> Outcome {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.push(0);
    points.push(input.len());
    points.sort_unstable();
    let mut decoder = DataDecoder::new(config);
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    for pair in points.windows(2) {
        buf.extend_from_slice(&input[pair[0]..pair[1]]);
        loop {
            match decoder.decode(&mut buf) {
                DataStep::Chunk(chunk) => {
                    assert!(!chunk.is_empty());
                    body.extend_from_slice(&chunk);
                }
                DataStep::NeedMore => {
                    assert!(buf.len() <= 2, "held back {:?}", &buf[..]);
                    break;
                }
                DataStep::End(summary) => {
                    let mut rest = buf.to_vec();
                    rest.extend_from_slice(&input[pair[1]..]);
                    return Outcome {
                        body,
                        summary,
                        ended: true,
                        rest,
                    };
                }
            }
        }
    }
    Outcome {
        body,
        summary: decoder.summary(),
        ended: false,
        rest: buf.to_vec(),
    }
}

/// RFC 5321 §4.5.2 read literally, one octet at a time: lines end with CRLF only, a
/// line of "." ends the data, any other line starting with "." loses that dot.
fn reference(config: DataConfig, input: &[u8]) -> Outcome {
    let normalize = config.bare_line_endings == BareLineEndings::Normalize;
    let mut full = Vec::new();
    let (mut bare_lf, mut bare_cr) = (0, 0);
    let mut i = 0;
    let mut line_start = true;
    let ended = loop {
        if line_start {
            if input[i..].starts_with(b".\r\n") {
                i += 3;
                break true;
            }
            match input.get(i) {
                None => break false,
                // A proper prefix of ".\r\n": cannot tell yet.
                Some(b'.') if b".\r\n".starts_with(&input[i..]) => break false,
                Some(b'.') => i += 1,
                Some(_) => {}
            }
            line_start = false;
        }
        match (input.get(i), input.get(i + 1)) {
            (None, _) | (Some(b'\r'), None) => break false,
            (Some(b'\r'), Some(b'\n')) => {
                full.extend_from_slice(b"\r\n");
                i += 2;
                line_start = true;
            }
            (Some(b'\r'), Some(_)) => {
                bare_cr += 1;
                full.extend_from_slice(if normalize { b"\r\n" } else { b"\r" });
                i += 1;
            }
            (Some(b'\n'), _) => {
                bare_lf += 1;
                full.extend_from_slice(if normalize { b"\r\n" } else { b"\n" });
                i += 1;
            }
            (Some(&octet), _) => {
                full.push(octet);
                i += 1;
            }
        }
    };
    let size = full.len() as u64;
    let exceeded_limit = config.max_size.is_some_and(|max| size > max);
    if let Some(max) = config.max_size {
        full.truncate(max.min(size) as usize);
    }
    Outcome {
        body: full,
        summary: DataSummary {
            size,
            exceeded_limit,
            bare_lf,
            bare_cr,
        },
        ended,
        rest: input[i..].to_vec(),
    }
}

/// Dot-stuffs `body` (which ends with CRLF or is empty) and appends the terminator.
fn encode(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    let mut line_start = true;
    for (i, &octet) in body.iter().enumerate() {
        if line_start && octet == b'.' {
            out.push(b'.');
        }
        out.push(octet);
        line_start = octet == b'\n' && i > 0 && body[i - 1] == b'\r';
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Octets that matter to the decoder, often; anything else sometimes.
fn smtp_octet() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => Just(b'\r'),
        4 => Just(b'\n'),
        3 => Just(b'.'),
        6 => Just(b'a'),
        1 => Just(0u8),
        2 => any::<u8>(),
    ]
}

fn smtp_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(smtp_octet(), 0..max),
        proptest::collection::vec(any::<u8>(), 0..max),
        // Long CRLF lines with the odd irregularity: crosses the scanner's blocks.
        proptest::collection::vec(
            prop_oneof![
                8 => "[a-z .]{0,150}\r\n".prop_map(String::into_bytes),
                1 => "\\.[a-z.]{0,10}\r\n".prop_map(String::into_bytes),
                1 => "[a-z]{0,100}[\r\n][.a-z]{0,3}".prop_map(String::into_bytes),
            ],
            0..20,
        )
        .prop_map(|lines| lines.concat()),
    ]
}

fn config() -> impl Strategy<Value = DataConfig> {
    (
        prop_oneof![Just(None), (0u64..400).prop_map(Some)],
        prop_oneof![
            Just(BareLineEndings::Keep),
            Just(BareLineEndings::Normalize)
        ],
    )
        .prop_map(|(max_size, bare_line_endings)| DataConfig::new(max_size, bare_line_endings))
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(any::<usize>(), 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// encode then decode gives the body back, whatever its octets, and leaves the
    /// trailing octets alone.
    #[test]
    fn round_trip(body in smtp_bytes(400), trailing in smtp_bytes(40), cuts in cuts()) {
        let mut body = body;
        if !body.is_empty() && !body.ends_with(b"\r\n") {
            body.extend_from_slice(b"\r\n");
        }
        let mut input = encode(&body);
        input.extend_from_slice(&trailing);
        let out = feed(DataConfig::default(), &input, &cuts);
        prop_assert!(out.ended);
        prop_assert_eq!(&out.body, &body);
        prop_assert_eq!(out.rest, trailing);
        prop_assert_eq!(out.summary.size, body.len() as u64);
        let bare_lf = body.iter().enumerate().filter(|&(i, &o)| o == b'\n' && (i == 0 || body[i - 1] != b'\r')).count();
        let bare_cr = body.iter().enumerate().filter(|&(i, &o)| o == b'\r' && body.get(i + 1) != Some(&b'\n')).count();
        prop_assert_eq!(out.summary.bare_lf, bare_lf as u64);
        prop_assert_eq!(out.summary.bare_cr, bare_cr as u64);
    }

    /// Without bare line endings, Normalize changes nothing.
    #[test]
    fn round_trip_crlf_only_normalize(lines in proptest::collection::vec("[a-z. ]{0,90}", 0..30), cuts in cuts()) {
        let body: Vec<u8> = lines.iter().flat_map(|l| [l.as_bytes(), b"\r\n"].concat()).collect();
        let mut input = encode(&body);
        input.extend_from_slice(b"QUIT\r\n");
        let config = DataConfig::new(None, BareLineEndings::Normalize);
        let out = feed(config, &input, &cuts);
        prop_assert!(out.ended);
        prop_assert_eq!(out.body, body);
        prop_assert!(!out.summary.has_bare_line_endings());
        prop_assert_eq!(out.rest, b"QUIT\r\n".to_vec());
    }

    /// Any chunking of any input gives what one read gives.
    #[test]
    fn split_invariance(input in smtp_bytes(500), config in config(), cuts in cuts()) {
        let whole = feed(config, &input, &[]);
        let split = feed(config, &input, &cuts);
        prop_assert_eq!(split, whole);
    }

    /// The decoder agrees with the naive reference on any input and any chunking:
    /// same body, summary, end, and remainder (or held-back octets).
    #[test]
    fn matches_reference(input in smtp_bytes(500), config in config(), cuts in cuts()) {
        prop_assert_eq!(feed(config, &input, &cuts), reference(config, &input));
    }

    /// A CRLF.CRLF terminator anywhere after a line start ends the message there,
    /// whatever precedes it, and nothing before it does unless it is one itself.
    #[test]
    fn ends_at_first_terminator(prefix in smtp_bytes(300), suffix in smtp_bytes(50)) {
        let mut input = prefix.clone();
        input.extend_from_slice(b"\r\n.\r\n");
        input.extend_from_slice(&suffix);
        let out = reference(DataConfig::default(), &input);
        prop_assert!(out.ended);
        let decoded = feed(DataConfig::default(), &input, &[]);
        prop_assert_eq!(&decoded, &out);
        // The message ends no later than the appended terminator.
        prop_assert!(decoded.rest.len() >= suffix.len());
    }
}

#[test]
fn reference_sanity() {
    // The reference itself, on the cases the scripted tests pin down.
    let out = reference(DataConfig::default(), b"..a\r\n\n.\n.\r\n.\r\nQ");
    assert_eq!(out.body, b".a\r\n\n.\n.\r\n");
    assert!(out.ended);
    assert_eq!(out.rest, b"Q");
    assert_eq!((out.summary.bare_lf, out.summary.bare_cr), (2, 0));
    let out = reference(DataConfig::default(), b"a\r\n.\r");
    assert!(!out.ended);
    assert_eq!(out.rest, b".\r");
    assert_eq!(encode(b".\r\n..\r\na.\r\n"), b"..\r\n...\r\na.\r\n.\r\n");
}
