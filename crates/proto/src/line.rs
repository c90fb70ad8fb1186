//! Line framing for the command channel: only CRLF ends a line, lines are
//! bounded, and an over-long line is discarded as it streams in instead of
//! being buffered whole. A bare LF is reported wherever it is, the end of
//! a discarded over-long line included, so it never makes a line boundary
//! the caller does not hear of (unless bare LF line ends are allowed, for
//! legacy clients).

use memchr::memchr;

use crate::error::SyntaxError;

/// Line length limits (RFC 5321 §4.5.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LineLimits {
    /// Longest command line, CRLF included. RFC 5321 §4.5.3.1.4: 512.
    pub command: usize,
    /// Longest AUTH line (the command with an initial response, and each
    /// continuation line), CRLF included. SASL tokens such as OAuth bearer
    /// tokens exceed 512 octets; RFC 4954 §4 lifts the limit for AUTH.
    pub auth: usize,
}

impl LineLimits {
    /// Limits for command lines and AUTH lines, CRLF included.
    pub const fn new(command: usize, auth: usize) -> Self {
        Self { command, auth }
    }
}

impl Default for LineLimits {
    fn default() -> Self {
        Self {
            command: 512,
            auth: 12 * 1024,
        }
    }
}

/// One step of framing: where the next line is, or why there is none yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line occupies `buf[start..start + len]` (without CRLF);
    /// `consumed` bytes (through the LF, plus any discarded prefix) are used.
    Line {
        /// Offset of the line's first byte.
        start: usize,
        /// Length of the line without CRLF.
        len: usize,
        /// Bytes to drop from the buffer.
        consumed: usize,
    },
    /// No complete line yet. `consumed` bytes at the front were discarded
    /// (the rest of an over-long line) and can be dropped.
    Incomplete {
        /// Bytes to drop from the buffer.
        consumed: usize,
    },
    /// A line was refused; `consumed` bytes are used up.
    Error {
        /// What was wrong with it.
        error: SyntaxError,
        /// Bytes to drop from the buffer.
        consumed: usize,
    },
}

/// Finds CRLF-terminated lines in a byte stream, enforcing a length limit.
///
/// The framer is a small state machine: after reporting
/// [`SyntaxError::LineTooLong`], it discards input until the next LF so the caller
/// never holds more than `limit` bytes of one line. Should that LF be bare,
/// [`SyntaxError::BareLf`] is reported for it.
#[derive(Debug, Clone, Default)]
pub struct LineFramer {
    discarding: bool,
    /// While discarding: whether the last octet dropped was a CR (the LF
    /// ending the line may arrive in the next read).
    discarded_cr: bool,
    bare_lf: bool,
}

impl LineFramer {
    /// A framer at the start of a line.
    pub fn new() -> Self {
        Self::default()
    }

    /// A framer that also takes a bare LF as a line end (the line is what
    /// precedes it), for legacy clients only: a CR inside the line is
    /// still an error.
    pub fn with_bare_lf(mut self, allow: bool) -> Self {
        self.bare_lf = allow;
        self
    }

    /// Whether a bare LF ends a line.
    pub fn allows_bare_lf(&self) -> bool {
        self.bare_lf
    }

    /// True while the rest of an over-long line is being discarded.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// Forgets any partial state (used when the stream restarts, e.g. after
    /// STARTTLS).
    pub fn reset(&mut self) {
        self.discarding = false;
        self.discarded_cr = false;
    }

    /// Frames the next line of `buf`, which is at most `limit` octets long,
    /// CRLF included. A CR inside the line is reported as [`SyntaxError::BareCr`].
    #[inline]
    pub fn frame(&mut self, buf: &[u8], limit: usize) -> Frame {
        self.frame_inner(buf, limit, true)
    }

    /// Like [`LineFramer::frame`], but leaves a CR inside the line for the
    /// caller to find. For callers whose grammar admits no CR anywhere (every
    /// SMTP command), which report it when the line fails to parse: one scan
    /// of the line fewer on the hot path.
    #[inline]
    pub fn frame_allowing_cr(&mut self, buf: &[u8], limit: usize) -> Frame {
        self.frame_inner(buf, limit, false)
    }

