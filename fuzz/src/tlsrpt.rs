//! The `_smtp._tls` TXT record (RFC 8460 §3), from untrusted DNS answers.

use postern_queue::tlsrpt::{ReportUri, TlsRptRecord};

/// Feeds arbitrary text, split into TXT records at LF, to the TLS-RPT
/// record parser: it never panics, and a record that parses has at least
/// one usable URI, each `mailto:` one holding an address.
pub fn tlsrpt(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let records: Vec<&str> = text.split('\n').collect();
    if let Ok(r) = TlsRptRecord::parse(records[0]) {
        assert!(!r.rua().is_empty(), "a record without a usable URI parsed");
        for uri in r.rua() {
            match uri {
                ReportUri::Mail(a) => assert!(a.contains('@'), "{a}"),
                ReportUri::Https(u) => assert!(u.starts_with("https://"), "{u}"),
                _ => {}
            }
        }
    }
    let _ = TlsRptRecord::select(records.iter().copied());
}
