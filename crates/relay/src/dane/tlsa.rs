//! The TLSA record (RFC 6698 §2): its three parameters and its data, parsed
//! from wire RDATA or from the zone-file presentation form `3 1 1 AB12…`.

use std::fmt;
use std::str::FromStr;

/// The certificate usage field (RFC 6698 §2.1.1, names from RFC 7218).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsaUsage {
    /// PKIX-TA(0): a CA that must also be trusted by PKIX. Unusable for SMTP
    /// (RFC 7672 §3.1.3): MTAs have no agreed set of public CAs.
    PkixTa,
    /// PKIX-EE(1): the server certificate, which must also pass PKIX.
    /// Unusable for SMTP for the same reason (RFC 7672 §3.1.3).
    PkixEe,
    /// DANE-TA(2): a trust anchor the server's chain must lead to
    /// (RFC 7672 §3.1.2).
    DaneTa,
    /// DANE-EE(3): the server's own certificate or key (RFC 7672 §3.1.1).
    DaneEe,
    /// A value no RFC assigns; always unusable.
    Unassigned(u8),
}

/// The selector field (RFC 6698 §2.1.2): which part of a certificate the
/// record's data is computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsaSelector {
    /// Cert(0): the whole DER certificate.
    Cert,
    /// SPKI(1): the DER SubjectPublicKeyInfo.
    Spki,
    /// A value no RFC assigns; always unusable.
    Unassigned(u8),
}

/// The matching type field (RFC 6698 §2.1.3): how the selected content is
/// compared with the record's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsaMatching {
    /// Full(0): the data is the selected content itself.
    Full,
    /// SHA2-256(1): the data is the SHA-256 digest of the content.
    Sha256,
    /// SHA2-512(2): the data is the SHA-512 digest of the content.
    Sha512,
    /// A value no RFC assigns; always unusable.
    Unassigned(u8),
}

macro_rules! wire_enum {
    ($ty:ident { $($variant:ident = $value:literal, $name:literal;)* }) => {
        impl $ty {
            /// The field's wire value.
            pub fn wire(self) -> u8 {
                match self {
                    $(Self::$variant => $value,)*
                    Self::Unassigned(v) => v,
                }
            }

            /// The field for a wire value; unknown values are kept as
            /// `Unassigned` so that a record set can still be judged.
            pub fn from_wire(value: u8) -> Self {
                match value {
                    $($value => Self::$variant,)*
                    v => Self::Unassigned(v),
                }
            }

            /// The RFC 7218 mnemonic, `None` for an unassigned value.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $(Self::$variant => Some($name),)*
                    Self::Unassigned(_) => None,
                }
            }
        }

        impl fmt::Display for $ty {
            /// `DANE-EE(3)`, or the bare number for an unassigned value.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => write!(f, "{name}({})", self.wire()),
                    None => write!(f, "{}", self.wire()),
                }
            }
        }
    };
}

wire_enum!(TlsaUsage {
    PkixTa = 0, "PKIX-TA";
    PkixEe = 1, "PKIX-EE";
    DaneTa = 2, "DANE-TA";
    DaneEe = 3, "DANE-EE";
});

wire_enum!(TlsaSelector {
    Cert = 0, "Cert";
    Spki = 1, "SPKI";
});

wire_enum!(TlsaMatching {
    Full = 0, "Full";
    Sha256 = 1, "SHA2-256";
    Sha512 = 2, "SHA2-512";
});

impl TlsaMatching {
    /// The digest length the data must have, `None` for Full and unknown
    /// types.
    pub fn digest_len(self) -> Option<usize> {
        match self {
            Self::Sha256 => Some(32),
            Self::Sha512 => Some(64),
            Self::Full | Self::Unassigned(_) => None,
        }
    }
}

/// One TLSA record: usage, selector, matching type and association data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsaRecord {
    usage: TlsaUsage,
    selector: TlsaSelector,
    matching: TlsaMatching,
    data: Vec<u8>,
}

