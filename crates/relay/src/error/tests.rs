//! One test per variant: its RFC 3463 status, and that the transient /
//! permanent classification agrees with the status's class.

use postern_proto::{EhloError, EnhancedCode, Reply, ReplyCode, ReplyError};

use super::{Phase, RelayError};
use postern_proto::TlsVersion;

fn reply(code: u16, enhanced: Option<(u8, u16, u16)>) -> Reply<'static> {
    let code = ReplyCode::new(code).expect("valid code");
    let enhanced = enhanced.map(|(c, s, d)| EnhancedCode::new(c, s, d).expect("valid status"));
    Reply::new(code, enhanced, ["text"]).expect("valid reply")
}

/// The status as text, after checking it agrees with the classification.
fn status(e: &RelayError) -> String {
    let status = e.status();
    assert!(matches!(status.class(), 4 | 5), "{e}: {status}");
    assert_eq!(e.is_permanent(), status.class() == 5, "{e}: {status}");
    assert_eq!(e.is_transient(), status.class() == 4, "{e}: {status}");
    status.to_string()
}

#[test]
fn rejected_takes_the_servers_status() {
    let e = |r| RelayError::Rejected {
        phase: Phase::Rcpt,
        reply: r,
    };
    assert_eq!(status(&e(reply(550, Some((5, 1, 1))))), "5.1.1");
    assert_eq!(status(&e(reply(451, Some((4, 3, 0))))), "4.3.0");
    // No enhanced code: the class, "other or undefined" (RFC 3463 §3.1).
    assert_eq!(status(&e(reply(554, None))), "5.0.0");
    assert_eq!(status(&e(reply(421, None))), "4.0.0");
    // A positive or intermediate reply where a refusal was read: a
    // protocol fault, transient.
    assert_eq!(status(&e(reply(250, None))), "4.5.0");
    assert_eq!(status(&e(reply(354, None))), "4.5.0");
}

#[test]
fn rejected_exposes_the_typed_reply() {
    let r = reply(550, Some((5, 1, 1)));
    let e = RelayError::Rejected {
        phase: Phase::Rcpt,
        reply: r.clone(),
    };
    assert_eq!(e.reply(), Some(&r));
    assert_eq!(RelayError::TlsUnavailable.reply(), None);
}

#[test]
fn starttls_refused_is_transient_whatever_the_reply() {
    let e = RelayError::StartTlsRefused(reply(454, Some((4, 7, 0))));
    assert_eq!(status(&e), "4.7.0");
    assert_eq!(e.reply().map(|r| r.code().get()), Some(454));
    assert_eq!(
        status(&RelayError::StartTlsRefused(reply(454, None))),
        "4.7.4"
    );
    // A 5yz answer to STARTTLS fails this relay's policy, not the message.
    let e = RelayError::StartTlsRefused(reply(554, Some((5, 5, 1))));
    assert_eq!(status(&e), "4.7.4");
}

#[test]
fn tls_failures() {
    assert_eq!(status(&RelayError::TlsUnavailable), "4.7.4");
    assert_eq!(status(&RelayError::TlsHandshake("alert".into())), "4.7.5");
    assert_eq!(status(&RelayError::ResponseInjection { bytes: 9 }), "4.7.5");
    assert_eq!(
        status(&RelayError::NoUsableTlsVersion {
            requested: vec![TlsVersion::Tls11],
        }),
        "4.7.5"
    );
}

#[test]
fn auth_failures() {
    assert_eq!(status(&RelayError::AuthRequiresTls), "4.7.0");
    assert_eq!(status(&RelayError::AuthUnavailable), "4.7.0");
}

#[test]
fn connection_failures() {
    assert_eq!(status(&RelayError::Timeout(Phase::Greeting)), "4.4.2");
    assert_eq!(status(&RelayError::Closed(Phase::Data)), "4.4.2");
    let io = RelayError::Io {
        phase: Phase::Connect,
        message: "refused".into(),
    };
    assert_eq!(status(&io), "4.4.2");
}

#[test]
fn protocol_failures() {
    let malformed = RelayError::MalformedReply {
        phase: Phase::Ehlo,
        error: ReplyError::BadCode,
    };
    assert_eq!(status(&malformed), "4.5.0");
    let long = RelayError::ReplyTooLong {
        phase: Phase::Ehlo,
        limit: 64,
    };
    assert_eq!(status(&long), "4.5.0");
    assert_eq!(
        status(&RelayError::MalformedEhlo(EhloError::NoDomain)),
        "4.5.0"
    );
    let protocol = RelayError::Protocol {
        phase: Phase::Data,
        what: "250 instead of 354".into(),
    };
    assert_eq!(status(&protocol), "4.5.0");
}

#[test]
fn message_properties_are_permanent() {
    let big = RelayError::MessageTooBig { size: 10, limit: 5 };
    assert_eq!(status(&big), "5.3.4");
    assert_eq!(status(&RelayError::EightBitUnsupported), "5.6.3");
    assert_eq!(status(&RelayError::BinaryUnsupported), "5.6.3");
    assert_eq!(status(&RelayError::SmtpUtf8Unsupported), "5.6.7");
    assert_eq!(status(&RelayError::RequireTlsUnmet("no TLS")), "5.7.30");
    assert!(RelayError::RequireTlsUnmet("no TLS").is_permanent());
    assert_eq!(status(&RelayError::BareLineEnding), "5.6.0");
    assert_eq!(status(&RelayError::Encode(Phase::Rcpt)), "5.5.2");
}

#[test]
fn dns_failures() {
    assert_eq!(
        status(&RelayError::NoSuchDomain("nx.example".into())),
        "5.1.2"
    );
    assert_eq!(status(&RelayError::NullMx("example.org".into())), "5.1.10");
    assert_eq!(status(&RelayError::Resolve("SERVFAIL".into())), "4.4.3");
}

#[test]
fn configuration_errors_delay_rather_than_bounce() {
    assert_eq!(status(&RelayError::Config("bad anchors".into())), "4.3.5");
}

#[test]
fn dane_refusals_are_transient() {
    use super::DaneRefusal;
    use crate::dnssec::DnssecStatus;
    use crate::resolve::ResolveError;
    let lookup = RelayError::Dane(DaneRefusal::TlsaLookup {
        name: "_25._tcp.mx.example".into(),
        error: ResolveError::Transient("SERVFAIL".into()),
    });
    assert_eq!(status(&lookup), "4.4.3");
    let bogus = RelayError::Dane(DaneRefusal::Dnssec {
        name: "example".into(),
        what: "MX",
        status: DnssecStatus::Bogus,
    });
    assert_eq!(status(&bogus), "4.4.3");
    let only = RelayError::Dane(DaneRefusal::NotAuthenticated {
        host: "mx.example".into(),
        reason: "no TLSA records",
    });
    assert_eq!(status(&only), "4.7.5");
    assert_eq!(status(&RelayError::Dane(DaneRefusal::NoResolver)), "4.7.5");
}
