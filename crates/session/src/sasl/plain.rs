//! PLAIN (RFC 4616).
//!
//! ```text
//! message   = [authzid] UTF8NUL authcid UTF8NUL passwd
//! authcid   = 1*SAFE ; MUST accept up to 255 octets
//! passwd    = 1*SAFE ; MUST accept up to 255 octets
//! ```

use postern_proto::Mechanism;

use super::{Credentials, SaslMechanism, SaslServer, SaslStep, Secret};

/// The PLAIN mechanism.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

/// Longest identity or password accepted. RFC 4616 requires 255; more is
/// allowed, within the AUTH line limit that bounds the whole message.
const MAX_FIELD: usize = 1024;

impl SaslMechanism for Plain {
    fn name(&self) -> Mechanism<'static> {
        Mechanism::Plain
    }

    fn start(&self) -> Box<dyn SaslServer> {
        Box::new(PlainServer { challenged: false })
    }
}

struct PlainServer {
    challenged: bool,
}

impl SaslServer for PlainServer {
    fn step(&mut self, response: Option<&[u8]>) -> SaslStep {
        match response {
            // No initial response: an empty challenge asks for the message.
            None if !self.challenged => {
                self.challenged = true;
                SaslStep::Challenge(Vec::new())
            }
            None => SaslStep::Malformed("PLAIN expects a response"),
            Some(message) => parse(message),
        }
    }
}

fn parse(message: &[u8]) -> SaslStep {
    let mut fields = message.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(authcid), Some(passwd)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return SaslStep::Malformed("PLAIN message needs authzid NUL authcid NUL passwd");
    };
    if authcid.is_empty() || passwd.is_empty() {
        return SaslStep::Malformed("empty PLAIN identity or password");
    }
    if authcid.len() > MAX_FIELD || passwd.len() > MAX_FIELD || authzid.len() > MAX_FIELD {
        return SaslStep::Malformed("PLAIN field too long");
    }
    if passwd.contains(&0) {
        return SaslStep::Malformed("NUL in PLAIN password");
    }
    let (Ok(authzid), Ok(authcid)) = (std::str::from_utf8(authzid), std::str::from_utf8(authcid))
    else {
        return SaslStep::Malformed("PLAIN identity is not UTF-8");
    };
    SaslStep::Done(Credentials {
        check: super::ProofCheck::ByEmbedder,
        mechanism: Mechanism::Plain,
        authzid: (!authzid.is_empty()).then(|| authzid.to_owned()),
        authcid: authcid.to_owned(),
        secret: Secret::new(passwd.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(step: SaslStep) -> Credentials {
        match step {
            SaslStep::Done(c) => c,
            other => panic!("expected credentials, got {other:?}"),
        }
    }

    #[test]
    fn parses_with_and_without_authzid() {
        let c = done(parse(b"\0alice\0s3cret"));
        assert_eq!((c.authzid, c.authcid.as_str()), (None, "alice"));
        assert_eq!(c.secret.expose(), b"s3cret");
        let c = done(parse(b"bob\0alice\0pw"));
        assert_eq!(c.authzid.as_deref(), Some("bob"));
    }

    #[test]
    fn refuses_malformed_messages() {
        for m in [
            &b""[..],
            b"alice",
            b"\0alice",
            b"\0\0pw",
            b"\0alice\0",
            b"\0al\xffice\0pw",
            b"\0alice\0p\0w",
        ] {
            assert!(matches!(parse(m), SaslStep::Malformed(_)), "{m:?}");
        }
    }

    #[test]
    fn asks_once_without_initial_response() {
        let mut s = Plain.start();
        assert!(matches!(s.step(None), SaslStep::Challenge(c) if c.is_empty()));
        assert!(matches!(s.step(None), SaslStep::Malformed(_)));
    }

    #[test]
    fn debug_hides_the_password() {
        let c = done(parse(b"\0alice\0hunter2"));
        let shown = format!("{c:?}");
        assert!(shown.contains("alice"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
