//! Streaming decoder for the body of a `DATA` transaction (RFC 5321 §4.1.1.4, §4.5.2).
//!
//! After the server's `354` reply the client sends the message as lines, each line
//! starting with `.` "dot-stuffed" (a second `.` prepended), and ends it with a line
//! holding a single `.`: the five octets `CRLF . CRLF`. [`DataDecoder`] turns that
//! byte stream back into the message body:
//!
//! * it removes the stuffed dot at the start of each line;
//! * it recognises **only** `CRLF . CRLF` as the end of data, so that none of the
//!   "SMTP smuggling" variants (`LF . LF`, `CR . CR`, `LF . CRLF`, `CR . LF`,
//!   `CRLF . LF`, ...) can end a message early and smuggle a second message past a
//!   filter or to the next hop;
//! * it counts bare LF and bare CR (line ending octets not part of a CRLF pair), so the
//!   session can reject the message (`550 5.6.11`) or have them rewritten to CRLF;
//! * it enforces a size limit while streaming and never buffers the body.
//!
//! It is sans-IO and works on whatever the caller has read so far: the input may be
//! split at any octet, and every split gives the same body, the same
//! [`DataSummary`] and the same bytes left over after the terminator (those are the
//! next pipelined commands, and they stay in the caller's buffer).
//!
//! # Line starts
//!
//! A *line start* is the position at the very beginning of the body (right after the
//! `354` reply) or right after a `CRLF` pair in the input. Nothing else is a line
//! start: a `.` after a bare LF or a bare CR is ordinary data, it is never unstuffed
//! and it never ends the message. This is the strict reading of RFC 5321 (lines end
//! with CRLF only) and the one that makes smuggling impossible: the decoder and any
//! downstream parser that also honours only CRLF agree on where the message ends.
//!
//! At a line start:
//! * `.` `CRLF` is the end of data (the preceding CRLF belongs to the body; a `.CRLF`
//!   at the very beginning ends an empty message);
//! * any other `.` is removed (RFC 5321 §4.5.2, transparency); the octets after it are
//!   body data, and the position after the removed dot is not a line start, so `..CRLF`
//!   decodes to `.CRLF`.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use postern_proto::data::{DataDecoder, DataStep};
//!
//! let mut decoder = DataDecoder::default();
//! let mut input = BytesMut::from(&b"Subject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n"[..]);
//! let mut body = Vec::new();
//! let summary = loop {
//!     match decoder.decode(&mut input) {
//!         DataStep::Chunk(chunk) => body.extend_from_slice(&chunk),
//!         DataStep::NeedMore => panic!("read more bytes into `input` and call again"),
//!         DataStep::End(summary) => break summary,
//!     }
//! };
//! assert_eq!(body, b"Subject: hi\r\n\r\n.dot\r\n");
//! assert_eq!(summary.size, body.len() as u64);
//! assert!(!summary.has_bare_line_endings());
//! // The pipelined command after the terminator is left for the command parser.
//! assert_eq!(&input[..], b"QUIT\r\n");
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use memchr::memchr2_iter;

/// What the decoder does with bare LF and bare CR octets in the body.
///
/// Either way they are counted in [`DataSummary::bare_lf`] and
/// [`DataSummary::bare_cr`], so the session can apply its policy (for example reject
/// with `550 5.6.11` when any was seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum BareLineEndings {
    /// Pass them through unchanged. Chunks are always zero-copy slices of the input.
    #[default]
    Keep,
    /// Rewrite each bare LF and each bare CR to CRLF in the emitted chunks, and count
    /// the rewritten octets in [`DataSummary::size`]. Only the chunks that contain a
    /// bare line ending are copied.
    ///
    /// Line starts are still decided on the *input* (see the [module docs](self)): a
    /// `.` after a bare LF is not unstuffed, so the normalised body may contain a line
    /// of a single `.`. Whoever retransmits the body dot-stuffs it, as for any body.
    Normalize,
}

