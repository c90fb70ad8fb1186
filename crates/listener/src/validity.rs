//! The validity period of an X.509 certificate, read from its DER.
//!
//! rustls and webpki check validity during verification but do not expose
//! it; an operator's `check`, the renewal of generated and ACME
//! certificates, and warnings about expiry need the dates themselves. Only
//! the path to `tbsCertificate.validity` is walked (RFC 5280 §4.1): nothing
//! else of the certificate is interpreted.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

/// When a certificate starts and stops being valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Validity {
    /// `notBefore`.
    pub not_before: SystemTime,
    /// `notAfter` (the last valid second).
    pub not_after: SystemTime,
}

/// Why a certificate's validity could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidityError {
    /// The PEM text holds no `CERTIFICATE` block.
    #[error("no CERTIFICATE block")]
    NoCertificate,
    /// The PEM text could not be decoded.
    #[error("PEM: {0}")]
    Pem(String),
    /// The DER does not have the shape of an X.509 certificate; the text
    /// says which part.
    #[error("malformed certificate: {0}")]
    Malformed(&'static str),
}

impl Validity {
    /// The validity of a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, ValidityError> {
        let cert = Der(der).enter(SEQUENCE, "Certificate")?;
        let mut tbs = Der(Der(cert).enter(SEQUENCE, "tbsCertificate")?);
        // [0] EXPLICIT version, optional.
        if tbs.first() == Some(&0xa0) {
            tbs.skip("version")?;
        }
        tbs.skip("serialNumber")?;
        tbs.skip("signature")?;
        tbs.skip("issuer")?;
        let mut validity = Der(tbs.enter(SEQUENCE, "validity")?);
        let not_before = validity.time("notBefore")?;
        let not_after = validity.time("notAfter")?;
        Ok(Self {
            not_before,
            not_after,
        })
    }

    /// The validity of the first certificate in PEM text (a chain's
    /// end-entity certificate).
    pub fn from_pem(pem: &[u8]) -> Result<Self, ValidityError> {
        let first = CertificateDer::pem_slice_iter(pem)
            .next()
            .ok_or(ValidityError::NoCertificate)?
            .map_err(|e| ValidityError::Pem(e.to_string()))?;
        Self::from_der(first.as_ref())
    }

    /// The time left at `now`; zero once expired.
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.not_after.duration_since(now).unwrap_or_default()
    }

    /// `notAfter - notBefore`.
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }

    /// Whether `now` is past `notAfter`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now > self.not_after
    }
}

impl fmt::Display for Validity {
    /// `2026-01-01T00:00:00Z .. 2026-04-01T00:00:00Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} .. {}", utc(self.not_before), utc(self.not_after))
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time after 1970.
pub fn utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let (y, m, d) = civil_from_days(days);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// A cursor over DER elements.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn first(&self) -> Option<&u8> {
        self.0.first()
    }

    /// The next element: its tag and contents.
    fn next(&mut self, what: &'static str) -> Result<(u8, &'a [u8]), ValidityError> {
        let bad = ValidityError::Malformed(what);
        let (&tag, rest) = self.0.split_first().ok_or(bad.clone())?;
        let (&len0, rest) = rest.split_first().ok_or(bad.clone())?;
        let (len, rest) = if len0 < 0x80 {
            (usize::from(len0), rest)
        } else {
            let n = usize::from(len0 & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(bad);
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err(bad);
        }
        let (contents, after) = rest.split_at(len);
        self.0 = after;
        Ok((tag, contents))
    }

    fn enter(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8], ValidityError> {
        match self.next(what)? {
            (t, contents) if t == tag => Ok(contents),
            _ => Err(ValidityError::Malformed(what)),
        }
    }

    fn skip(&mut self, what: &'static str) -> Result<(), ValidityError> {
        self.next(what).map(|_| ())
    }

    fn time(&mut self, what: &'static str) -> Result<SystemTime, ValidityError> {
        let bad = ValidityError::Malformed(what);
        let (tag, text) = self.next(what)?;
        let text = std::str::from_utf8(text).map_err(|_| bad.clone())?;
        // RFC 5280 §4.1.2.5: UTCTime YYMMDDHHMMSSZ (years 1950-2049),
        // GeneralizedTime YYYYMMDDHHMMSSZ; always Zulu, no fractions.
        let (year, rest) = match tag {
            UTC_TIME if text.len() == 13 => {
                let yy: i64 = num(&text[..2]).ok_or(bad.clone())?;
                (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
            }
            GENERALIZED_TIME if text.len() == 15 => {
                (num(&text[..4]).ok_or(bad.clone())?, &text[4..])
            }
            _ => return Err(bad),
        };
        if !rest.ends_with('Z') {
            return Err(bad);
        }
        let field = |i: usize| num(&rest[i..i + 2]).ok_or(bad.clone());
        let (month, day, h, m, s) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
            return Err(bad);
        }
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + h * 3600 + m * 60 + s;
        Ok(match u64::try_from(secs) {
            Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
            // Before 1970 (rcgen's old default was 1975, but others are
            // older): the epoch is early enough for every use here.
            Err(_) => UNIX_EPOCH,
        })
    }
}

