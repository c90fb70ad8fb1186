//! The `_smtp._tls.<domain>` TXT record (RFC 8460 §3).

/// Where reports go.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReportUri {
    /// `mailto:` an address (the report is mailed as
    /// `application/tlsrpt+gzip`, §5.3).
    Mail(String),
    /// `https:` a URL (the report is POSTed, §5.4).
    Https(String),
}

/// A valid TLS-RPT record.
///
/// ```text
/// tlsrpt-record   = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
/// field-delim     = *WSP ";" *WSP
/// tlsrpt-version  = %s"v=TLSRPTv1"
/// tlsrpt-field    = tlsrpt-rua / tlsrpt-extension
/// tlsrpt-rua      = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
/// tlsrpt-uri      = URI   ; "," and ";" percent-encoded
/// tlsrpt-extension = tlsrpt-ext-name "=" tlsrpt-ext-value
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsRptRecord {
    rua: Vec<ReportUri>,
}

/// Why a TXT record gives no reporting address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsRptRecordError {
    /// Several records start with `v=TLSRPTv1` (§3: exactly one).
    #[error("{0} TXT records start with v=TLSRPTv1; exactly one is allowed")]
    Several(usize),
    /// The record breaks the grammar.
    #[error("malformed TLS-RPT record: {0}")]
    Malformed(&'static str),
}

impl TlsRptRecord {
    /// The reporting URIs we can use (`mailto:` and `https:`), in order.
    pub fn rua(&self) -> &[ReportUri] {
        &self.rua
    }

    /// Parses one record. URIs of other schemes are skipped (§3: "other
    /// URI schemes MAY be supported"); a record left with none is an error.
    pub fn parse(txt: &str) -> Result<TlsRptRecord, TlsRptRecordError> {
        let bad = TlsRptRecordError::Malformed;
        let rest = txt
            .strip_prefix("v=TLSRPTv1")
            .ok_or(bad("does not start with v=TLSRPTv1"))?;
        let mut fields = rest.split(';');
        if !fields
            .next()
            .is_some_and(|f| f.trim_matches([' ', '\t']).is_empty())
        {
            return Err(bad("v=TLSRPTv1 is not followed by ';'"));
        }
        let mut rua = None;
        let mut ended = false;
        for field in fields {
            let field = field.trim_matches([' ', '\t']);
            if ended {
                return Err(bad("empty field"));
            }
            if field.is_empty() {
                ended = true;
                continue;
            }
            let (name, value) = field.split_once('=').ok_or(bad("field without '='"))?;
            if name == "rua" {
                if rua.is_some() {
                    return Err(bad("rua given twice"));
                }
                let mut uris = Vec::new();
                for uri in value.split(',') {
                    let uri = uri.trim_matches([' ', '\t']);
                    if uri.is_empty() || !uri.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(bad("malformed rua URI"));
                    }
                    if let Some(addr) = uri.strip_prefix("mailto:") {
                        if !addr.contains('@') {
                            return Err(bad("mailto: without an address"));
                        }
                        uris.push(ReportUri::Mail(
                            percent_decode(addr).ok_or(bad("bad %-escape"))?,
                        ));
                    } else if uri.starts_with("https://") && uri.len() > "https://".len() {
                        uris.push(ReportUri::Https(uri.to_owned()));
                    }
                }
                rua = Some(uris);
            } else if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return Err(bad("malformed extension field"));
            }
        }
        let rua = rua.ok_or(bad("no rua field"))?;
        if rua.is_empty() {
            return Err(bad("no mailto: or https: URI in rua"));
        }
        Ok(TlsRptRecord { rua })
    }

    /// Picks the record among the TXT records of `_smtp._tls.<domain>`:
    /// others are discarded, exactly one must remain. `Ok(None)`: the
    /// domain wants no reports.
    pub fn select<'a>(
        txts: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<TlsRptRecord>, TlsRptRecordError> {
        let found: Vec<&str> = txts
            .into_iter()
            .filter(|t| t.starts_with("v=TLSRPTv1"))
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => TlsRptRecord::parse(one).map(Some),
            many => Err(TlsRptRecordError::Several(many.len())),
        }
    }
}

/// Decodes `%XX` escapes (a `mailto:` address may escape `,` and `;`).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