/// Settings of a [`DataDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub struct DataConfig {
    /// Largest body, in decoded octets, the caller accepts (`None`: no limit).
    ///
    /// Once the body grows past it the decoder emits no more chunks but keeps reading
    /// up to the terminator, so that the session can answer `552` at the right point
    /// of the stream, and reports [`DataSummary::exceeded_limit`].
    pub max_size: Option<u64>,
    /// What to do with bare LF / bare CR octets.
    pub bare_line_endings: BareLineEndings,
}

impl DataConfig {
    /// A size limit (`None`: none) and a bare-line-ending treatment.
    pub const fn new(max_size: Option<u64>, bare_line_endings: BareLineEndings) -> Self {
        Self {
            max_size,
            bare_line_endings,
        }
    }
}

/// Facts about a decoded body, reported with [`DataStep::End`] (and available while
/// decoding from [`DataDecoder::summary`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct DataSummary {
    /// Decoded body size in octets (after unstuffing and, in
    /// [`BareLineEndings::Normalize`] mode, after rewriting). Counted in full even past
    /// [`DataConfig::max_size`].
    pub size: u64,
    /// The body was larger than [`DataConfig::max_size`]; only its first `max_size`
    /// octets were emitted.
    pub exceeded_limit: bool,
    /// Number of LF octets not preceded by CR.
    pub bare_lf: u64,
    /// Number of CR octets not followed by LF.
    pub bare_cr: u64,
}

impl DataSummary {
    /// Whether the body held any bare LF or bare CR (RFC 5321 §2.3.8 forbids both).
    pub fn has_bare_line_endings(&self) -> bool {
        self.bare_lf != 0 || self.bare_cr != 0
    }
}

/// The result of one [`DataDecoder::decode`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataStep {
    /// The next piece of the body, in order. Call `decode` again.
    Chunk(Bytes),
    /// Every decidable octet of the input has been consumed; read more bytes into the
    /// same buffer and call `decode` again. Up to two octets (a `.` or `.CR` at a line
    /// start, or a final `CR`) may stay in the buffer until the next octet decides what
    /// they are.
    NeedMore,
    /// The terminator `CRLF.CRLF` has been consumed; the buffer now starts with the
    /// octets that followed it. Further calls return `End` again and consume nothing.
    End(DataSummary),
}

/// Streaming, zero-copy decoder of a `DATA` body. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct DataDecoder {
    config: DataConfig,
    /// The next input octet is at a line start (body start or after CRLF).
    line_start: bool,
    finished: bool,
    summary: DataSummary,
    /// Output buffer of [`BareLineEndings::Normalize`]; reused, so that once the
    /// caller drops a copied chunk its memory serves the next one.
    scratch: BytesMut,
}

impl Default for DataDecoder {
    fn default() -> Self {
        Self::new(DataConfig::default())
    }
}

/// One run of body octets that can be emitted as a single chunk.
#[derive(Debug, PartialEq, Eq)]
struct Region {
    /// Input octets in the run.
    len: usize,
    /// LF octets in the run not preceded by CR.
    bare_lf: u64,
    /// CR octets in the run not followed by LF.
    bare_cr: u64,
    /// The run ends with CRLF, so the octet after it is at a line start.
    ends_at_line_start: bool,
}

impl DataDecoder {
    /// A decoder for one message body, positioned right after the `354` reply.
    pub fn new(config: DataConfig) -> Self {
        Self {
            config,
            line_start: true,
            finished: false,
            summary: DataSummary::default(),
            scratch: BytesMut::new(),
        }
    }

    /// The settings this decoder was built with.
    pub fn config(&self) -> &DataConfig {
        &self.config
    }

    /// Whether the terminator has been consumed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The summary so far: final once [`is_finished`](Self::is_finished) is true. A
    /// session may check [`DataSummary::exceeded_limit`] early, e.g. to stop spooling.
    pub fn summary(&self) -> DataSummary {
        self.summary
    }

