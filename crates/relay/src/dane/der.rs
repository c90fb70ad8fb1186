//! Just enough DER (X.690) to find the parts of an X.509 certificate that
//! DANE needs: the SubjectPublicKeyInfo (selector SPKI), the issuer and
//! subject names (is a certificate self-issued?) and the validity dates.
//! webpki does not expose the dates, and it refuses version 1
//! certificates, which DANE-EE must still match by key.
//!
//! Every function returns `None` on malformed input; nothing here panics.

/// One DER element: its tag, its contents and its whole encoding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Element<'a> {
    pub(crate) tag: u8,
    pub(crate) contents: &'a [u8],
    pub(crate) encoded: &'a [u8],
}

const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const VERSION: u8 = 0xA0;

/// Splits the first element off `input`.
pub(crate) fn element(input: &[u8]) -> Option<(Element<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    // High tag numbers (0x1F) never occur in the certificate fields we read.
    if tag & 0x1F == 0x1F {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (octets, rest) = rest.split_at(n);
        let len = octets
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    let (contents, rest) = rest.split_at(len);
    Some((
        Element {
            tag,
            contents,
            encoded: &input[..header + len],
        },
        rest,
    ))
}

fn expect(input: &[u8], tag: u8) -> Option<(Element<'_>, &[u8])> {
    element(input).filter(|(e, _)| e.tag == tag)
}

/// The fields of a certificate DANE reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CertFields<'a> {
    /// The issuer Name, whole encoding.
    pub(crate) issuer: Element<'a>,
    /// The subject Name, whole encoding.
    pub(crate) subject: Element<'a>,
    /// notBefore, seconds since the Unix epoch.
    pub(crate) not_before: i64,
    /// notAfter, seconds since the Unix epoch.
    pub(crate) not_after: i64,
    /// The SubjectPublicKeyInfo, whole encoding (what selector SPKI hashes).
    pub(crate) spki: Element<'a>,
}

impl<'a> CertFields<'a> {
    /// Walks `Certificate ::= SEQUENCE { tbsCertificate, ... }` (RFC 5280
    /// §4.1) as far as subjectPublicKeyInfo.
    pub(crate) fn parse(der: &'a [u8]) -> Option<Self> {
        let (cert, _) = expect(der, SEQUENCE)?;
        let (tbs, _) = expect(cert.contents, SEQUENCE)?;
        let mut rest = tbs.contents;
        if rest.first() == Some(&VERSION) {
            rest = element(rest)?.1;
        }
        let (_serial, rest) = expect(rest, 0x02)?;
        let (_signature, rest) = expect(rest, SEQUENCE)?;
        let (issuer, rest) = expect(rest, SEQUENCE)?;
        let (validity, rest) = expect(rest, SEQUENCE)?;
        let (subject, rest) = expect(rest, SEQUENCE)?;
        let (spki, _) = expect(rest, SEQUENCE)?;
        let (not_before, after) = element(validity.contents)?;
        let (not_after, _) = element(after)?;
        Some(Self {
            issuer,
            subject,
            not_before: time(not_before)?,
            not_after: time(not_after)?,
            spki,
        })
    }

    /// True when issuer and subject are the same name (RFC 5280 §6.1:
    /// self-issued; compared octet for octet, as webpki does).
    pub(crate) fn is_self_issued(&self) -> bool {
        self.issuer.encoded == self.subject.encoded
    }

    /// True when `now` (Unix seconds) lies within the validity period.
    pub(crate) fn is_valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// A UTCTime (YYMMDDHHMMSSZ, RFC 5280 §4.1.2.5.1) or GeneralizedTime
/// (YYYYMMDDHHMMSSZ) as Unix seconds.
fn time(e: Element<'_>) -> Option<i64> {
    let digits = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (year, rest) = match e.tag {
        UTC_TIME if e.contents.len() == 13 => {
            let yy = digits(&e.contents[..2])?;
            (
                if yy >= 50 { 1900 + yy } else { 2000 + yy },
                &e.contents[2..],
            )
        }
        GENERALIZED_TIME if e.contents.len() == 15 => (digits(&e.contents[..4])?, &e.contents[4..]),
        _ => return None,
    };
    if rest.last() != Some(&b'Z') {
        return None;
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let hour = digits(&rest[4..6])?;
    let minute = digits(&rest[6..8])?;
    let second = digits(&rest[8..10])?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// well-known civil-date algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2038, 1, 19), 24_855);
    }

    #[test]
    fn times() {
        let utc = |s: &[u8]| {
            time(Element {
                tag: UTC_TIME,
                contents: s,
                encoded: s,
            })
        };
        assert_eq!(utc(b"700101000000Z"), Some(0));
        assert_eq!(utc(b"380119031408Z"), Some(2_147_483_648));
        assert_eq!(utc(b"380119031408"), None);
        assert_eq!(utc(b"381319031408Z"), None);
        let gen_ = |s: &[u8]| {
            time(Element {
                tag: GENERALIZED_TIME,
                contents: s,
                encoded: s,
            })
        };
        assert_eq!(gen_(b"20380119031408Z"), Some(2_147_483_648));
        assert_eq!(gen_(b"2038011903140Z"), None);
    }

    #[test]
    fn truncated_input_is_none() {
        assert!(element(&[]).is_none());
        assert!(element(&[0x30]).is_none());
        assert!(element(&[0x30, 0x05, 0x00]).is_none());
        assert!(element(&[0x30, 0x85, 0, 0, 0, 0, 1]).is_none());
        assert!(element(&[0x1F, 0x00]).is_none());
        assert!(CertFields::parse(&[0x30, 0x00]).is_none());
        let (e, rest) = element(&[0x04, 0x01, 0xAA, 0xBB]).unwrap();
        assert_eq!(
            (e.tag, e.contents, e.encoded.len(), rest),
            (4, &[0xAA][..], 3, &[0xBB][..])
        );
    }
}
