//! Scripted tests of the DATA body decoder: unstuffing, end of data, SMTP smuggling
//! vectors, bare line endings, normalisation, the size limit and input splitting.

use bytes::{Bytes, BytesMut};
use postern_proto::data::{BareLineEndings, DataConfig, DataDecoder, DataStep, DataSummary};

/// What a decoder made of a sequence of reads.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    body: Vec<u8>,
    /// Final summary if `ended`, else the progress so far.
    summary: DataSummary,
    ended: bool,
    /// After `End`: the unread input (what followed the terminator). Otherwise the
    /// octets the decoder left in its buffer.
    rest: Vec<u8>,
}

fn feed(config: DataConfig, pieces: &[&[u8]]) -> Outcome {
    let mut decoder = DataDecoder::new(config);
    let mut input = BytesMut::new();
    let mut body = Vec::new();
    for (n, piece) in pieces.iter().enumerate() {
        input.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut input) {
                DataStep::Chunk(chunk) => {
                    assert!(!chunk.is_empty(), "empty chunk");
                    body.extend_from_slice(&chunk);
                }
                DataStep::NeedMore => {
                    assert!(input.len() <= 2, "held back {:?}", &input[..]);
                    assert!(!decoder.is_finished());
                    break;
                }
                DataStep::End(summary) => {
                    assert!(decoder.is_finished());
                    assert_eq!(summary, decoder.summary());
                    let mut rest = input.to_vec();
                    for later in &pieces[n + 1..] {
                        rest.extend_from_slice(later);
                    }
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
        rest: input.to_vec(),
    }
}

fn keep() -> DataConfig {
    DataConfig::default()
}

fn normalize() -> DataConfig {
    DataConfig::new(None, BareLineEndings::Normalize)
}

fn limit(max: u64) -> DataConfig {
    DataConfig::new(Some(max), BareLineEndings::Keep)
}

fn clean(size: usize) -> DataSummary {
    DataSummary {
        size: size as u64,
        ..DataSummary::default()
    }
}

/// Decodes `input` in one read and in every split into two and three reads, checks
/// that all agree, and returns the one-read outcome.
fn decode_all_splits(config: DataConfig, input: &[u8]) -> Outcome {
    let whole = feed(config, &[input]);
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        assert_eq!(feed(config, &[a, b]), whole, "split at {i}");
        for j in i..=input.len() {
            let (b, c) = (&input[i..j], &input[j..]);
            assert_eq!(feed(config, &[a, b, c]), whole, "split at {i} and {j}");
        }
    }
    let bytewise: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(feed(config, &bytewise), whole, "one octet per read");
    whole
}

fn assert_ends(input: &[u8], body: &[u8], rest: &[u8]) -> DataSummary {
    let out = decode_all_splits(keep(), input);
    assert!(
        out.ended,
        "message did not end: {:?}",
        String::from_utf8_lossy(input)
    );
    assert_eq!(
        out.body,
        body,
        "body of {:?}",
        String::from_utf8_lossy(input)
    );
    assert_eq!(out.rest, rest);
    assert_eq!(out.summary.size, body.len() as u64);
    out.summary
}

#[test]
fn empty_message() {
    assert_eq!(assert_ends(b".\r\n", b"", b""), DataSummary::default());
}

#[test]
fn empty_message_then_pipelined_command() {
    assert_ends(b".\r\nQUIT\r\n", b"", b"QUIT\r\n");
}

#[test]
fn single_line() {
    assert_eq!(assert_ends(b"hello\r\n.\r\n", b"hello\r\n", b""), clean(7));
}

#[test]
fn empty_lines_are_kept() {
    assert_ends(b"\r\n\r\na\r\n\r\n.\r\n", b"\r\n\r\na\r\n\r\n", b"");
}

#[test]
fn leading_double_dot_is_unstuffed() {
    assert_ends(b"..foo\r\n.\r\n", b".foo\r\n", b"");
}

#[test]
fn leading_line_of_double_dot() {
    assert_ends(b"..\r\n.\r\n", b".\r\n", b"");
}

#[test]
fn double_dot_mid_body() {
    assert_ends(b"a\r\n..b\r\nc\r\n.\r\n", b"a\r\n.b\r\nc\r\n", b"");
}