    /// Consumes octets from the front of `input` and returns at most one body chunk.
    ///
    /// Call it in a loop until it returns [`DataStep::NeedMore`] (append more octets
    /// to `input`, then call again) or [`DataStep::End`] (whatever follows the
    /// terminator is still in `input`). Chunks are `input.split_to(n).freeze()` slices
    /// unless [`BareLineEndings::Normalize`] has to rewrite a bare line ending in them.
    pub fn decode(&mut self, input: &mut BytesMut) -> DataStep {
        if self.finished {
            return DataStep::End(self.summary);
        }
        loop {
            if self.line_start {
                match input[..] {
                    // Undecidable yet: the terminator or a stuffed dot.
                    [] | [b'.'] | [b'.', b'\r'] => return DataStep::NeedMore,
                    [b'.', b'\r', b'\n', ..] => {
                        input.advance(3);
                        self.finished = true;
                        return DataStep::End(self.summary);
                    }
                    [b'.', ..] => input.advance(1),
                    _ => {}
                }
                self.line_start = false;
            }

            let region = scan(input);
            if region.len == 0 {
                // Only a final CR is left: CRLF or bare CR depends on the next octet.
                return DataStep::NeedMore;
            }
            let bare = region.bare_lf + region.bare_cr;
            self.summary.bare_lf += region.bare_lf;
            self.summary.bare_cr += region.bare_cr;
            self.line_start = region.ends_at_line_start;

            let normalize =
                bare != 0 && self.config.bare_line_endings == BareLineEndings::Normalize;
            // Each bare octet becomes a two-octet CRLF when normalising.
            let out_len = region.len as u64 + if normalize { bare } else { 0 };
            let room = match self.config.max_size {
                None => out_len,
                Some(max) => max.saturating_sub(self.summary.size).min(out_len),
            };
            self.summary.size += out_len;
            if room < out_len {
                self.summary.exceeded_limit = true;
            }
            if room == 0 {
                // Past the limit: keep counting and looking for the terminator only.
                input.advance(region.len);
                continue;
            }
            // `room <= out_len`, which is at most twice `region.len`: fits in usize.
            let room = room as usize;
            let chunk = if normalize {
                normalize_into(&input[..region.len], &mut self.scratch);
                input.advance(region.len);
                self.scratch.truncate(room);
                self.scratch.split().freeze()
            } else {
                let mut chunk = input.split_to(region.len);
                chunk.truncate(room);
                chunk.freeze()
            };
            return DataStep::Chunk(chunk);
        }
    }
}

/// Octets checked per step of the hot loop of [`scan`].
const BLOCK: usize = 128;
/// Octets checked per step when narrowing down an irregular [`BLOCK`].
const SUB_BLOCK: usize = 16;

/// Finds the longest run at the front of `buf` (which is not at a line start) that can
/// be emitted now: up to the next CRLF that is followed by `.` or by the end of the
/// input, or else up to the end of the input, minus a final CR (whether that one is
/// bare depends on the next octet).
///
/// Looks at each pair of adjacent octets `(p, c)`: `p = CR` with `c != LF` is a bare
/// CR, `c = LF` with `p != CR` a bare LF, and `p = LF`, `c = .` a dot at a line start
/// if the LF ends a CRLF. Whole blocks without any of these are skipped by the
/// vectorised [`is_plain`]; only the sub-block that has one is walked octet by octet.
///
/// The caller never leaves a CR consumed whose successor is unknown, so an LF at
/// `buf[0]` is bare.
///
/// The alternatives tried (a rare-octet filter before the pair check, `memchr2` per
/// line, `memmem` for the dot plus a separate pair pass, bit masks) were measured
/// slower; docs/performance.md gives the figures and the floor of this check.
///
/// The same portable loop is compiled twice, for the x86-64 baseline (SSE2, 16 octets
/// per compare) and with AVX2 (32), and the copy to run is chosen from the CPU's
/// features on the first call and then called through a cached function pointer: one
/// relaxed atomic load and one indirect call per region, i.e. per `decode` call.
/// The `multiversion` crate generates the clones and that dispatch; its expansion is
/// the only `unsafe` involved (calling a `#[target_feature]` function after having
/// detected the feature), and it sits in the crate's macro, not in this source.
#[multiversion::multiversion(targets("x86_64+avx2"))]
fn scan(buf: &[u8]) -> Region {
    scan_portable(buf)
}

