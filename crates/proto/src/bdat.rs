//! Streaming reader for the octets of one `BDAT` chunk (RFC 3030, `CHUNKING`).
//!
//! `BDAT <size> [LAST]` is followed by exactly `size` octets of message data. Unlike
//! `DATA` there is no dot-stuffing and no terminator, and the octets are not
//! interpreted at all: line endings, dots and NULs pass through unchanged (the chunk
//! may be `BINARYMIME`). [`BdatReader`] takes exactly that many octets from the
//! caller's buffer, zero-copy, and leaves whatever follows (the next pipelined command)
//! in the buffer. The input may be split at any octet.
//!
//! When the session refuses a `BDAT` command it must still consume the announced
//! octets, or it would parse message data as commands; [`BdatReader::discard`] does
//! that without handing out chunks.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use postern_proto::bdat::{BdatReader, BdatStep};
//!
//! let mut reader = BdatReader::new(5, true);
//! let mut input = BytesMut::from(&b"he"[..]);
//! let mut body = Vec::new();
//! let last = loop {
//!     match reader.read(&mut input) {
//!         BdatStep::Chunk(chunk) => body.extend_from_slice(&chunk),
//!         // A real caller reads from its socket here.
//!         BdatStep::NeedMore => input.extend_from_slice(b"llo\r\nQUIT\r\n"),
//!         BdatStep::Done { last } => break last,
//!     }
//! };
//! assert_eq!(body, b"hello");
//! assert!(last);
//! assert_eq!(&input[..], b"\r\nQUIT\r\n");
//! ```

use bytes::{Buf, Bytes, BytesMut};

/// The result of one [`BdatReader::read`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BdatStep {
    /// The next piece of the chunk, in order. Call `read` again.
    Chunk(Bytes),
    /// The buffer is empty and octets of the chunk are still due: read more into the
    /// same buffer and call `read` again.
    NeedMore,
    /// All octets of the chunk have been consumed; the buffer now starts with whatever
    /// followed them. Further calls return `Done` again and consume nothing.
    Done {
        /// The command was `BDAT <size> LAST`: the message is complete.
        last: bool,
    },
}

/// Reads the octets of one `BDAT` chunk. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BdatReader {
    remaining: u64,
    last: bool,
    discard: bool,
}

impl BdatReader {
    /// A reader for the `chunk_size` octets announced by `BDAT chunk_size [LAST]`.
    pub fn new(chunk_size: u64, last: bool) -> Self {
        Self {
            remaining: chunk_size,
            last,
            discard: false,
        }
    }

    /// A reader that consumes the `chunk_size` octets of a refused `BDAT` command
    /// without emitting them: [`read`](Self::read) only ever returns
    /// [`BdatStep::NeedMore`] or [`BdatStep::Done`].
    pub fn discard(chunk_size: u64, last: bool) -> Self {
        Self {
            remaining: chunk_size,
            last,
            discard: true,
        }
    }

    /// Switches to discarding the rest of the chunk, e.g. when the message turned out
    /// to be over the size limit mid-chunk.
    pub fn discard_rest(&mut self) {
        self.discard = true;
    }

    /// Whether the reader drops the octets instead of emitting them.
    pub fn is_discarding(&self) -> bool {
        self.discard
    }

    /// Octets of the chunk not yet consumed.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Whether the command carried `LAST`.
    pub fn is_last(&self) -> bool {
        self.last
    }

    /// Whether every octet of the chunk has been consumed.
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// Consumes octets of the chunk from the front of `input` and returns at most one
    /// piece of it, as a zero-copy `input.split_to(n).freeze()` slice.
    ///
    /// Call it in a loop until it returns [`BdatStep::NeedMore`] (append more octets
    /// to `input`, then call again) or [`BdatStep::Done`] (octets after the chunk are
    /// still in `input`).
    pub fn read(&mut self, input: &mut BytesMut) -> BdatStep {
        if self.remaining == 0 {
            return BdatStep::Done { last: self.last };
        }
        if input.is_empty() {
            return BdatStep::NeedMore;
        }
        // Bounded by `input.len()`, so the cast back to usize is lossless.
        let n = self.remaining.min(input.len() as u64) as usize;
        self.remaining -= n as u64;
        if self.discard {
            input.advance(n);
            return if self.remaining == 0 {
                BdatStep::Done { last: self.last }
            } else {
                BdatStep::NeedMore
            };
        }
        BdatStep::Chunk(input.split_to(n).freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_size_is_done_at_once() {
        let mut reader = BdatReader::new(0, true);
        let mut input = BytesMut::new();
        assert_eq!(reader.read(&mut input), BdatStep::Done { last: true });
        let mut input = BytesMut::from(&b"QUIT\r\n"[..]);
        assert_eq!(reader.read(&mut input), BdatStep::Done { last: true });
        assert_eq!(&input[..], b"QUIT\r\n");
    }

    #[test]
    fn discard_consumes_exactly() {
        let mut reader = BdatReader::discard(4, false);
        let mut input = BytesMut::from(&b"ab"[..]);
        assert_eq!(reader.read(&mut input), BdatStep::NeedMore);
        assert_eq!(reader.remaining(), 2);
        input.extend_from_slice(b"cdRSET\r\n");
        assert_eq!(reader.read(&mut input), BdatStep::Done { last: false });
        assert_eq!(&input[..], b"RSET\r\n");
    }

    #[test]
    fn discard_rest_mid_chunk() {
        let mut reader = BdatReader::new(6, true);
        let mut input = BytesMut::from(&b"abc"[..]);
        assert_eq!(
            reader.read(&mut input),
            BdatStep::Chunk(Bytes::from_static(b"abc"))
        );
        reader.discard_rest();
        assert!(reader.is_discarding());
        input.extend_from_slice(b"defX");
        assert_eq!(reader.read(&mut input), BdatStep::Done { last: true });
        assert!(reader.is_done());
        assert_eq!(&input[..], b"X");
    }
}
