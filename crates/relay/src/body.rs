//! Body encoding for the wire: line endings and dot-stuffing.
//!
//! For DATA (RFC 5321 §4.5.2) every line starting with `.` gets a second
//! `.`, the body is ended with CRLF if it does not end so already, and
//! `.CRLF` follows. A bare CR or LF is normalised to CRLF or refused, by
//! option; left alone it would let the receiving side see a different line
//! structure (and, with `\n.\n`, a different end of message) than a
//! CRLF-strict server does.

use memchr::memchr2;

/// What to do with a bare CR or LF in a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LineEndings {
    /// Rewrite each bare CR or LF as CRLF.
    #[default]
    Normalise,
    /// Fail the message permanently ([`RelayError::BareLineEnding`](crate::RelayError::BareLineEnding)).
    Refuse,
}

/// A bare CR or LF was found and [`LineEndings::Refuse`] is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BareLineEnding;

/// The body framed for DATA: normalised, dot-stuffed, and terminated by
/// `CRLF.CRLF`, appended to `out`.
pub(crate) fn encode_data(
    body: &[u8],
    endings: LineEndings,
    out: &mut Vec<u8>,
) -> Result<(), BareLineEnding> {
    encode(body, endings, true, out)?;
    out.extend_from_slice(b".\r\n");
    Ok(())
}

/// The body with line endings normalised (for BDAT: no stuffing, no
/// terminator), appended to `out`.
pub(crate) fn encode_chunked(
    body: &[u8],
    endings: LineEndings,
    out: &mut Vec<u8>,
) -> Result<(), BareLineEnding> {
    encode(body, endings, false, out)
}

fn encode(
    body: &[u8],
    endings: LineEndings,
    stuff: bool,
    out: &mut Vec<u8>,
) -> Result<(), BareLineEnding> {
    out.reserve(body.len() + body.len() / 64 + 8);
    let start = out.len();
    let mut rest = body;
    let mut line_start = true;
    while !rest.is_empty() {
        if stuff && line_start && rest[0] == b'.' {
            out.push(b'.');
        }
        match memchr2(b'\r', b'\n', rest) {
            None => {
                out.extend_from_slice(rest);
                line_start = false;
                break;
            }
            Some(i) => {
                out.extend_from_slice(&rest[..i]);
                let crlf = rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n');
                if !crlf && endings == LineEndings::Refuse {
                    out.truncate(start);
                    return Err(BareLineEnding);
                }
                out.extend_from_slice(b"\r\n");
                rest = &rest[i + if crlf { 2 } else { 1 }..];
                line_start = true;
            }
        }
    }
    if stuff && !line_start {
        out.extend_from_slice(b"\r\n");
    }
    Ok(())
}

/// True when the body has an octet above 127 (needs 8BITMIME).
pub(crate) fn is_eight_bit(body: &[u8]) -> bool {
    !body.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_data(body, LineEndings::Normalise, &mut out).unwrap();
        out
    }

    #[test]
    fn terminator_and_stuffing() {
        assert_eq!(data(b""), b".\r\n");
        assert_eq!(data(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(data(b"a"), b"a\r\n.\r\n");
        assert_eq!(data(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(data(b"x\r\n.y\r\n..z"), b"x\r\n..y\r\n...z\r\n.\r\n");
        assert_eq!(data(b"a.b\r\n"), b"a.b\r\n.\r\n");
    }

    #[test]
    fn bare_endings_are_normalised() {
        // The smuggling shapes: none of them may end the body early.
        assert_eq!(data(b"a\n.\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(data(b"a\r.\rb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(data(b"a\n.\r\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(data(b"a\r"), b"a\r\n.\r\n");
    }

    #[test]
    fn bare_endings_can_be_refused() {
        let mut out = b"keep".to_vec();
        assert_eq!(
            encode_data(b"a\nb", LineEndings::Refuse, &mut out),
            Err(BareLineEnding)
        );
        assert_eq!(out, b"keep");
        assert!(encode_data(b"a\r\nb\r\n", LineEndings::Refuse, &mut out).is_ok());
    }

    #[test]
    fn chunked_is_not_stuffed() {
        let mut out = Vec::new();
        encode_chunked(b".a\nb", LineEndings::Normalise, &mut out).unwrap();
        assert_eq!(out, b".a\r\nb");
    }

    proptest::proptest! {
        /// Whatever the body, the encoded form contains exactly one
        /// CRLF.CRLF (at its end) and unstuffs back to the normalised body.
        #[test]
        fn data_round_trips(body in proptest::collection::vec(proptest::sample::select(vec![b'a', b'.', b'\r', b'\n', 0xC3]), 0..64)) {
            let wire = data(&body);
            let mut framed = b"\r\n".to_vec();
            framed.extend_from_slice(&wire);
            let ends: Vec<usize> = framed.windows(5).enumerate()
                .filter(|(_, w)| *w == b"\r\n.\r\n").map(|(i, _)| i).collect();
            proptest::prop_assert_eq!(ends, vec![framed.len() - 5]);
            // Unstuff and compare with the normalised body.
            let mut normal = Vec::new();
            encode_chunked(&body, LineEndings::Normalise, &mut normal).unwrap();
            if !normal.is_empty() && !normal.ends_with(b"\r\n") { normal.extend_from_slice(b"\r\n"); }
            let content = &wire[..wire.len() - 3];
            let unstuffed: Vec<u8> = content.split(|&b| b == b'\n').map(|l| l.strip_prefix(b".").unwrap_or(l).to_vec()).collect::<Vec<_>>().join(&b'\n');
            proptest::prop_assert_eq!(unstuffed, normal);
        }
    }
}