#[test]
fn lines_of_only_double_dots() {
    assert_ends(
        b"a\r\n..\r\n..\r\n..\r\n.\r\n",
        b"a\r\n.\r\n.\r\n.\r\n",
        b"",
    );
    assert_ends(b"..\r\n..\r\n.\r\n", b".\r\n.\r\n", b"");
}

#[test]
fn triple_dot_loses_one() {
    assert_ends(b"...\r\n.\r\n", b"..\r\n", b"");
}

#[test]
fn dot_inside_a_line_is_data() {
    assert_ends(b"a.b\r\nc..\r\n.\r\n", b"a.b\r\nc..\r\n", b"");
}

#[test]
fn unstuffed_leading_dot_is_removed() {
    // RFC 5321 §4.5.2: a line starting with "." and more characters loses the dot,
    // whether or not the client stuffed it.
    assert_ends(b"a\r\n.b\r\n.\r\n", b"a\r\nb\r\n", b"");
}

#[test]
fn last_line_without_content_before_terminator() {
    assert_ends(b"a\r\n\r\n.\r\n", b"a\r\n\r\n", b"");
}

#[test]
fn terminator_split_at_every_position() {
    let input = b"Subject: x\r\n\r\n..body\r\n.\r\nRSET\r\nQUIT\r\n";
    let summary = assert_ends(input, b"Subject: x\r\n\r\n.body\r\n", b"RSET\r\nQUIT\r\n");
    assert_eq!(summary, clean(21));
}

