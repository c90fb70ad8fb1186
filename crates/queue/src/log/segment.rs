//! Segment files: names, the segment header, and the scan of a segment
//! image into valid records and the gaps between them.

use super::record::{ALIGN, Decoded, HEADER_LEN, Header, KIND_SEAL, decode_at};

/// Bytes of the segment header at offset 0; records start after it.
pub(crate) const SEGMENT_HEADER_LEN: usize = 64;
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"PSTNSEG\0";
pub(crate) const SEGMENT_VERSION: u32 = 1;

/// The file name of segment `seq`: `seg-` and 16 hex digits, so names sort
/// in sequence order.
pub(crate) fn segment_name(seq: u64) -> String {
    format!("seg-{seq:016x}.log")
}

/// The sequence number in a segment file name.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The segment header: magic, version, sequence number and capacity.
pub(crate) fn encode_segment_header(seq: u64, capacity: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut b = [0u8; SEGMENT_HEADER_LEN];
    b[0..8].copy_from_slice(&SEGMENT_MAGIC);
    b[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    b[16..24].copy_from_slice(&seq.to_le_bytes());
    b[24..32].copy_from_slice(&capacity.to_le_bytes());
    let crc = crc32fast::hash(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}

/// `(seq, capacity)` from a segment header, if it verifies.
pub(crate) fn decode_segment_header(image: &[u8]) -> Option<(u64, u64)> {
    let b = image.get(..SEGMENT_HEADER_LEN)?;
    let crc = u32::from_le_bytes([b[60], b[61], b[62], b[63]]);
    if b[0..8] != SEGMENT_MAGIC
        || u32::from_le_bytes([b[8], b[9], b[10], b[11]]) != SEGMENT_VERSION
        || crc32fast::hash(&b[..60]) != crc
    {
        return None;
    }
    let seq = u64::from_le_bytes(b[16..24].try_into().ok()?);
    let capacity = u64::from_le_bytes(b[24..32].try_into().ok()?);
    Some((seq, capacity))
}

/// One valid record found by a scan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    pub(crate) offset: usize,
    pub(crate) header: Header,
}

/// Bytes that are not valid records, between valid ones (or after the
/// last one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gap {
    pub(crate) offset: usize,
    /// Where the next valid record starts (`None`: none follows).
    pub(crate) resume: Option<usize>,
    /// The header at `offset`, when its fields look right.
    pub(crate) header: Option<Header>,
}

/// A segment image read record by record.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub(crate) records: Vec<Found>,
    /// Non-empty gaps in offset order. A gap of zeros at the end (the
    /// unused preallocated space) is not a gap.
    pub(crate) gaps: Vec<Gap>,
    /// Offset just past the last valid record (or the seal), where the
    /// next record would go.
    pub(crate) end: usize,
    /// The image ends in a seal record.
    pub(crate) sealed: bool,
}

/// Reads every valid record of `image` (a whole segment file), stopping at
/// a seal record. After bytes that do not decode it looks for the next
/// valid record at every aligned offset, so one corrupt record does not
/// hide the ones after it.
pub(crate) fn scan(image: &[u8]) -> Scan {
    let mut out = Scan {
        end: SEGMENT_HEADER_LEN,
        ..Scan::default()
    };
    let mut at = SEGMENT_HEADER_LEN;
    while at + HEADER_LEN <= image.len() {
        match decode_at(image, at) {
            Decoded::Valid { header, next } => {
                out.records.push(Found { offset: at, header });
                at = next;
                out.end = next;
                if header.kind == KIND_SEAL {
                    out.sealed = true;
                    return out;
                }
            }
            Decoded::Invalid { header } => {
                let resume = resync(image, at + ALIGN);
                let gap_end = resume.unwrap_or(image.len());
                if resume.is_some() || image[at..gap_end].iter().any(|&b| b != 0) {
                    out.gaps.push(Gap {
                        offset: at,
                        resume,
                        header,
                    });
                }
                match resume {
                    Some(r) => at = r,
                    None => return out,
                }
            }
        }
    }
    if at < image.len() && image[at..].iter().any(|&b| b != 0) {
        out.gaps.push(Gap {
            offset: at,
            resume: None,
            header: None,
        });
    }
    out
}

/// The first aligned offset at or after `from` where a valid record starts.
fn resync(image: &[u8], from: usize) -> Option<usize> {
    let mut at = from.div_ceil(ALIGN) * ALIGN;
    while at + HEADER_LEN <= image.len() {
        // Cheap test first: the magic's first byte.
        if image[at] == b'P' && matches!(decode_at(image, at), Decoded::Valid { .. }) {
            return Some(at);
        }
        at += ALIGN;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::record::KIND_BODY;
    use super::*;

    fn record(lsn: u64, payload: &[u8], out: &mut Vec<u8>) {
        Header {
            kind: KIND_BODY,
            flags: 0,
            len: payload.len() as u32,
            lsn,
            origin: lsn,
            txn_first: lsn,
            txn_end: lsn,
            group: lsn,
            key: 9,
        }
        .encode(payload, out);
    }

    fn image() -> Vec<u8> {
        let mut img = encode_segment_header(1, 4096).to_vec();
        for lsn in 1..=5 {
            record(lsn, &vec![lsn as u8; 30 + lsn as usize], &mut img);
        }
        img.resize(4096, 0);
        img
    }

    #[test]
    fn names_sort_and_parse() {
        assert_eq!(segment_name(0x1f), "seg-000000000000001f.log");
        assert_eq!(parse_segment_name(&segment_name(77)), Some(77));
        assert_eq!(parse_segment_name("seg-1.log"), None);
        assert_eq!(parse_segment_name("other"), None);
        assert_eq!(decode_segment_header(&image()), Some((1, 4096)));
    }

    #[test]
    fn clean_image_has_no_gaps() {
        let s = scan(&image());
        assert_eq!(s.records.len(), 5);
        assert!(s.gaps.is_empty());
        assert!(!s.sealed);
    }

    #[test]
    fn a_corrupt_record_is_a_gap_and_the_rest_is_found() {
        let mut img = image();
        let second = scan(&img).records[1].offset;
        img[second + HEADER_LEN + 3] ^= 0x10;
        let s = scan(&img);
        assert_eq!(s.records.len(), 4);
        assert_eq!(s.gaps.len(), 1);
        assert_eq!(s.gaps[0].offset, second);
        assert_eq!(s.gaps[0].header.map(|h| h.lsn), Some(2));
        assert_eq!(s.records[1].header.lsn, 3);
    }

    #[test]
    fn trailing_garbage_is_a_gap_without_resume() {
        let mut img = image();
        let end = scan(&img).end;
        img[end + 100] = 1;
        let s = scan(&img);
        assert_eq!(s.records.len(), 5);
        assert_eq!(s.gaps.len(), 1);
        assert!(s.gaps[0].resume.is_none());
    }
}
