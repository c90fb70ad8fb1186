//! The EHLO capability set, computed from configuration, transport and
//! policy, and the EHLO reply written straight into the output buffer.

use crate::offer::EhloOffer;
use crate::text::push_sanitized;

/// Appends the 250 reply to `EHLO`/`LHLO` for `offer`: byte for byte what
/// `EhloResponse { domain: hostname, greeting: None, capabilities }.to_reply()`
/// encodes, without building it.
pub(crate) fn write_ehlo(
    out: &mut Vec<u8>,
    hostname: &str,
    offer: &EhloOffer,
    tls: bool,
    size: u64,
) {
    let ext = &offer.extensions;
    let start = out.len();
    let line = |out: &mut Vec<u8>, parts: &[&[u8]]| {
        out.extend_from_slice(b"250-");
        for p in parts {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(b"\r\n");
    };
    out.extend_from_slice(b"250-");
    push_sanitized(out, hostname);
    out.extend_from_slice(b"\r\n");
    if ext.pipelining {
        line(out, &[b"PIPELINING"]);
    }
    let mut digits = [0u8; 20];
    match size {
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
        (!tls && offer.starttls, b"STARTTLS"),
        (tls && ext.requiretls, b"REQUIRETLS"),
    ];
    for (on, name) in flags {
        if on {
            line(out, &[name]);
        }
    }
    if !offer.auth.is_empty() {
        out.extend_from_slice(b"250-AUTH");
        for m in &offer.auth {
            out.push(b' ');
            // Mechanism names are SASL names (RFC 4422 §3.1): no CR/LF,
            // but sanitised anyway, as all text the session writes.
            push_sanitized(out, m.as_str());
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
    use crate::config::{AuthPolicy, Config, Extensions};
    use postern_proto::{Mechanism, Reply, ReplyCode};

    /// What `EhloResponse::to_reply` builds: the name, then
    /// `Capabilities::lines`.
    fn via_proto(config: &Config, tls: bool) -> Vec<u8> {
        let mut lines = vec![std::borrow::Cow::Owned(config.hostname.clone())];
        EhloOffer::proposal(config, tls)
            .capabilities(tls, config.limits.max_message_size)
            .lines(&mut lines);
        Reply::new(ReplyCode::OK, None, lines).unwrap().to_vec()
    }

    fn fast(config: &Config, tls: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let offer = EhloOffer::proposal(config, tls);
        write_ehlo(
            &mut out,
            &config.hostname,
            &offer,
            tls,
            config.limits.max_message_size,
        );
        out
    }

    #[test]
    fn fast_writer_matches_the_proto_encoder() {
        let mut configs = vec![Config::default()];
        let mut c = Config {
            extensions: Extensions {
                binary_mime: true,
                ..Extensions::none()
            },
            auth: AuthPolicy::disabled(),
            ..Config::default()
        };
        c.starttls.offer_starttls = false;
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
        let size = config.limits.max_message_size;
        let plain = EhloOffer::proposal(&config, false).capabilities(false, size);
        assert!(plain.starttls && !plain.requiretls && plain.auth.is_none());
        let tls = EhloOffer::proposal(&config, true).capabilities(true, size);
        assert!(!tls.starttls && tls.requiretls);
        assert_eq!(tls.auth, Some(vec![Mechanism::Plain, Mechanism::Login]));
    }

    #[test]
    fn unregistered_mechanisms_are_not_offered() {
        let mut config = Config::default();
        config.auth.tls = vec![Mechanism::ScramSha256, Mechanism::Plain];
        let offer = EhloOffer::proposal(&config, true);
        assert_eq!(offer.auth, vec![Mechanism::Plain]);
        assert!(!offer.offers_auth(&Mechanism::ScramSha256));
    }

    #[test]
    fn an_offer_may_only_narrow_the_proposal() {
        let config = Config::default();
        let proposal = EhloOffer::proposal(&config, false);
        assert_eq!(proposal.clone().excess_over(&proposal), None);
        let mut wider = proposal.clone();
        wider.auth.push(Mechanism::Plain);
        assert_eq!(wider.excess_over(&proposal).as_deref(), Some("AUTH PLAIN"));
        let tls = EhloOffer::proposal(&config, true);
        let mut starttls = tls.clone();
        starttls.starttls = true;
        assert_eq!(starttls.excess_over(&tls).as_deref(), Some("STARTTLS"));
        assert_eq!(tls.clone().without_auth().excess_over(&tls), None);
    }
}
