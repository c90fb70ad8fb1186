//! MTA-STS TXT records and policy files (RFC 8461), both from untrusted
//! answers (DNS and HTTPS).

use postern_relay::mta_sts::{StsPolicy, StsRecord};

/// Feeds arbitrary bytes to the MTA-STS parsers: the first octet chooses
/// how the rest is read. Whatever parses prints in a form that parses to
/// the same value; MX matching on arbitrary host names never panics and
/// agrees with the policy's own patterns.
pub fn mta_sts(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    if control & 1 == 0 {
        if let Ok(policy) = StsPolicy::parse(rest) {
            let printed = policy.to_string();
            let again = StsPolicy::parse(printed.as_bytes()).expect("a printed policy parses");
            assert_eq!(again, policy, "policy round trip");
            for p in policy.mx() {
                // Every literal pattern allows its own name.
                if !p.is_wildcard() {
                    assert!(policy.allows_mx(&p.to_string()), "{p} allows itself");
                }
            }
            if let Ok(host) = std::str::from_utf8(rest) {
                let _ = policy.allows_mx(host);
            }
        }
    } else if let Ok(text) = std::str::from_utf8(rest) {
        let records: Vec<&str> = text.split('\n').collect();
        if let Ok(record) = StsRecord::parse(records[0]) {
            let again = StsRecord::parse(&record.to_string()).expect("a printed record parses");
            assert_eq!(again, record, "record round trip");
        }
        let _ = StsRecord::select(records.iter().copied());
    }
}
