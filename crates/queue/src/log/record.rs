//! Records: what a caller stores, and their checksummed on-disk encoding.
//!
//! The layout is described in the [module docs](super); this file is its
//! single implementation (encode and decode side by side, so they cannot
//! drift apart).

use std::fmt;

/// Identifies the message a record belongs to.
///
/// The log does not interpret it; the queue maps its own ids onto it (a
/// 26-hex-digit queue id fits in 104 bits). Key 0 is reserved for the log's
/// own records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageKey(u128);

impl MessageKey {
    /// A key from its numeric value; `None` for 0, which the log reserves.
    pub fn new(value: u128) -> Option<MessageKey> {
        (value != 0).then_some(MessageKey(value))
    }

    /// The numeric value.
    pub fn get(self) -> u128 {
        self.0
    }
}

impl fmt::Display for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// What a caller's record holds. The log stores all kinds alike; the kind
/// is for the queue that reads them back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordKind {
    /// Message body octets (a large body may be split over several body
    /// records; they are returned in append order).
    Body,
    /// A sealed envelope (sender, recipients, parameters). By convention a
    /// message exists for the queue once it has an envelope record.
    Envelope,
    /// A change of state: one recipient delivered, deferred or failed, an
    /// attempt counted, a hold noted.
    State,
}

impl RecordKind {
    pub(crate) fn code(self) -> u8 {
        match self {
            RecordKind::Body => KIND_BODY,
            RecordKind::Envelope => KIND_ENVELOPE,
            RecordKind::State => KIND_STATE,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<RecordKind> {
        match code {
            KIND_BODY => Some(RecordKind::Body),
            KIND_ENVELOPE => Some(RecordKind::Envelope),
            KIND_STATE => Some(RecordKind::State),
            _ => None,
        }
    }
}

/// One record to append: a kind, the message it belongs to, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// What the payload is.
    pub kind: RecordKind,
    /// The message it belongs to.
    pub key: MessageKey,
    /// The bytes, stored and returned verbatim.
    pub payload: Vec<u8>,
}

impl Record {
    /// A record of `kind` for message `key`.
    pub fn new(kind: RecordKind, key: MessageKey, payload: impl Into<Vec<u8>>) -> Record {
        Record {
            kind,
            key,
            payload: payload.into(),
        }
    }
}

/// A record read back from the log, in the order it was appended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredRecord {
    /// What the payload is.
    pub kind: RecordKind,
    /// The bytes as appended.
    pub payload: Vec<u8>,
    /// The log sequence number the record was first appended with (it
    /// keeps it when compaction copies the record forward), increasing in
    /// append order across the whole log.
    pub lsn: u64,
}

pub(crate) const KIND_BODY: u8 = 1;
pub(crate) const KIND_ENVELOPE: u8 = 2;
pub(crate) const KIND_STATE: u8 = 3;
/// The message is finished: a tombstone.
pub(crate) const KIND_FINISH: u8 = 4;
/// End of a segment: nothing after it is read.
pub(crate) const KIND_SEAL: u8 = 5;

/// `flags` bit: this record is a copy made by compaction (`origin` is the
/// lsn of the original).
pub(crate) const FLAG_COPY: u16 = 1;

pub(crate) const RECORD_MAGIC: [u8; 4] = *b"PQRC";
pub(crate) const RECORD_VERSION: u8 = 1;
/// Bytes of a record header.
pub(crate) const HEADER_LEN: usize = 64;
/// Records start at multiples of this, so a scan that has lost its place
/// (after a corrupt header) only tries aligned positions.
pub(crate) const ALIGN: usize = 8;

/// A record header as stored (see the module docs for the byte layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: u8,
    pub(crate) flags: u16,
    pub(crate) len: u32,
    pub(crate) lsn: u64,
    pub(crate) origin: u64,
    /// The lsn of the first record of the same submission.
    pub(crate) txn_first: u64,
    /// The lsn of the last record of the same submission.
    pub(crate) txn_end: u64,
    pub(crate) group: u64,
    pub(crate) key: u128,
}