/// Why TLSA RDATA or presentation text did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsaParseError {
    /// Fewer than the three parameter octets, or no association data.
    #[error("TLSA RDATA is {0} octets; it needs three parameters and data")]
    Truncated(usize),
    /// A presentation field is missing.
    #[error("TLSA presentation form is missing the {0} field")]
    MissingField(&'static str),
    /// A parameter is not a decimal number from 0 to 255.
    #[error("TLSA {0} field is not a number from 0 to 255")]
    BadNumber(&'static str),
    /// The association data is not an even number of hex digits.
    #[error("TLSA association data is not hexadecimal")]
    BadHex,
    /// A digest has the wrong length for its matching type, so the record
    /// could never match. A lookup treats any record that fails to parse
    /// as unusable rather than failing the whole RRset.
    #[error("TLSA {matching} data is {len} octets")]
    DigestLength {
        /// The record's matching type.
        matching: TlsaMatching,
        /// The data's length.
        len: usize,
    },
}

impl TlsaRecord {
    /// A record from its fields. Digest data of the wrong length is refused.
    pub fn new(
        usage: TlsaUsage,
        selector: TlsaSelector,
        matching: TlsaMatching,
        data: impl Into<Vec<u8>>,
    ) -> Result<Self, TlsaParseError> {
        let data = data.into();
        if data.is_empty() {
            return Err(TlsaParseError::Truncated(3));
        }
        if let Some(want) = matching.digest_len()
            && data.len() != want
        {
            return Err(TlsaParseError::DigestLength {
                matching,
                len: data.len(),
            });
        }
        Ok(Self {
            usage,
            selector,
            matching,
            data,
        })
    }

    /// Parses wire RDATA (RFC 6698 §2.1): three octets, then the data.
    pub fn from_rdata(rdata: &[u8]) -> Result<Self, TlsaParseError> {
        match rdata {
            [usage, selector, matching, data @ ..] if !data.is_empty() => Self::new(
                TlsaUsage::from_wire(*usage),
                TlsaSelector::from_wire(*selector),
                TlsaMatching::from_wire(*matching),
                data,
            ),
            _ => Err(TlsaParseError::Truncated(rdata.len())),
        }
    }

    /// Parses the presentation form (RFC 6698 §2.2): three decimal fields
    /// and hex data that may be split by white space, as zone files and
    /// `dig` print it.
    pub fn from_presentation(text: &str) -> Result<Self, TlsaParseError> {
        let mut fields = text.split_ascii_whitespace();
        let mut number = |name| -> Result<u8, TlsaParseError> {
            fields
                .next()
                .ok_or(TlsaParseError::MissingField(name))?
                .parse()
                .map_err(|_| TlsaParseError::BadNumber(name))
        };
        let usage = number("usage")?;
        let selector = number("selector")?;
        let matching = number("matching type")?;
        let mut data = Vec::new();
        let mut any = false;
        for chunk in fields {
            any = true;
            decode_hex(chunk, &mut data)?;
        }
        if !any {
            return Err(TlsaParseError::MissingField("association data"));
        }
        Self::new(
            TlsaUsage::from_wire(usage),
            TlsaSelector::from_wire(selector),
            TlsaMatching::from_wire(matching),
            data,
        )
    }

    /// The wire RDATA.
    pub fn to_rdata(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 + self.data.len());
        out.extend([
            self.usage.wire(),
            self.selector.wire(),
            self.matching.wire(),
        ]);
        out.extend_from_slice(&self.data);
        out
    }

    /// The certificate usage.
    pub fn usage(&self) -> TlsaUsage {
        self.usage
    }

    /// The selector.
    pub fn selector(&self) -> TlsaSelector {
        self.selector
    }

    /// The matching type.
    pub fn matching(&self) -> TlsaMatching {
        self.matching
    }

    /// The association data (a digest, or the full certificate or SPKI).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// True when an SMTP client may use this record (RFC 7672 §3.1): usage
    /// DANE-TA or DANE-EE, a known selector and a known matching type.
    pub fn is_usable(&self) -> bool {
        matches!(self.usage, TlsaUsage::DaneTa | TlsaUsage::DaneEe)
            && matches!(self.selector, TlsaSelector::Cert | TlsaSelector::Spki)
            && matches!(
                self.matching,
                TlsaMatching::Full | TlsaMatching::Sha256 | TlsaMatching::Sha512
            )
    }
}