    #[inline]
    fn frame_inner(&mut self, buf: &[u8], limit: usize, check_cr: bool) -> Frame {
        let mut skipped = 0;
        if self.discarding {
            match memchr(b'\n', buf) {
                Some(lf) => {
                    skipped = lf + 1;
                    self.discarding = false;
                    let after_cr = if lf == 0 {
                        self.discarded_cr
                    } else {
                        buf[lf - 1] == b'\r'
                    };
                    self.discarded_cr = false;
                    if !after_cr && !self.bare_lf {
                        return Frame::Error {
                            error: SyntaxError::BareLf,
                            consumed: skipped,
                        };
                    }
                }
                None => {
                    // An empty read says nothing about the last octet.
                    if let Some(&last) = buf.last() {
                        self.discarded_cr = last == b'\r';
                    }
                    return Frame::Incomplete {
                        consumed: buf.len(),
                    };
                }
            }
        }
        let rest = &buf[skipped..];
        let window = &rest[..rest.len().min(limit)];
        match memchr(b'\n', window) {
            Some(lf) => {
                let consumed = skipped + lf + 1;
                let after_cr = lf > 0 && rest[lf - 1] == b'\r';
                if !after_cr && !self.bare_lf {
                    return Frame::Error {
                        error: SyntaxError::BareLf,
                        consumed,
                    };
                }
                let len = if after_cr { lf - 1 } else { lf };
                if check_cr && memchr(b'\r', &rest[..len]).is_some() {
                    return Frame::Error {
                        error: SyntaxError::BareCr,
                        consumed,
                    };
                }
                Frame::Line {
                    start: skipped,
                    len,
                    consumed,
                }
            }
            None if rest.len() >= limit => {
                // The line is too long; drop it through its LF if that has
                // arrived, and otherwise drop everything and keep discarding.
                let consumed = match memchr(b'\n', &rest[window.len()..]) {
                    Some(lf)
                        if {
                            let at = window.len() + lf;
                            self.bare_lf || (at > 0 && rest[at - 1] == b'\r')
                        } =>
                    {
                        skipped + window.len() + lf + 1
                    }
                    // A bare LF ends it: discard up to it, so the next
                    // call reports the bare LF, as it would had the line
                    // arrived in pieces.
                    Some(_) => {
                        self.discarding = true;
                        self.discarded_cr = window.last() == Some(&b'\r');
                        skipped + window.len()
                    }
                    None => {
                        self.discarding = true;
                        self.discarded_cr = buf.last() == Some(&b'\r');
                        buf.len()
                    }
                };
                Frame::Error {
                    error: SyntaxError::LineTooLong { limit },
                    consumed,
                }
            }
            None => Frame::Incomplete { consumed: skipped },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_crlf_lines() {
        let mut f = LineFramer::new();
        assert_eq!(
            f.frame(b"NOOP\r\nQUIT\r\n", 512),
            Frame::Line {
                start: 0,
                len: 4,
                consumed: 6
            }
        );
        assert_eq!(f.frame(b"NOOP\r", 512), Frame::Incomplete { consumed: 0 });
    }

    #[test]
    fn bare_lf_and_bare_cr_are_errors_of_their_own() {
        let mut f = LineFramer::new();
        assert_eq!(
            f.frame(b"NOOP\nQUIT\r\n", 512),
            Frame::Error {
                error: SyntaxError::BareLf,
                consumed: 5
            }
        );
        assert_eq!(
            f.frame(b"\n", 512),
            Frame::Error {
                error: SyntaxError::BareLf,
                consumed: 1
            }
        );
        assert_eq!(
            f.frame(b"NO\rOP\r\n", 512),
            Frame::Error {
                error: SyntaxError::BareCr,
                consumed: 7
            }
        );
    }

    #[test]
    fn a_bare_lf_ending_an_over_long_line_is_reported() {
        // Whole: too long first, then the bare LF, as when split.
        let mut f = LineFramer::new();
        let long = [b"a".repeat(20), b"\nNOOP\r\n".to_vec()].concat();
        assert_eq!(
            f.frame(&long, 10),
            Frame::Error {
                error: SyntaxError::LineTooLong { limit: 10 },
                consumed: 10
            }
        );
        assert_eq!(
            f.frame(&long[10..], 10),
            Frame::Error {
                error: SyntaxError::BareLf,
                consumed: 11
            }
        );
        // Discarding across reads: the LF is bare, or after a CR read before.
        let mut f = LineFramer::new();
        assert!(matches!(f.frame(&[b'a'; 20], 10), Frame::Error { .. }));
        assert_eq!(
            f.frame(b"aa\nNOOP\r\n", 10),
            Frame::Error {
                error: SyntaxError::BareLf,
                consumed: 3
            }
        );
        let mut f = LineFramer::new();
        assert!(matches!(
            f.frame(b"aaaaaaaaaaaa\r", 10),
            Frame::Error { .. }
        ));
        assert_eq!(
            f.frame(b"\nNOOP\r\n", 10),
            Frame::Line {
                start: 1,
                len: 4,
                consumed: 7
            }
        );
    }

    #[test]
    fn legacy_framer_takes_bare_lf_as_a_line_end_but_not_bare_cr() {
        let mut f = LineFramer::new().with_bare_lf(true);
        assert!(f.allows_bare_lf());
        assert_eq!(
            f.frame(b"NOOP\nQUIT\r\n", 512),
            Frame::Line {
                start: 0,
                len: 4,
                consumed: 5
            }
        );
        assert_eq!(
            f.frame(b"QUIT\r\n", 512),
            Frame::Line {
                start: 0,
                len: 4,
                consumed: 6
            }
        );
        assert_eq!(
            f.frame(b"NO\rOP\n", 512),
            Frame::Error {
                error: SyntaxError::BareCr,
                consumed: 6
            }
        );
    }

    #[test]
    fn limit_counts_crlf() {
        let mut f = LineFramer::new();
        let ok = [b"a".repeat(8), b"\r\n".to_vec()].concat();
        assert!(matches!(f.frame(&ok, 10), Frame::Line { len: 8, .. }));
        let long = [b"a".repeat(9), b"\r\nQUIT\r\n".to_vec()].concat();
        assert_eq!(
            f.frame(&long, 10),
            Frame::Error {
                error: SyntaxError::LineTooLong { limit: 10 },
                consumed: 11
            }
        );
        assert!(
            !f.is_discarding(),
            "the LF already arrived, nothing left to discard"
        );
    }

    #[test]
    fn over_long_line_is_discarded_as_it_streams() {
        let mut f = LineFramer::new();
        assert_eq!(
            f.frame(&[b'x'; 16], 8),
            Frame::Error {
                error: SyntaxError::LineTooLong { limit: 8 },
                consumed: 16
            }
        );
        assert!(f.is_discarding());
        assert_eq!(
            f.frame(&[b'x'; 100], 8),
            Frame::Incomplete { consumed: 100 }
        );
        assert_eq!(
            f.frame(b"xx\r\nQUIT\r\n", 8),
            Frame::Line {
                start: 4,
                len: 4,
                consumed: 10
            }
        );
        assert!(!f.is_discarding());
    }
}