/// `n` rounded up to [`ALIGN`].
pub(crate) fn padded(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Bytes a record with `payload_len` payload bytes takes in a segment.
pub(crate) fn encoded_len(payload_len: usize) -> usize {
    HEADER_LEN + padded(payload_len)
}

impl Header {
    fn bytes_without_crc(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&RECORD_MAGIC);
        b[4] = RECORD_VERSION;
        b[5] = self.kind;
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        b[16..24].copy_from_slice(&self.lsn.to_le_bytes());
        b[24..32].copy_from_slice(&self.origin.to_le_bytes());
        // Stored as distances from lsn (a submission has < 2^32 records).
        let back = self.lsn.saturating_sub(self.txn_first) as u32;
        let ahead = self.txn_end.saturating_sub(self.lsn) as u32;
        b[32..36].copy_from_slice(&back.to_le_bytes());
        b[36..40].copy_from_slice(&ahead.to_le_bytes());
        b[40..48].copy_from_slice(&self.group.to_le_bytes());
        b[48..64].copy_from_slice(&self.key.to_le_bytes());
        b
    }

    /// Appends header, payload and padding to `out`.
    pub(crate) fn encode(&self, payload: &[u8], out: &mut Vec<u8>) {
        debug_assert_eq!(self.len as usize, payload.len());
        let mut b = self.bytes_without_crc();
        let crc = checksum(&b, payload);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&b);
        out.extend_from_slice(payload);
        out.resize(out.len() + padded(payload.len()) - payload.len(), 0);
    }

    /// Parses the header at the start of `buf` without checking the CRC
    /// (the caller needs the length to find the payload first). `None`:
    /// not a record header of this version.
    pub(crate) fn parse(buf: &[u8]) -> Option<Header> {
        let b = buf.get(..HEADER_LEN)?;
        if b[0..4] != RECORD_MAGIC || b[4] != RECORD_VERSION {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let u32_at =
            |i: usize| u64::from(u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or([0; 4])));
        let lsn = u64_at(16);
        Some(Header {
            kind: b[5],
            flags: u16::from_le_bytes([b[6], b[7]]),
            len: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            lsn,
            origin: u64_at(24),
            txn_first: lsn.checked_sub(u32_at(32))?,
            txn_end: lsn.checked_add(u32_at(36))?,
            group: u64_at(40),
            key: u128::from_le_bytes(b[48..64].try_into().unwrap_or([0; 16])),
        })
    }

    /// The CRC stored in the header at the start of `buf`.
    fn stored_crc(buf: &[u8]) -> u32 {
        u32::from_le_bytes([buf[12], buf[13], buf[14], buf[15]])
    }

    /// Whether the fields are consistent with each other (a header whose
    /// CRC fails but whose fields are plausible probably names the right
    /// message; see `decode_at`).
    pub(crate) fn plausible(&self) -> bool {
        matches!(
            self.kind,
            KIND_BODY | KIND_ENVELOPE | KIND_STATE | KIND_FINISH | KIND_SEAL
        ) && self.flags & !FLAG_COPY == 0
            && self.txn_first <= self.lsn
            && self.lsn <= self.txn_end
            && self.origin <= self.lsn
            && (self.key != 0 || self.kind == KIND_SEAL)
    }
}

fn checksum(header: &[u8; HEADER_LEN], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[0..12]);
    h.update(&header[16..HEADER_LEN]);
    h.update(payload);
    h.finalize()
}

/// What is at an offset of a segment image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A whole record whose CRC verifies; the next one starts at `next`.
    Valid { header: Header, next: usize },
    /// Not a valid record. `header` is the parsed header when its magic,
    /// version and fields look right (only the CRC failed, or the payload
    /// runs past the end), which names the message it probably belongs to.
    Invalid { header: Option<Header> },
}

/// Decodes the record at `at` in `image`.
pub(crate) fn decode_at(image: &[u8], at: usize) -> Decoded {
    let Some(rest) = image.get(at..) else {
        return Decoded::Invalid { header: None };
    };
    let Some(header) = Header::parse(rest) else {
        return Decoded::Invalid { header: None };
    };
    let plausible = header.plausible().then_some(header);
    let total = encoded_len(header.len as usize);
    let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + header.len as usize) else {
        return Decoded::Invalid { header: plausible };
    };
    if total > rest.len() {
        return Decoded::Invalid { header: plausible };
    }
    let mut b = [0u8; HEADER_LEN];
    b.copy_from_slice(&rest[..HEADER_LEN]);
    if checksum(&b, payload) != Header::stored_crc(rest) || plausible.is_none() {
        return Decoded::Invalid { header: plausible };
    }
    Decoded::Valid {
        header,
        next: at + total,
    }
}

/// Verifies a record read back on its own (header and payload as stored)
/// and returns its payload.
pub(crate) fn verify_read(buf: &[u8], expect_lsn: u64) -> Option<&[u8]> {
    match decode_at(buf, 0) {
        Decoded::Valid { header, .. } if header.lsn == expect_lsn => {
            Some(&buf[HEADER_LEN..HEADER_LEN + header.len as usize])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u32) -> Header {
        Header {
            kind: KIND_STATE,
            flags: 0,
            len,
            lsn: 7,
            origin: 7,
            txn_first: 7,
            txn_end: 8,
            group: 3,
            key: 42,
        }
    }

    #[test]
    fn round_trip_and_padding() {
        let mut out = Vec::new();
        header(5).encode(b"hello", &mut out);
        assert_eq!(out.len(), HEADER_LEN + 8);
        match decode_at(&out, 0) {
            Decoded::Valid { header: h, next } => {
                assert_eq!(h, header(5));
                assert_eq!(next, out.len());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(verify_read(&out, 7), Some(&b"hello"[..]));
        assert_eq!(verify_read(&out, 8), None);
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let mut out = Vec::new();
        header(13).encode(b"hello, world!", &mut out);
        for bit in 0..(HEADER_LEN + 13) * 8 {
            let mut bad = out.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(decode_at(&bad, 0), Decoded::Invalid { .. }),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn short_input_is_invalid_not_a_panic() {
        let mut out = Vec::new();
        header(100).encode(&[1; 100], &mut out);
        for cut in 0..out.len() {
            assert!(matches!(decode_at(&out[..cut], 0), Decoded::Invalid { .. }));
        }
        assert!(matches!(
            decode_at(&out, out.len() + 10),
            Decoded::Invalid { header: None }
        ));
    }
}
