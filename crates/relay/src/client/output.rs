//! The client's output buffer: commands and body octets appended at the
//! end, written from the front, possibly in pieces.
//!
//! Written octets are skipped with an offset rather than drained, so a
//! large body written in many short writes costs no repeated copying; the
//! buffer is reset once everything has been written.

/// Octets waiting to be written, in order.
#[derive(Debug, Default)]
pub(super) struct Output {
    buf: Vec<u8>,
    /// Octets of `buf` already written.
    written: usize,
}

impl Output {
    /// What remains to be written.
    pub(super) fn pending(&self) -> &[u8] {
        &self.buf[self.written..]
    }

    /// Marks `n` octets as written (clamped to what there is).
    pub(super) fn consume(&mut self, n: usize) {
        self.written = (self.written + n).min(self.buf.len());
        if self.written == self.buf.len() {
            self.clear();
        }
    }

    /// The buffer to append to (commands encode into a `Vec`).
    pub(super) fn vec(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Appends octets.
    pub(super) fn extend_from_slice(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Drops everything not yet written.
    pub(super) fn clear(&mut self) {
        self.buf.clear();
        self.written = 0;
    }

    pub(super) fn is_empty(&self) -> bool {
        self.written == self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Output;

    #[test]
    fn partial_writes_advance_and_full_writes_reset() {
        let mut out = Output::default();
        out.extend_from_slice(b"MAIL FROM:<>\r\n");
        out.consume(5);
        assert_eq!(out.pending(), b"FROM:<>\r\n");
        out.extend_from_slice(b"DATA\r\n");
        assert_eq!(out.pending(), b"FROM:<>\r\nDATA\r\n");
        out.consume(100);
        assert!(out.is_empty());
        assert_eq!(out.pending(), b"");
        assert_eq!(out.vec().len(), 0, "reset once written");
    }
}
