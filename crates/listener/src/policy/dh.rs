//! DH parameter files: parsed and validated, then reported as unused,
//! because rustls offers no finite-field DHE (RFC 7919 groups are not in
//! its default provider either).

use std::path::Path;

use base64::Engine as _;
use num_bigint::BigUint;

/// A validated DH group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DhParams {
    /// Bits of the prime.
    pub(crate) bits: u64,
}

/// Smallest prime accepted (Logjam; NIST SP 800-57).
pub(crate) const MIN_BITS: u64 = 2048;

/// Reads and validates a PEM `DH PARAMETERS` (PKCS#3) or
/// `X9.42 DH PARAMETERS` file.
pub(crate) fn load(path: &Path) -> Result<DhParams, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_pem(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn parse_pem(text: &[u8]) -> Result<DhParams, String> {
    let text = std::str::from_utf8(text).map_err(|_| "not a PEM text file".to_owned())?;
    let (label, body) = pem_section(text)?;
    if label != "DH PARAMETERS" && label != "X9.42 DH PARAMETERS" {
        return Err(format!(
            "expected a \"DH PARAMETERS\" PEM block, found {label:?}"
        ));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| format!("bad base64 in PEM block: {e}"))?;
    parse_der(&der)
}

fn pem_section(text: &str) -> Result<(String, String), String> {
    let mut lines = text.lines().map(str::trim);
    let label = loop {
        let Some(line) = lines.next() else {
            return Err("no PEM block found".to_owned());
        };
        if let Some(rest) = line.strip_prefix("-----BEGIN ")
            && let Some(label) = rest.strip_suffix("-----")
        {
            break label.to_owned();
        }
    };
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for line in lines {
        if line == end {
            return Ok((label, body));
        }
        body.push_str(line);
    }
    Err(format!("PEM block {label:?} is not terminated"))
}

/// `DHParameter ::= SEQUENCE { prime INTEGER, base INTEGER, privateValueLength INTEGER OPTIONAL }`
/// (PKCS#3); X9.42 `DomainParameters` has `p, g, q, ...`.
fn parse_der(der: &[u8]) -> Result<DhParams, String> {
    let (tag, seq, rest) = tlv(der)?;
    if tag != 0x30 || !rest.is_empty() {
        return Err("DER: expected one SEQUENCE".to_owned());
    }
    let (tag, p, seq) = tlv(seq)?;
    if tag != 0x02 {
        return Err("DER: expected the prime as an INTEGER".to_owned());
    }
    let (tag, g, _) = tlv(seq)?;
    if tag != 0x02 {
        return Err("DER: expected the generator as an INTEGER".to_owned());
    }
    if p.first().is_some_and(|b| b & 0x80 != 0) || g.first().is_some_and(|b| b & 0x80 != 0) {
        return Err("negative DH parameter".to_owned());
    }
    let p = BigUint::from_bytes_be(p);
    let g = BigUint::from_bytes_be(g);
    let bits = p.bits();
    if bits < MIN_BITS {
        return Err(format!(
            "prime has {bits} bits; at least {MIN_BITS} are required"
        ));
    }
    let one = BigUint::from(1u32);
    if g <= one || g >= &p - &one {
        return Err("generator out of range (must be 1 < g < p-1)".to_owned());
    }
    if !probably_prime(&p) {
        return Err("the modulus is not prime".to_owned());
    }
    Ok(DhParams { bits })
}

/// One DER TLV: tag, contents, what follows.
fn tlv(der: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let short = || "DER: truncated".to_owned();
    let (&tag, rest) = der.split_first().ok_or_else(short)?;
    let (&len0, mut rest) = rest.split_first().ok_or_else(short)?;
    let len = if len0 < 0x80 {
        usize::from(len0)
    } else {
        let n = usize::from(len0 & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err("DER: bad length".to_owned());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err(short());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// Trial division by the first 16 primes, then Miller–Rabin with the first
/// 8 as bases: enough to catch a
/// corrupt or made-up modulus (this is a sanity check of the operator's
/// file, and the group is never used).
fn probably_prime(n: &BigUint) -> bool {
    const SMALL: [u32; 16] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53];
    let zero = BigUint::from(0u32);
    let one = BigUint::from(1u32);
    for p in SMALL {
        if n % p == zero {
            return *n == BigUint::from(p);
        }
    }
    let n1 = n - &one;
    let s = n1.trailing_zeros().unwrap_or(0);
    let d = &n1 >> s;
    'bases: for a in &SMALL[..8] {
        let mut x = BigUint::from(*a).modpow(&d, n);
        if x == one || x == n1 {
            continue;
        }
        for _ in 1..s {
            x = x.modpow(&BigUint::from(2u32), n);
            if x == n1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}