/// The body of [`scan`], inlined into each of its per-CPU copies. Called directly only
/// by the test that checks the dispatched copy against the baseline one.
#[inline(always)]
fn scan_portable(buf: &[u8]) -> Region {
    let n = buf.len();
    let mut region = Region {
        len: n,
        bare_lf: u64::from(buf.first() == Some(&b'\n')),
        bare_cr: 0,
        ends_at_line_start: false,
    };
    // `k` indexes the second octet of the next pair to check.
    let mut k = 1;
    while k < n {
        while is_plain::<BLOCK>(buf, k) {
            k += BLOCK;
        }
        while is_plain::<SUB_BLOCK>(buf, k) {
            k += SUB_BLOCK;
        }
        let end = (k + SUB_BLOCK).min(n);
        for j in k..end {
            let (p, c) = (buf[j - 1], buf[j]);
            region.bare_cr += u64::from(p == b'\r' && c != b'\n');
            region.bare_lf += u64::from(c == b'\n' && p != b'\r');
            if p == b'\n' && c == b'.' && j >= 2 && buf[j - 2] == b'\r' {
                region.len = j;
                region.ends_at_line_start = true;
                return region;
            }
        }
        k = end;
    }
    if buf.last() == Some(&b'\r') {
        region.len = n - 1;
    } else {
        region.ends_at_line_start = buf.ends_with(b"\r\n");
    }
    region
}

/// Whether the `N` octet pairs `(buf[i - 1], buf[i])` for `i` in `k..k + N` all lie in
/// `buf` and none of them is a bare CR, a bare LF or an LF followed by a dot.
///
/// Branch-free over fixed-size arrays so that the compiler turns it into SIMD compares
/// (16 octets per instruction with the x86-64 baseline, 32 with AVX2 enabled); this is
/// the hot loop of the decoder.
#[inline(always)]
fn is_plain<const N: usize>(buf: &[u8], k: usize) -> bool {
    let Some(window) = buf.get(k - 1..k + N) else {
        return false;
    };
    let (Ok(prev), Ok(cur)) = (
        <&[u8; N]>::try_from(&window[..N]),
        <&[u8; N]>::try_from(&window[1..]),
    ) else {
        return false;
    };
    let mut odd = 0u8;
    for (&p, &c) in prev.iter().zip(cur) {
        odd |= (u8::from(c == b'\n') ^ u8::from(p == b'\r'))
            | (u8::from(p == b'\n') & u8::from(c == b'.'));
    }
    odd == 0
}

/// Appends `src` to `out` with each bare LF and bare CR rewritten to CRLF.
///
/// A CR at the very end of `src` is bare: `scan` ends a run after a CR only when the
/// octet after it is known and is not LF.
fn normalize_into(src: &[u8], out: &mut BytesMut) {
    out.reserve(src.len() * 2);
    let mut copied = 0;
    for i in memchr2_iter(b'\r', b'\n', src) {
        let bare = if src[i] == b'\r' {
            src.get(i + 1) != Some(&b'\n')
        } else {
            i == 0 || src[i - 1] != b'\r'
        };
        if bare {
            out.put_slice(&src[copied..i]);
            out.put_slice(b"\r\n");
            copied = i + 1;
        }
    }
    out.put_slice(&src[copied..]);
}

