//! Configured text written into replies.

/// Appends `text`, replacing any octet outside printable ASCII with `?`, so
/// configured text can never break a reply line.
pub(crate) fn push_sanitized(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        out.extend_from_slice(text.as_bytes());
    } else {
        out.extend(
            text.bytes()
                .map(|b| if (0x20..0x7f).contains(&b) { b } else { b'?' }),
        );
    }
}
