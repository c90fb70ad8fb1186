//! Tests of the BDAT chunk reader: exact sizes, binary transparency, split invariance,
//! the remainder after the chunk, zero-size chunks and discarding.

use bytes::{Bytes, BytesMut};
use postern_proto::bdat::{BdatReader, BdatStep};
use proptest::prelude::*;

/// Reads a chunk from `input` cut at `cuts`; returns the chunk, `last` if done, and
/// the octets left (after the chunk if done).
fn feed(mut reader: BdatReader, input: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<bool>, Vec<u8>) {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.extend([0, input.len()]);
    points.sort_unstable();
    let mut buf = BytesMut::new();
    let mut chunk = Vec::new();
    for pair in points.windows(2) {
        buf.extend_from_slice(&input[pair[0]..pair[1]]);
        loop {
            let before = reader.remaining();
            match reader.read(&mut buf) {
                BdatStep::Chunk(piece) => {
                    assert!(!piece.is_empty());
                    assert_eq!(reader.remaining(), before - piece.len() as u64);
                    chunk.extend_from_slice(&piece);
                }
                BdatStep::NeedMore => {
                    assert!(buf.is_empty());
                    break;
                }
                BdatStep::Done { last } => {
                    assert_eq!(reader.remaining(), 0);
                    assert!(reader.is_done());
                    let mut rest = buf.to_vec();
                    rest.extend_from_slice(&input[pair[1]..]);
                    return (chunk, Some(last), rest);
                }
            }
        }
    }
    (chunk, None, buf.to_vec())
}

#[test]
fn exact_size_and_remainder() {
    let (chunk, last, rest) = feed(
        BdatReader::new(10, false),
        b"0123456789BDAT 3 LAST\r\n",
        &[],
    );
    assert_eq!(chunk, b"0123456789");
    assert_eq!(last, Some(false));
    assert_eq!(rest, b"BDAT 3 LAST\r\n");
}

#[test]
fn binary_octets_are_not_interpreted() {
    let data = b"\r\n.\r\n..\n\r\x00\xff.\r\n";
    let (chunk, last, rest) = feed(BdatReader::new(data.len() as u64, true), data, &[3, 5]);
    assert_eq!(chunk, data);
    assert_eq!(last, Some(true));
    assert!(rest.is_empty());
}

#[test]
fn zero_size_last() {
    let mut reader = BdatReader::new(0, true);
    assert!(reader.is_done());
    let mut input = BytesMut::from(&b"QUIT\r\n"[..]);
    assert_eq!(reader.read(&mut input), BdatStep::Done { last: true });
    assert_eq!(reader.read(&mut input), BdatStep::Done { last: true });
    assert_eq!(&input[..], b"QUIT\r\n");
    let mut empty = BytesMut::new();
    assert_eq!(
        BdatReader::new(0, false).read(&mut empty),
        BdatStep::Done { last: false }
    );
}

#[test]
fn waits_for_missing_octets() {
    let mut reader = BdatReader::new(5, true);
    let mut input = BytesMut::from(&b"abc"[..]);
    assert_eq!(
        reader.read(&mut input),
        BdatStep::Chunk(Bytes::from_static(b"abc"))
    );
    assert_eq!(reader.remaining(), 2);
    assert_eq!(reader.read(&mut input), BdatStep::NeedMore);
    input.extend_from_slice(b"d");
    assert_eq!(
        reader.read(&mut input),
        BdatStep::Chunk(Bytes::from_static(b"d"))
    );
    input.extend_from_slice(b"eNOOP\r\n");
    assert_eq!(
        reader.read(&mut input),
        BdatStep::Chunk(Bytes::from_static(b"e"))
    );
    assert_eq!(reader.read(&mut input), BdatStep::Done { last: true });
    assert_eq!(&input[..], b"NOOP\r\n");
}

#[test]
fn chunks_are_zero_copy() {
    let mut reader = BdatReader::new(4, false);
    let mut input = BytesMut::from(&b"abcdef"[..]);
    let base = input.as_ptr() as usize;
    let BdatStep::Chunk(chunk) = reader.read(&mut input) else {
        panic!()
    };
    assert_eq!(chunk.as_ptr() as usize, base);
    assert_eq!(&chunk[..], b"abcd");
}

#[test]
fn discard_consumes_without_emitting() {
    let (chunk, last, rest) = feed(BdatReader::discard(6, true), b"secretRSET\r\n", &[2, 4, 8]);
    assert!(chunk.is_empty());
    assert_eq!(last, Some(true));
    assert_eq!(rest, b"RSET\r\n");
    let reader = BdatReader::discard(6, true);
    assert!(reader.is_discarding() && reader.is_last());
}

#[test]
fn huge_size_is_not_truncated_to_usize() {
    let mut reader = BdatReader::new(u64::MAX, false);
    let mut input = BytesMut::from(&b"abc"[..]);
    assert_eq!(
        reader.read(&mut input),
        BdatStep::Chunk(Bytes::from_static(b"abc"))
    );
    assert_eq!(reader.remaining(), u64::MAX - 3);
}

proptest! {
    /// Any chunking gives exactly `size` octets, the rest untouched; discarding takes
    /// the same octets.
    #[test]
    fn split_invariance(data in proptest::collection::vec(any::<u8>(), 0..300), size in 0usize..320, last: bool,
                        cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let (chunk, done, rest) = feed(BdatReader::new(size as u64, last), &data, &cuts);
        if size <= data.len() {
            prop_assert_eq!(&chunk[..], &data[..size]);
            prop_assert_eq!(done, Some(last));
            prop_assert_eq!(&rest[..], &data[size..]);
        } else {
            prop_assert_eq!(&chunk[..], &data[..]);
            prop_assert_eq!(done, None);
            prop_assert!(rest.is_empty());
        }
        prop_assert_eq!(feed(BdatReader::new(size as u64, last), &data, &[]), (chunk, done, rest.clone()));
        let (dropped, discard_done, discard_rest) = feed(BdatReader::discard(size as u64, last), &data, &cuts);
        prop_assert!(dropped.is_empty());
        prop_assert_eq!(discard_done, done);
        prop_assert_eq!(discard_rest, rest);
    }
}
