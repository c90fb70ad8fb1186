//! The `Received:` trace header (RFC 5321 §4.4), with the protocol keyword
//! of RFC 3848, the TLS version, cipher (RFC 8314 §4.3) and key-exchange
//! group, and the authenticated user.

use std::time::{SystemTime, UNIX_EPOCH};

/// What the Received header records about one transaction.
///
/// Build it from [`TraceInfo::default`] and set the fields that apply.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TraceInfo<'a> {
    /// The client's HELO/EHLO name.
    pub helo: Option<&'a str>,
    /// The client's IP address.
    pub peer_ip: Option<std::net::IpAddr>,
    /// Our host name.
    pub by: &'a str,
    /// The listener's name.
    pub listener: &'a str,
    /// EHLO (true) or HELO.
    pub esmtp: bool,
    /// Negotiated TLS version and cipher.
    pub tls: Option<(String, String)>,
    /// The TLS key-exchange group (e.g. `X25519MLKEM768`), when known;
    /// written as Postfix does, so readers see whether the session was
    /// protected against later decryption by a quantum computer.
    pub key_exchange: Option<String>,
    /// The authenticated user.
    pub auth_user: Option<&'a str>,
    /// The queue id.
    pub id: &'a str,
    /// The recipient, when there is exactly one.
    pub single_recipient: Option<&'a str>,
}

/// Characters that could break the header (CR, LF, other controls, and
/// parentheses and brackets that would unbalance comments) become `?`.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '(' | ')' | '[' | ']' | '<' | '>' | ';') {
                '?'
            } else {
                c
            }
        })
        .take(255)
        .collect()
}

/// The header, folded, ending in CRLF.
pub fn received_header(t: &TraceInfo<'_>, now: SystemTime) -> String {
    let helo = t.helo.map_or_else(|| "unknown".to_owned(), clean);
    let ip = t
        .peer_ip
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    // RFC 3848: ESMTP, ESMTPS (TLS), ESMTPA (AUTH), ESMTPSA (both).
    let mut with = String::from(if t.esmtp { "ESMTP" } else { "SMTP" });
    if t.tls.is_some() {
        with.push('S');
    }
    if t.auth_user.is_some() {
        with.push('A');
    }
    let mut h = format!(
        "Received: from {helo} ([{ip}])\r\n\tby {} (Postern, listener {})",
        clean(t.by),
        clean(t.listener)
    );
    if let Some((version, cipher)) = &t.tls {
        let kx = t
            .key_exchange
            .as_deref()
            .map_or_else(String::new, |g| format!(" key-exchange {}", clean(g)));
        h.push_str(&format!(
            "\r\n\t(using {} with cipher {}{kx})",
            clean(version),
            clean(cipher)
        ));
    }
    if let Some(user) = t.auth_user {
        h.push_str(&format!("\r\n\t(Authenticated sender: {})", clean(user)));
    }
    h.push_str(&format!("\r\n\twith {with} id {}", clean(t.id)));
    if let Some(r) = t.single_recipient {
        h.push_str(&format!("\r\n\tfor <{}>", clean(r)));
    }
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    h.push_str(&format!("; {}\r\n", crate::report::rfc5322_date(secs)));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_records_tls_and_user() {
        let h = received_header(
            &TraceInfo {
                helo: Some("client\r\nX-Evil: 1"),
                peer_ip: Some("127.0.0.1".parse().unwrap()),
                by: "mx.example",
                listener: "submission",
                esmtp: true,
                tls: Some(("TLSv1.3".into(), "TLS13_AES_256_GCM_SHA384".into())),
                key_exchange: Some("X25519MLKEM768".into()),
                auth_user: Some("alice"),
                id: "0123",
                single_recipient: Some("bob@example.org"),
            },
            UNIX_EPOCH,
        );
        assert!(h.contains(
            "using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384 key-exchange X25519MLKEM768)"
        ));
        assert!(h.contains("Authenticated sender: alice"));
        assert!(h.contains("with ESMTPSA id 0123"));
        assert!(!h.contains("\r\nX-Evil"));
        assert!(h.ends_with("+0000\r\n"));
    }
}
