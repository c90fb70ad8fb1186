//! The seal line that makes a torn envelope or body detectable.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

pub(crate) const SEAL: &str = "# postern-seal v1 ";
pub(crate) const NO_SEAL: &str = "no seal line";
/// Present once every envelope in the queue carries a seal.
pub(crate) const FORMAT_MARKER: &str = "format";

/// `text` (TOML, ending in a newline) with its seal line appended (the
/// spool wrote these; tests make such queues to import).
#[cfg(test)]
pub(crate) fn sealed(mut text: String, body: Option<(u64, u32)>) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let env = format!("{}:{:08x}", text.len(), crc32fast::hash(text.as_bytes()));
    let body = body.map_or_else(|| "-".to_owned(), |(len, crc)| format!("{len}:{crc:08x}"));
    let _ = std::fmt::Write::write_fmt(&mut text, format_args!("{SEAL}env={env} body={body}\n"));
    text
}

/// Checks an envelope file's seal (and the body's length and CRC when the
/// seal names them). `Ok(Err(why))`: the commit did not finish.
pub(crate) fn verify_sealed(env: &Path, body: &Path) -> io::Result<Result<(), String>> {
    let text = fs::read(env)?;
    let Some(rest) = text.strip_suffix(b"\n") else {
        return Ok(Err("envelope does not end in a newline".into()));
    };
    let start = rest.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let Some(seal) = std::str::from_utf8(&rest[start..])
        .ok()
        .and_then(|l| l.strip_prefix(SEAL))
    else {
        return Ok(Err(NO_SEAL.into()));
    };
    let content = &text[..start];
    let mut fields = seal.split(' ');
    let (Some(e), Some(b), None) = (
        fields.next().and_then(|f| f.strip_prefix("env=")),
        fields.next().and_then(|f| f.strip_prefix("body=")),
        fields.next(),
    ) else {
        return Ok(Err(format!("malformed seal {seal:?}")));
    };
    if e != format!("{}:{:08x}", content.len(), crc32fast::hash(content)) {
        return Ok(Err(format!("envelope does not match its seal {e}")));
    }
    if b == "-" {
        return Ok(Ok(()));
    }
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0u64;
    let mut file = File::open(body)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        crc.update(&buf[..n]);
        len += n as u64;
    }
    if b != format!("{len}:{:08x}", crc.finalize()) {
        return Ok(Err(format!(
            "body ({len} octets) does not match its seal {b}"
        )));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_zlibs() {
        // The seal format fixes CRC-32/ISO-HDLC (zlib's): old queues must verify.
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
        let text = sealed("a = 1\n".to_owned(), Some((3, 0xabc)));
        let want = format!(
            "a = 1\n{SEAL}env=6:{:08x} body=3:00000abc\n",
            crc32fast::hash(b"a = 1\n")
        );
        assert_eq!(text, want);
    }
}
