//! The `_mta-sts.<domain>` TXT record (RFC 8461 §3.1).

use std::fmt;

/// A valid MTA-STS TXT record: it announces that the domain has a policy,
/// and its `id` changes whenever the policy does.
///
/// ```text
/// sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
/// sts-field       = sts-id / sts-extension
/// sts-field-delim = *WSP ";" *WSP
/// sts-version     = %s"v=STSv1"
/// sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
/// sts-extension   = sts-ext-name "=" sts-ext-value
/// sts-ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
/// sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StsRecord {
    id: String,
}

/// Why a name's TXT records give no MTA-STS policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// More than one record starts with `v=STSv1` (§3.1: not exactly one
    /// means no policy).
    #[error("{0} TXT records start with v=STSv1; exactly one is allowed")]
    Several(usize),
    /// The record starts with `v=STSv1` but breaks the grammar.
    #[error("malformed MTA-STS record: {0}")]
    Malformed(&'static str),
}

impl StsRecord {
    /// The policy instance id (`id=`), 1 to 32 letters and digits.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Parses one TXT record (its character-strings already joined).
    pub fn parse(txt: &str) -> Result<StsRecord, RecordError> {
        let rest = txt
            .strip_prefix("v=STSv1")
            .ok_or(RecordError::Malformed("does not start with v=STSv1"))?;
        let mut id = None;
        let mut fields = rest.split(';');
        // What follows the version must be a delimiter.
        if !fields
            .next()
            .is_some_and(|f| f.trim_matches(WSP).is_empty())
        {
            return Err(RecordError::Malformed("v=STSv1 is not followed by ';'"));
        }
        let mut trailing = false;
        for field in fields {
            let field = field.trim_matches(WSP);
            if trailing {
                return Err(RecordError::Malformed("empty field"));
            }
            if field.is_empty() {
                // Only the final delimiter may be followed by nothing.
                trailing = true;
                continue;
            }
            let (name, value) = field
                .split_once('=')
                .ok_or(RecordError::Malformed("field without '='"))?;
            if name == "id" {
                if id.is_some() {
                    return Err(RecordError::Malformed("id given twice"));
                }
                if value.is_empty()
                    || value.len() > 32
                    || !value.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return Err(RecordError::Malformed(
                        "id is not 1 to 32 letters and digits",
                    ));
                }
                id = Some(value.to_owned());
            } else if !is_ext_name(name) || !is_ext_value(value) {
                return Err(RecordError::Malformed("malformed extension field"));
            }
        }
        let id = id.ok_or(RecordError::Malformed("no id field"))?;
        Ok(StsRecord { id })
    }

    /// Picks the record among all TXT records of `_mta-sts.<domain>`:
    /// records that do not begin with `v=STSv1` are discarded; then exactly
    /// one must remain and be valid (§3.1). `Ok(None)`: the domain
    /// announces no policy.
    pub fn select<'a>(
        txts: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<StsRecord>, RecordError> {
        let candidates: Vec<&str> = txts
            .into_iter()
            .filter(|t| t.starts_with("v=STSv1"))
            .collect();
        match candidates.as_slice() {
            [] => Ok(None),
            [one] => StsRecord::parse(one).map(Some),
            many => Err(RecordError::Several(many.len())),
        }
    }
}

impl fmt::Display for StsRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=STSv1; id={};", self.id)
    }
}

const WSP: [char; 2] = [' ', '\t'];

fn is_ext_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

fn is_ext_value(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|c| matches!(c, 0x21..=0x3a | 0x3c | 0x3e..=0x7e))
}