#[test]
fn data_after_terminator_stays_in_input() {
    let mut decoder = DataDecoder::default();
    let mut input = BytesMut::from(&b"x\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"[..]);
    assert_eq!(
        decoder.decode(&mut input),
        DataStep::Chunk(Bytes::from_static(b"x\r\n"))
    );
    assert_eq!(decoder.decode(&mut input), DataStep::End(clean(3)));
    assert_eq!(&input[..], b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
    // Finished: no more octets are taken.
    assert_eq!(decoder.decode(&mut input), DataStep::End(clean(3)));
    assert_eq!(&input[..], b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
}

#[test]
fn remainder_that_looks_like_a_terminator_is_not_consumed() {
    assert_ends(b".\r\n.\r\n", b"", b".\r\n");
    assert_ends(b"a\r\n.\r\n\r\n.\r\n", b"a\r\n", b"\r\n.\r\n");
}

/// A message that would be smuggled after a fake end of data.
const SMUGGLED: &[u8] =
    b"MAIL FROM:<admin@victim.example>\r\nRCPT TO:<x@y.example>\r\nDATA\r\nevil\r\n";

/// Vectors from SEC Consult's SMTP smuggling research whose dot is not at a line start:
/// the body must hold them verbatim.
const VERBATIM_VECTORS: &[&[u8]] = &[
    b"\n.\n",
    b"\n.\r\n",
    b"\r.\r",
    b"\r.\r\n",
    b"\r.\n",
    b"\r\n\x00.\r\n",
    b"\n\n.\n\n",
    b"\r\r.\r\r",
];

#[test]
fn smuggling_vectors_do_not_end_the_message() {
    for vector in VERBATIM_VECTORS {
        let mut input = b"legit body".to_vec();
        input.extend_from_slice(vector);
        input.extend_from_slice(SMUGGLED);
        input.extend_from_slice(b".\r\nQUIT\r\n");
        let mut body = b"legit body".to_vec();
        body.extend_from_slice(vector);
        body.extend_from_slice(SMUGGLED);
        let summary = assert_ends(&input, &body, b"QUIT\r\n");
        assert!(
            summary.has_bare_line_endings() || vector.starts_with(b"\r\n\x00"),
            "{vector:?}"
        );
    }
}

#[test]
fn smuggling_vectors_alone_leave_the_message_open() {
    for vector in VERBATIM_VECTORS {
        let mut input = b"x".to_vec();
        input.extend_from_slice(vector);
        input.extend_from_slice(b"QUIT\r\n");
        let out = decode_all_splits(keep(), &input);
        assert!(!out.ended, "{vector:?} ended the message");
        // Everything is body: nothing is held back, as the input ends with CRLF.
        assert_eq!(out.body, input, "{vector:?}");
        assert!(out.rest.is_empty());
    }
}

#[test]
fn smuggling_vectors_at_body_start() {
    for vector in [&b"\n.\n"[..], b"\n.\r\n", b"\r.\r", b"\r.\r\n", b"\r.\n"] {
        let mut input = vector.to_vec();
        input.extend_from_slice(b"\r\n.\r\n");
        let mut body = vector.to_vec();
        body.extend_from_slice(b"\r\n");
        assert_ends(&input, &body, b"");
    }
}

#[test]
fn line_start_dot_before_bare_ending_is_removed_but_does_not_end() {
    // `CRLF . CR x` and `CRLF . LF`: the dot is at a line start (after CRLF) and the
    // line is not ".", so it is removed (RFC 5321 §4.5.2); the message goes on.
    let mut input = b"a\r\n.\rX".to_vec();
    input.extend_from_slice(SMUGGLED);
    input.extend_from_slice(b".\r\n");
    let mut body = b"a\r\n\rX".to_vec();
    body.extend_from_slice(SMUGGLED);
    let summary = assert_ends(&input, &body, b"");
    assert_eq!((summary.bare_lf, summary.bare_cr), (0, 1));

    let mut input = b"a\r\n.\n".to_vec();
    input.extend_from_slice(SMUGGLED);
    input.extend_from_slice(b".\r\n");
    let mut body = b"a\r\n\n".to_vec();
    body.extend_from_slice(SMUGGLED);
    let summary = assert_ends(&input, &body, b"");
    assert_eq!((summary.bare_lf, summary.bare_cr), (1, 0));

    // `CRLF . CR CR LF`
    let summary = assert_ends(b"a\r\n.\r\r\n.\r\n", b"a\r\n\r\r\n", b"");
    assert_eq!((summary.bare_lf, summary.bare_cr), (0, 1));
}

#[test]
fn dot_after_bare_lf_is_data_not_stuffing() {
    let summary = assert_ends(b"a\n..b\r\n.\r\n", b"a\n..b\r\n", b"");
    assert_eq!(summary.bare_lf, 1);
    let summary = assert_ends(b"a\r..b\r\n.\r\n", b"a\r..b\r\n", b"");
    assert_eq!(summary.bare_cr, 1);
    // At the body start too.
    assert_ends(b"\n.\r\n.\r\n", b"\n.\r\n", b"");
}

#[test]
fn bare_line_endings_are_counted() {
    let summary = assert_ends(
        b"a\nb\rc\r\nd\n\n\r\r\r\n.\r\n",
        b"a\nb\rc\r\nd\n\n\r\r\r\n",
        b"",
    );
    assert_eq!((summary.bare_lf, summary.bare_cr), (3, 3));
    assert!(summary.has_bare_line_endings());
    let summary = assert_ends(b"\n\r\n.\r\n", b"\n\r\n", b"");
    assert_eq!((summary.bare_lf, summary.bare_cr), (1, 0));
    let summary = assert_ends(b"\r\r\n.\r\n", b"\r\r\n", b"");
    assert_eq!((summary.bare_lf, summary.bare_cr), (0, 1));
    // LF CR is two bare octets, not a line ending.
    let summary = assert_ends(b"a\n\rb\r\n.\r\n", b"a\n\rb\r\n", b"");
    assert_eq!((summary.bare_lf, summary.bare_cr), (1, 1));
}

#[test]
fn cr_and_lf_in_separate_reads_are_a_crlf() {
    let out = feed(keep(), &[b"a\r", b"\nb\r", b"\n", b".", b"\r", b"\nX"]);
    assert!(out.ended);
    assert_eq!(out.body, b"a\r\nb\r\n");
    assert_eq!(out.summary, clean(6));
    assert_eq!(out.rest, b"X");
}

#[test]
fn need_more_holds_only_undecidable_octets() {
    let mut decoder = DataDecoder::default();
    let mut input = BytesMut::from(&b"."[..]);
    assert_eq!(decoder.decode(&mut input), DataStep::NeedMore);
    assert_eq!(&input[..], b".");
    input.extend_from_slice(b"\r");
    assert_eq!(decoder.decode(&mut input), DataStep::NeedMore);
    assert_eq!(&input[..], b".\r");
    input.extend_from_slice(b"x\r");
    // The dot was stuffing; CR x is a bare CR; the final CR waits for its successor.
    assert_eq!(
        decoder.decode(&mut input),
        DataStep::Chunk(Bytes::from_static(b"\rx"))
    );
    assert_eq!(decoder.decode(&mut input), DataStep::NeedMore);
    assert_eq!(&input[..], b"\r");
    assert_eq!(
        decoder.summary(),
        DataSummary {
            size: 2,
            bare_cr: 1,
            ..DataSummary::default()
        }
    );
    input.extend_from_slice(b"\n");
    assert_eq!(
        decoder.decode(&mut input),
        DataStep::Chunk(Bytes::from_static(b"\r\n"))
    );
    assert_eq!(decoder.decode(&mut input), DataStep::NeedMore);
    assert!(input.is_empty());
}

#[test]
fn chunks_are_zero_copy_and_split_at_stuffed_dots() {
    let mut decoder = DataDecoder::default();
    let mut input = BytesMut::from(&b"one\r\n..two\r\nthree\r\n.\r\n"[..]);
    let base = input.as_ptr() as usize;
    let DataStep::Chunk(first) = decoder.decode(&mut input) else {
        panic!()
    };
    assert_eq!(&first[..], b"one\r\n");
    assert_eq!(first.as_ptr() as usize, base);
    let DataStep::Chunk(second) = decoder.decode(&mut input) else {
        panic!()
    };
    assert_eq!(&second[..], b".two\r\nthree\r\n");
    // The stuffed dot at offset 5 was skipped, the chunk is the input's own memory.
    assert_eq!(second.as_ptr() as usize, base + 6);
    assert_eq!(decoder.decode(&mut input), DataStep::End(clean(18)));
}

#[test]
fn normalize_rewrites_bare_endings() {
    let out = decode_all_splits(normalize(), b"a\nb\rc\r\nd\r\r\n\n\r\n.\r\n");
    assert!(out.ended);
    assert_eq!(out.body, b"a\r\nb\r\nc\r\nd\r\n\r\n\r\n\r\n");
    assert_eq!(
        out.summary,
        DataSummary {
            size: 18,
            exceeded_limit: false,
            bare_lf: 2,
            bare_cr: 2
        }
    );
}

#[test]
fn normalize_does_not_unstuff_after_bare_endings() {
    // Line starts are decided on the input: the dot after a bare LF stays.
    let out = decode_all_splits(normalize(), b"a\n..\r\n.\r\nQUIT\r\n");
    assert!(out.ended);
    assert_eq!(out.body, b"a\r\n..\r\n");
    assert_eq!(out.rest, b"QUIT\r\n");
    assert_eq!(
        out.summary,
        DataSummary {
            size: 7,
            bare_lf: 1,
            ..DataSummary::default()
        }
    );
}

#[test]
fn normalize_without_bare_endings_is_zero_copy() {
    let mut decoder = DataDecoder::new(normalize());
    let mut input = BytesMut::from(&b"plain\r\n.\r\n"[..]);
    let base = input.as_ptr() as usize;
    let DataStep::Chunk(chunk) = decoder.decode(&mut input) else {
        panic!()
    };
    assert_eq!(chunk.as_ptr() as usize, base);
    assert_eq!(decoder.decode(&mut input), DataStep::End(clean(7)));
}

#[test]
fn normalize_bare_cr_at_end_of_read() {
    let out = feed(normalize(), &[b"a\r", b"b\r", b"\r", b"\n.\r\n"]);
    assert!(out.ended);
    assert_eq!(out.body, b"a\r\nb\r\n\r\n");
    assert_eq!(
        out.summary,
        DataSummary {
            size: 8,
            bare_cr: 2,
            ..DataSummary::default()
        }
    );
}

#[test]
fn size_limit_exactly_at_below_and_above() {
    let input = b"0123456\r\n.\r\n"; // a 9-octet body
    let body = b"0123456\r\n";
    for (max, exceeded) in [(10, false), (9, false), (8, true), (0, true)] {
        let out = decode_all_splits(limit(max), input);
        assert!(out.ended);
        assert_eq!(
            out.summary,
            DataSummary {
                size: 9,
                exceeded_limit: exceeded,
                ..Default::default()
            },
            "max {max}"
        );
        // Only the part within the limit is emitted.
        assert_eq!(out.body, &body[..9.min(max as usize)], "max {max}");
    }
}

#[test]
fn size_limit_zero_allows_empty_message() {
    let out = decode_all_splits(limit(0), b".\r\nQUIT\r\n");
    assert_eq!(out.summary, DataSummary::default());
    assert_eq!(out.rest, b"QUIT\r\n");
}

#[test]
fn size_limit_keeps_scanning_for_the_terminator() {
    let mut input = Vec::new();
    for _ in 0..100 {
        input.extend_from_slice(b"..0123456789\r\n");
    }
    input.extend_from_slice(b".\r\nNOOP\r\n");
    let out = decode_all_splits(limit(25), &input[..300]);
    assert!(!out.ended);
    assert!(out.summary.exceeded_limit);
    let out = feed(limit(25), &[&input]);
    assert!(out.ended);
    assert_eq!(
        out.summary,
        DataSummary {
            size: 1300,
            exceeded_limit: true,
            ..Default::default()
        }
    );
    assert_eq!(out.body, b".0123456789\r\n.0123456789\r\n"[..25]);
    assert_eq!(out.rest, b"NOOP\r\n");
}

#[test]
fn size_limit_counts_normalized_octets() {
    let config = DataConfig::new(Some(4), BareLineEndings::Normalize);
    let out = decode_all_splits(config, b"ab\n\r\n.\r\n");
    assert_eq!(
        out.summary,
        DataSummary {
            size: 6,
            exceeded_limit: true,
            bare_lf: 1,
            bare_cr: 0
        }
    );
    assert_eq!(out.body, b"ab\r\n");
    let config = DataConfig::new(Some(6), config.bare_line_endings);
    let out = decode_all_splits(config, b"ab\n\r\n.\r\n");
    assert!(!out.summary.exceeded_limit);
    assert_eq!(out.body, b"ab\r\n\r\n");
}

#[test]
fn long_lines_with_events_at_every_offset() {
    // Exercise the block-wise scanner: put each kind of irregularity at every offset
    // of a line longer than several blocks, and check against a hand-built body.
    for offset in 0..200 {
        let line = |filler: u8| vec![filler; offset];
        let mut input = Vec::new();
        let mut body = Vec::new();
        // A stuffed dot, a bare LF, a bare CR, an empty line.
        for (event, decoded) in [
            (&b"\r\n.."[..], &b"\r\n."[..]),
            (b"\n.", b"\n."),
            (b"\r.", b"\r."),
            (b"\r\n\r\n", b"\r\n\r\n"),
        ] {
            input.extend_from_slice(&line(b'a'));
            input.extend_from_slice(event);
            body.extend_from_slice(&line(b'a'));
            body.extend_from_slice(decoded);
        }
        input.extend_from_slice(b"z\r\n.\r\nX");
        body.extend_from_slice(b"z\r\n");
        for read in [1, 7, 64, 65, 4096] {
            let pieces: Vec<&[u8]> = input.chunks(read).collect();
            let out = feed(keep(), &pieces);
            assert!(out.ended, "offset {offset} read {read}");
            assert_eq!(out.body, body, "offset {offset} read {read}");
            assert_eq!(
                (out.summary.bare_lf, out.summary.bare_cr),
                (1, 1),
                "offset {offset}"
            );
            assert_eq!(out.summary.size, body.len() as u64);
            assert_eq!(out.rest, b"X");
        }
    }
}

#[test]
fn default_config_is_keep_without_limit() {
    let decoder = DataDecoder::default();
    assert_eq!(
        *decoder.config(),
        DataConfig::new(None, BareLineEndings::Keep)
    );
    assert!(!decoder.is_finished());
    assert_eq!(decoder.summary(), DataSummary::default());
}