fn num(s: &str) -> Option<i64> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Any certificate with less than this left is a warning in an embedder's
/// configuration check (and its log at start).
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

/// One line `check` prints about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertNote {
    /// A fact: where it is, until when it is valid.
    Info(String),
    /// Expires within [`EXPIRY_WARNING`], or its dates cannot be read.
    Warning(String),
    /// Expired: clients that verify refuse it.
    Error(String),
}

impl std::fmt::Display for CertNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertNote::Info(s) => f.write_str(s),
            CertNote::Warning(s) => write!(f, "warning: {s}"),
            CertNote::Error(s) => write!(f, "error: {s}"),
        }
    }
}

/// Whole days in `d`.
pub(crate) fn days(d: Duration) -> u64 {
    d.as_secs() / 86_400
}

/// What to say about the certificate in the PEM file `path` (`what` names
/// it in each line): its validity, an error once expired, a warning with
/// less than [`EXPIRY_WARNING`] left. Nothing when the file cannot be read
/// (building the TLS policy reports that).
pub fn expiry_notes(what: &str, path: &Path, now: SystemTime) -> Vec<CertNote> {
    let validity = match std::fs::read(path) {
        Ok(pem) => match Validity::from_pem(&pem) {
            Ok(v) => v,
            Err(e) => {
                return vec![CertNote::Warning(format!(
                    "{what} {}: cannot read its validity: {e}",
                    path.display()
                ))];
            }
        },
        // The policy build reports the unreadable file.
        Err(_) => return Vec::new(),
    };
    let until = utc(validity.not_after);
    let mut notes = vec![CertNote::Info(format!(
        "{what} {}: valid {validity} ({} days left)",
        path.display(),
        days(validity.remaining(now))
    ))];
    if validity.is_expired(now) {
        notes.push(CertNote::Error(format!(
            "{what} {} expired at {until}",
            path.display()
        )));
    } else if validity.remaining(now) < EXPIRY_WARNING {
        notes.push(CertNote::Warning(format!(
            "{what} {} expires in {} days, at {until}: renew it",
            path.display(),
            days(validity.remaining(now))
        )));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for z in [-1, 0, 59, 11_016, 11_017, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(951_868_800)),
            "2000-03-01T00:00:00Z"
        );
    }

    #[test]
    fn reads_rcgen_validity_both_time_forms() {
        // UTCTime before 2050, GeneralizedTime from 2050 (RFC 5280).
        for (before, after) in [((2024, 1, 2), (2024, 4, 1)), ((2049, 6, 1), (2051, 1, 1))] {
            let mut params = rcgen::CertificateParams::new(vec!["v.test".to_owned()]).unwrap();
            params.not_before = rcgen::date_time_ymd(before.0, before.1, before.2);
            params.not_after = rcgen::date_time_ymd(after.0, after.1, after.2);
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            let v = Validity::from_pem(cert.pem().as_bytes()).unwrap();
            assert_eq!(
                utc(v.not_before),
                format!("{:04}-{:02}-{:02}T00:00:00Z", before.0, before.1, before.2)
            );
            assert_eq!(
                utc(v.not_after),
                format!("{:04}-{:02}-{:02}T00:00:00Z", after.0, after.1, after.2)
            );
        }
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        assert_eq!(
            Validity::from_pem(b"nothing"),
            Err(ValidityError::NoCertificate)
        );
        for der in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 2, 3, 4, 5],
            &[0x30, 0x03, 0x30, 0x01],
        ] {
            assert!(Validity::from_der(der).is_err(), "{der:?}");
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["v.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        for cut in 0..der.len() {
            let _ = Validity::from_der(&der[..cut]);
        }
    }
}