/// `src` with each bare CR and bare LF rewritten to CRLF, as
/// [`BareLineEndings::Normalize`] and the relay's default send them;
/// borrowed when there is none. For whoever must see a message as it will
/// be sent, e.g. to sign it.
pub fn crlf_line_endings(src: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let bare = memchr2_iter(b'\r', b'\n', src).any(|i| {
        if src[i] == b'\r' {
            src.get(i + 1) != Some(&b'\n')
        } else {
            i == 0 || src[i - 1] != b'\r'
        }
    });
    if !bare {
        return std::borrow::Cow::Borrowed(src);
    }
    let mut out = BytesMut::new();
    normalize_into(src, &mut out);
    std::borrow::Cow::Owned(out.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_line_endings_rewrites_bare_ones_only() {
        assert!(matches!(
            crlf_line_endings(b"a\r\nb"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            &crlf_line_endings(b"a\nb\rc\r\n\r")[..],
            b"a\r\nb\r\nc\r\n\r\n"
        );
        assert_eq!(&crlf_line_endings(b"\n\r\r\n")[..], b"\r\n\r\n\r\n");
    }

    fn run(config: DataConfig, input: &[u8]) -> (Vec<u8>, Option<DataSummary>, Vec<u8>) {
        let mut decoder = DataDecoder::new(config);
        let mut buf = BytesMut::from(input);
        let mut body = Vec::new();
        loop {
            match decoder.decode(&mut buf) {
                DataStep::Chunk(c) => body.extend_from_slice(&c),
                DataStep::NeedMore => return (body, None, buf.to_vec()),
                DataStep::End(s) => return (body, Some(s), buf.to_vec()),
            }
        }
    }

    #[test]
    fn scan_stops_at_line_start_dot() {
        let r = scan(b"ab\r\ncd\r\n.x");
        assert_eq!(r.len, 8);
        assert_eq!(r.bare_lf + r.bare_cr, 0);
        assert!(r.ends_at_line_start);
    }

    #[test]
    fn scan_holds_final_cr() {
        let r = scan(b"ab\ncd\r");
        assert_eq!(r.len, 5);
        assert_eq!(r.bare_lf, 1);
        assert!(!r.ends_at_line_start);
    }

    /// The dispatched `scan` (the AVX2 copy on a CPU that has it) and the baseline
    /// build of the same loop agree on pseudo-random inputs rich in CR, LF and dots,
    /// at every length up to a few blocks, so both copies are held to the same answers.
    #[test]
    fn dispatched_scan_matches_baseline() {
        const ALPHABET: &[u8] = b"\r\n.\r\nab";
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut buf = Vec::new();
        for round in 0..4_000 {
            buf.clear();
            let len = round % 600;
            for _ in 0..len {
                // xorshift64: deterministic, no dev-dependency needed.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // CR, LF and dots from every octet to one in 256, so that inputs range
                // from all-irregular to whole plain blocks.
                let pick = (state >> 32) as usize;
                buf.push(if pick.is_multiple_of(1 << (round % 9)) {
                    ALPHABET[(pick >> 3) % ALPHABET.len()]
                } else {
                    b'x'
                });
            }
            assert_eq!(scan(&buf), scan_portable(&buf), "input {buf:?}");
        }
    }

    #[test]
    fn normalize_rewrites_only_bare() {
        let mut out = BytesMut::new();
        normalize_into(b"\na\rb\r\nc\r", &mut out);
        assert_eq!(&out[..], b"\r\na\r\nb\r\nc\r\n");
    }

    #[test]
    fn crlf_split_across_calls_is_not_bare() {
        let mut decoder = DataDecoder::default();
        let mut buf = BytesMut::from(&b"a\r"[..]);
        assert_eq!(
            decoder.decode(&mut buf),
            DataStep::Chunk(Bytes::from_static(b"a"))
        );
        assert_eq!(decoder.decode(&mut buf), DataStep::NeedMore);
        assert_eq!(&buf[..], b"\r");
        buf.extend_from_slice(b"\n.\r\n");
        assert_eq!(
            decoder.decode(&mut buf),
            DataStep::Chunk(Bytes::from_static(b"\r\n"))
        );
        let DataStep::End(s) = decoder.decode(&mut buf) else {
            panic!("not ended")
        };
        assert_eq!(
            s,
            DataSummary {
                size: 3,
                ..DataSummary::default()
            }
        );
    }

    #[test]
    fn end_is_sticky_and_consumes_nothing() {
        let (_, s, rest) = run(DataConfig::default(), b".\r\nNOOP\r\n");
        assert_eq!(s, Some(DataSummary::default()));
        assert_eq!(rest, b"NOOP\r\n");
        let mut decoder = DataDecoder::default();
        let mut buf = BytesMut::from(&b".\r\nNOOP\r\n"[..]);
        assert!(matches!(decoder.decode(&mut buf), DataStep::End(_)));
        assert!(decoder.is_finished());
        assert!(matches!(decoder.decode(&mut buf), DataStep::End(_)));
        assert_eq!(&buf[..], b"NOOP\r\n");
    }
}
