//! The TLSA target: RDATA and presentation parsing, and the DANE verifier
//! run on whatever the parser accepts.

use postern_relay::dane::{DaneVerifier, TlsaRecord, UsableTlsa};
use rustls::pki_types::{CertificateDer, DnsName, UnixTime};

/// Parses arbitrary bytes as TLSA RDATA and, when they are UTF-8, as the
/// presentation form. Whatever parses must round-trip through the other
/// form, and a usable record is then used to authenticate the same bytes
/// as a certificate chain, which must fail or succeed without panicking.
pub fn tlsa(data: &[u8]) {
    if let Ok(record) = TlsaRecord::from_rdata(data) {
        assert_eq!(record.to_rdata(), data, "RDATA round trip");
        let text = record.to_string();
        assert_eq!(
            TlsaRecord::from_presentation(&text).as_ref(),
            Ok(&record),
            "presentation round trip of {text}"
        );
        authenticate(record, data);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(record) = TlsaRecord::from_presentation(text)
    {
        assert_eq!(
            TlsaRecord::from_rdata(&record.to_rdata()).as_ref(),
            Ok(&record),
            "RDATA round trip of {text:?}"
        );
        assert_eq!(
            record.to_string().parse::<TlsaRecord>().as_ref(),
            Ok(&record)
        );
    }
}

fn authenticate(record: TlsaRecord, data: &[u8]) {
    // The selector's DER walk runs on arbitrary bytes here.
    let _ = record.matches(data);
    let Some(usable) = UsableTlsa::select([record.clone()]) else {
        assert!(!record.is_usable());
        return;
    };
    let provider = postern_relay::default_provider();
    let name = DnsName::try_from("mx.example.com").expect("a valid name");
    let verifier = DaneVerifier::new(usable, [name], &provider);
    // The record's own data as the server's certificate: for a Full(0)
    // record that is the certificate or key the record names.
    let leaf = CertificateDer::from(record.data());
    let chain = [CertificateDer::from(data)];
    let _ = verifier.authenticate(&leaf, &chain, UnixTime::now());
}
