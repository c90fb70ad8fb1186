//! The EHLO capability set, computed from configuration, transport and
//! policy, and the EHLO reply written straight into the output buffer.

use postern_proto::{Capabilities, Mechanism};

use crate::config::Config;
use crate::text::push_sanitized;

/// The mechanisms offered on a transport: allowed there by policy and
/// registered, in policy order.
pub(crate) fn offered_mechanisms(
    config: &Config,
    tls: bool,
) -> impl Iterator<Item = &Mechanism<'static>> {
    config
        .auth
        .for_transport(tls)
        .iter()
        .filter(|m| config.mechanisms.contains(m))
}

/// Whether `mechanism` is offered on the transport.
pub(crate) fn mechanism_offered(config: &Config, tls: bool, mechanism: &Mechanism<'_>) -> bool {
    offered_mechanisms(config, tls).any(|m| m.as_str() == mechanism.as_str())
}

/// The typed capability set after `EHLO`/`LHLO`.
pub(crate) fn capabilities(config: &Config, tls: bool) -> Capabilities<'static> {
    let ext = &config.extensions;
    let auth: Vec<Mechanism<'static>> = offered_mechanisms(config, tls).cloned().collect();
    Capabilities {
        size: Some(config.limits.max_message_size),
        pipelining: ext.pipelining,
        eight_bit_mime: ext.eight_bit_mime,
        smtputf8: ext.smtputf8,
        chunking: ext.chunking,
        binary_mime: ext.chunking && ext.binary_mime,
        dsn: ext.dsn,
        enhanced_status_codes: ext.enhanced_status_codes,
        starttls: !tls && config.tls.offer_starttls,
        requiretls: tls && ext.requiretls,
        auth: (!auth.is_empty()).then_some(auth),
        unknown: Vec::new(),
    }
}

/// Appends the 250 reply to `EHLO`/`LHLO`: byte for byte what
/// `EhloResponse { domain: hostname, greeting: None, capabilities }.to_reply()`
/// encodes, without building it.
pub(crate) fn write_ehlo(out: &mut Vec<u8>, config: &Config, tls: bool) {
    let ext = &config.extensions;
    let start = out.len();
    let line = |out: &mut Vec<u8>, parts: &[&[u8]]| {
        out.extend_from_slice(b"250-");
        for p in parts {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(b"\r\n");
    };
    out.extend_from_slice(b"250-");
    push_sanitized(out, &config.hostname);
    out.extend_from_slice(b"\r\n");
    if ext.pipelining {
        line(out, &[b"PIPELINING"]);
    }
    let mut digits = [0u8; 20];
    match config.limits.max_message_size {
        0 => line(out, &[b"SIZE"]),
        n => line(out, &[b"SIZE ", format_u64(n, &mut digits)]),
    }
    let flags: [(bool, &[u8]); 8] = [
        (ext.eight_bit_mime, b"8BITMIME"),
        (ext.smtputf8, b"SMTPUTF8"),
        (ext.enhanced_status_codes, b"ENHANCEDSTATUSCODES"),
        (ext.chunking, b"CHUNKING"),
        (ext.chunking && ext.binary_mime, b"BINARYMIME"),
        (ext.dsn, b"DSN"),
        (!tls && config.tls.offer_starttls, b"STARTTLS"),
        (tls && ext.requiretls, b"REQUIRETLS"),
    ];
    for (on, name) in flags {
        if on {
            line(out, &[name]);
        }
    }
    let mut mechanisms = offered_mechanisms(config, tls).peekable();
    if mechanisms.peek().is_some() {
        out.extend_from_slice(b"250-AUTH");
        for m in mechanisms {
            out.push(b' ');
            out.extend_from_slice(m.as_str().as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    // The last line takes "250 " instead of "250-": it starts after the
    // last CRLF but one.
    let written = &out[start..out.len() - 2];
    let last = written
        .windows(2)
        .rposition(|w| w == b"\r\n")
        .map_or(start, |i| start + i + 2);
    out[last + 3] = b' ';
}

/// Writes the decimal digits of `n` into `buf` and returns them.
pub(crate) fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthPolicy;
    use postern_proto::{Reply, ReplyCode};

    /// What `EhloResponse::to_reply` builds: the name, then
    /// `Capabilities::lines`.
    fn via_proto(config: &Config, tls: bool) -> Vec<u8> {
        let mut lines = vec![std::borrow::Cow::Owned(config.hostname.clone())];
        capabilities(config, tls).lines(&mut lines);
        Reply::new(ReplyCode::OK, None, lines).unwrap().to_vec()
    }

    fn fast(config: &Config, tls: bool) -> Vec<u8> {
        let mut out = Vec::new();
        write_ehlo(&mut out, config, tls);
        out
    }

    #[test]
    fn fast_writer_matches_the_proto_encoder() {
        let mut configs = vec![Config::default()];
        let mut c = Config {
            extensions: crate::config::Extensions {
                pipelining: false,
                eight_bit_mime: false,
                smtputf8: false,
                enhanced_status_codes: false,
                chunking: false,
                binary_mime: true,
                dsn: false,
                requiretls: false,
            },
            auth: AuthPolicy::disabled(),
            ..Config::default()
        };
        c.tls.offer_starttls = false;
        configs.push(c.clone());
        c.limits.max_message_size = 0;
        configs.push(c.clone());
        c.auth.plaintext = vec![Mechanism::Login];
        configs.push(c);
        for config in &configs {
            for tls in [false, true] {
                assert_eq!(
                    String::from_utf8(fast(config, tls)).unwrap(),
                    String::from_utf8(via_proto(config, tls)).unwrap()
                );
            }
        }
    }

    #[test]
    fn transport_decides_starttls_auth_and_requiretls() {
        let config = Config::default();
        let plain = capabilities(&config, false);
        assert!(plain.starttls && !plain.requiretls && plain.auth.is_none());
        let tls = capabilities(&config, true);
        assert!(!tls.starttls && tls.requiretls);
        assert_eq!(tls.auth, Some(vec![Mechanism::Plain, Mechanism::Login]));
    }

    #[test]
    fn unregistered_mechanisms_are_not_offered() {
        let mut config = Config::default();
        config.auth.tls = vec![Mechanism::ScramSha256, Mechanism::Plain];
        assert_eq!(
            capabilities(&config, true).auth,
            Some(vec![Mechanism::Plain])
        );
        assert!(!mechanism_offered(&config, true, &Mechanism::ScramSha256));
    }
}