impl fmt::Display for TlsaRecord {
    /// The presentation form, `3 1 1 0A1B…` (upper-case hex, as dig prints).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} ",
            self.usage.wire(),
            self.selector.wire(),
            self.matching.wire()
        )?;
        for b in &self.data {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl FromStr for TlsaRecord {
    type Err = TlsaParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_presentation(s)
    }
}

fn decode_hex(text: &str, out: &mut Vec<u8>) -> Result<(), TlsaParseError> {
    fn nibble(c: u8) -> Result<u8, TlsaParseError> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(TlsaParseError::BadHex),
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err(TlsaParseError::BadHex);
    }
    for pair in bytes.chunks_exact(2) {
        out.push(nibble(pair[0])? << 4 | nibble(pair[1])?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: &str = "0C72AC70B745AC19998811B131D662C9AC69DBDBE7CB23E5B514B56664C5D3D6";

    #[test]
    fn presentation_round_trips_through_rdata() {
        let r: TlsaRecord = format!("3 1 1 {SHA256}").parse().unwrap();
        assert_eq!(r.usage(), TlsaUsage::DaneEe);
        assert_eq!(r.selector(), TlsaSelector::Spki);
        assert_eq!(r.matching(), TlsaMatching::Sha256);
        assert_eq!(r.to_string(), format!("3 1 1 {SHA256}"));
        assert_eq!(TlsaRecord::from_rdata(&r.to_rdata()).unwrap(), r);
        assert!(r.is_usable());
    }

    #[test]
    fn presentation_accepts_split_lower_case_hex() {
        let (a, b) = SHA256.split_at(20);
        let r = TlsaRecord::from_presentation(&format!(" 2\t0 1 {}\n {}", a.to_lowercase(), b))
            .unwrap();
        assert_eq!(r.usage(), TlsaUsage::DaneTa);
        assert_eq!(r.to_string(), format!("2 0 1 {SHA256}"));
    }

    #[test]
    fn bad_presentation_is_an_error() {
        use TlsaParseError::*;
        assert_eq!(
            TlsaRecord::from_presentation(""),
            Err(MissingField("usage"))
        );
        assert_eq!(
            TlsaRecord::from_presentation("3 1 1"),
            Err(MissingField("association data"))
        );
        assert_eq!(
            TlsaRecord::from_presentation("3 1 256 00"),
            Err(BadNumber("matching type"))
        );
        assert_eq!(
            TlsaRecord::from_presentation("3 x 1 00"),
            Err(BadNumber("selector"))
        );
        assert_eq!(TlsaRecord::from_presentation("3 1 0 0G"), Err(BadHex));
        assert_eq!(TlsaRecord::from_presentation("3 1 0 ABC"), Err(BadHex));
        assert_eq!(
            TlsaRecord::from_presentation("3 1 1 ABCD"),
            Err(DigestLength {
                matching: TlsaMatching::Sha256,
                len: 2
            })
        );
    }

    #[test]
    fn rdata_needs_parameters_and_data() {
        assert_eq!(
            TlsaRecord::from_rdata(&[3, 1, 1]),
            Err(TlsaParseError::Truncated(3))
        );
        assert_eq!(
            TlsaRecord::from_rdata(&[]),
            Err(TlsaParseError::Truncated(0))
        );
        let full = TlsaRecord::from_rdata(&[3, 1, 0, 0x30, 0x00]).unwrap();
        assert_eq!(full.data(), [0x30, 0x00]);
    }

    #[test]
    fn usability_follows_rfc_7672_section_3_1() {
        let record = |u, s, m| {
            let data = vec![0xAA; TlsaMatching::from_wire(m).digest_len().unwrap_or(8)];
            TlsaRecord::from_rdata(&[[u, s, m].as_slice(), &data].concat()).unwrap()
        };
        for u in 0..=4 {
            for s in 0..=2 {
                for m in 0..=3 {
                    let want = (u == 2 || u == 3) && s <= 1 && m <= 2;
                    assert_eq!(record(u, s, m).is_usable(), want, "{u} {s} {m}");
                }
            }
        }
        assert_eq!(TlsaUsage::from_wire(7).to_string(), "7");
        assert_eq!(TlsaUsage::DaneTa.to_string(), "DANE-TA(2)");
        assert_eq!(TlsaMatching::Sha512.to_string(), "SHA2-512(2)");
    }
}
