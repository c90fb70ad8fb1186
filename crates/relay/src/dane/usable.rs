//! Which TLSA records an SMTP client may use (RFC 7672 §3.1), and how one
//! is compared with a certificate (RFC 6698 §2.1.2, §2.1.3).

use sha2::{Digest as _, Sha256, Sha512};

use super::der::CertFields;
use super::tlsa::{TlsaMatching, TlsaRecord, TlsaSelector, TlsaUsage};

/// A TLSA RRset with at least one usable record (DANE-TA or DANE-EE with a
/// known selector and matching type), the unusable ones dropped.
///
/// An RRset with no usable record is not a DANE policy: [`select`]
/// returns `None`, and per RFC 7672 §2.2 the client still requires TLS
/// (a published, validated TLSA RRset says the server offers STARTTLS) but
/// cannot authenticate the server, which is Postfix's `encrypt` level.
///
/// [`select`]: UsableTlsa::select
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsableTlsa {
    records: Vec<TlsaRecord>,
}

impl UsableTlsa {
    /// Keeps the usable records of an RRset; `None` when none is usable.
    pub fn select(records: impl IntoIterator<Item = TlsaRecord>) -> Option<Self> {
        let mut usable: Vec<TlsaRecord> = Vec::new();
        for record in records {
            // DNS RRsets are sets: a duplicate adds nothing.
            if record.is_usable() && !usable.contains(&record) {
                usable.push(record);
            }
        }
        (!usable.is_empty()).then_some(Self { records: usable })
    }

    /// The usable records, in the RRset's order.
    pub fn records(&self) -> &[TlsaRecord] {
        &self.records
    }

    /// True when some record is DANE-TA, so a chain and a name check may
    /// decide (DANE-EE alone checks neither, RFC 7672 §3.2.1).
    pub fn has_trust_anchors(&self) -> bool {
        self.records.iter().any(|r| r.usage() == TlsaUsage::DaneTa)
    }

    pub(crate) fn with_usage(&self, usage: TlsaUsage) -> impl Iterator<Item = &TlsaRecord> {
        self.records.iter().filter(move |r| r.usage() == usage)
    }
}

impl TlsaRecord {
    /// True when this record's data matches the certificate `der`
    /// (selector and matching type applied). A certificate whose SPKI
    /// cannot be found never matches an SPKI record.
    pub fn matches(&self, der: &[u8]) -> bool {
        let content = match self.selector() {
            TlsaSelector::Cert => der,
            TlsaSelector::Spki => match CertFields::parse(der) {
                Some(fields) => fields.spki.encoded,
                None => return false,
            },
            TlsaSelector::Unassigned(_) => return false,
        };
        self.matches_content(content)
    }

    /// Compares the selected content with the data under the matching type.
    pub(crate) fn matches_content(&self, content: &[u8]) -> bool {
        match self.matching() {
            TlsaMatching::Full => content == self.data(),
            TlsaMatching::Sha256 => Sha256::digest(content).as_slice() == self.data(),
            TlsaMatching::Sha512 => Sha512::digest(content).as_slice() == self.data(),
            TlsaMatching::Unassigned(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(text: &str) -> TlsaRecord {
        text.parse().unwrap()
    }

    #[test]
    fn only_pkix_or_unknown_records_are_not_a_policy() {
        let unusable = [
            rec("0 0 1 0000000000000000000000000000000000000000000000000000000000000000"),
            rec("1 1 1 0000000000000000000000000000000000000000000000000000000000000000"),
            rec("3 2 0 3000"),
            rec("3 1 9 00"),
            rec("4 1 1 0000000000000000000000000000000000000000000000000000000000000000"),
        ];
        assert_eq!(UsableTlsa::select(unusable.clone()), None);
        assert_eq!(UsableTlsa::select([]), None);
        let ee = rec("3 1 0 3000");
        let set = UsableTlsa::select(unusable.into_iter().chain([ee.clone(), ee.clone()])).unwrap();
        assert_eq!(set.records(), [ee]);
        assert!(!set.has_trust_anchors());
    }
}
