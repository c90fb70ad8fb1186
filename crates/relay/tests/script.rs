//! Scripted sans-IO tests: the client against canned server replies, no
//! sockets (quinn-proto / h2 style). Every reply path of the dialogue.

use std::sync::Arc;

use postern_proto::{
    Body, ForwardPath, Host, Mailbox, Notify, RcptParams, Ret, ReversePath, TlsVersion,
};
use postern_relay::{
    Client, ClientEvent, LineEndings, Message, MessageResult, OutboundTls, Phase, Recipient,
    RelayCredentials, RelayError, SessionConfig, TlsRequirement,
};

fn config(tls: TlsRequirement) -> SessionConfig {
    let mut c = SessionConfig::new(Host::parse("client.example").unwrap().into_owned());
    c.tls = tls;
    c
}

fn rcpt(s: &str) -> ForwardPath<'static> {
    ForwardPath::Mailbox(Mailbox::parse(s).unwrap().into_owned())
}

fn message(to: &[&str], body: &[u8]) -> Message {
    Message::new(
        ReversePath::Mailbox(Mailbox::parse("alice@example.org").unwrap().into_owned()),
        to.iter().map(|t| rcpt(t)),
        body.to_vec(),
    )
}

fn tls_info() -> OutboundTls {
    OutboundTls::new(
        TlsVersion::Tls13,
        "TLS13_AES_128_GCM_SHA256",
        true,
        "mx.example.net",
    )
}

/// A client and everything it wrote and announced.
struct Script {
    client: Client,
    events: Vec<ClientEvent>,
}

impl Script {
    fn new(config: SessionConfig) -> Self {
        Self {
            client: Client::new(Arc::new(config)),
            events: Vec::new(),
        }
    }

    /// Feeds server octets (all of which the client must take); returns
    /// what the client wrote in response (its whole output, one buffer).
    fn server(&mut self, bytes: &str) -> String {
        self.feed(bytes.as_bytes());
        self.written()
    }

    fn feed(&mut self, bytes: &[u8]) {
        assert_eq!(self.client.receive(bytes), bytes.len(), "all input taken");
    }

    /// The client's whole output, consumed.
    fn take_output(&mut self) -> Vec<u8> {
        let out = self.client.output().to_vec();
        self.client.consume_output(out.len());
        assert!(!self.client.has_output(), "one write per batch");
        out
    }

    fn written(&mut self) -> String {
        let out = self.take_output();
        while let Some(e) = self.client.poll_event() {
            self.events.push(e);
        }
        String::from_utf8(out).unwrap()
    }

    fn send(&mut self, m: Message) -> String {
        self.client.send(m).unwrap();
        self.written()
    }

    /// Greeting and EHLO with `ehlo_lines` as extensions; asserts ready.
    fn ready(config: SessionConfig, ehlo: &str) -> Self {
        let mut s = Self::new(config);
        assert_eq!(
            s.server("220 mx.example.net ESMTP\r\n"),
            "EHLO client.example\r\n"
        );
        assert_eq!(s.server(ehlo), "");
        assert_eq!(s.take_events(), [ClientEvent::Ready]);
        s
    }

    fn take_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.events)
    }

    fn done(&mut self) -> MessageResult {
        let events = self.take_events();
        let [ClientEvent::Done(r)] = events.as_slice() else {
            panic!("expected one Done, got {events:?}")
        };
        r.clone()
    }

    fn failed(&mut self) -> RelayError {
        let events = self.take_events();
        match events.last() {
            Some(ClientEvent::Failed(e)) => e.clone(),
            _ => panic!("expected Failed, got {events:?}"),
        }
    }
}

const EHLO_BARE: &str = "250 mx.example.net\r\n";
const EHLO_PIPE: &str = "250-mx.example.net\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 1000\r\n";

fn stage_of(r: &MessageResult, i: usize) -> (Phase, u16) {
    match &r.recipients[i].outcome {
        Err(RelayError::Rejected { phase, reply }) => (*phase, reply.code().get()),
        other => panic!("recipient {i}: {other:?}"),
    }
}

#[test]
fn plain_delivery_one_command_at_a_time() {
    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_BARE);
    let out = s.send(message(
        &["bob@example.net", "carol@example.net"],
        b"Subject: x\r\n\r\n.hi\r\n",
    ));
    assert_eq!(out, "MAIL FROM:<alice@example.org>\r\n");
    assert_eq!(s.server("250 ok\r\n"), "RCPT TO:<bob@example.net>\r\n");
    assert_eq!(s.server("250 ok\r\n"), "RCPT TO:<carol@example.net>\r\n");
    assert_eq!(s.server("250 ok\r\n"), "DATA\r\n");
    // Dot-stuffed, CRLF.CRLF terminated.
    assert_eq!(s.server("354 go\r\n"), "Subject: x\r\n\r\n..hi\r\n.\r\n");
    assert_eq!(s.server("250 2.0.0 queued as X\r\n"), "");
    let r = s.done();
    assert!(r.all_delivered());
    assert_eq!(r.recipients[0].reply().unwrap().text(), "queued as X");
    assert!(r.tls.is_none());
    assert!(s.client.is_ready());
    s.client.quit();
    assert_eq!(s.written(), "QUIT\r\n");
    s.server("221 bye\r\n");
    assert_eq!(s.take_events(), [ClientEvent::Closed]);
}

#[test]
fn greeting_refused_transient_and_permanent() {
    let mut s = Script::new(config(TlsRequirement::Plain));
    assert_eq!(s.server("421 4.3.2 busy\r\n"), "");
    let e = s.failed();
    assert!(matches!(
        e,
        RelayError::Rejected {
            phase: Phase::Greeting,
            ..
        }
    ));
    assert!(e.is_transient());
    assert!(s.client.is_closed());

    let mut s = Script::new(config(TlsRequirement::Plain));
    assert_eq!(s.server("554 no service\r\n"), "QUIT\r\n");
    let e = s.failed();
    assert!(e.is_permanent());
    assert_eq!(e.reply().unwrap().code().get(), 554);
}

#[test]
fn ehlo_refused_falls_back_to_helo() {
    let mut s = Script::new(config(TlsRequirement::Opportunistic));
    s.server("220 old\r\n");
    assert_eq!(s.server("502 what?\r\n"), "HELO client.example\r\n");
    assert_eq!(s.server("250 old\r\n"), "");
    assert_eq!(s.take_events(), [ClientEvent::Ready]);
    assert!(s.client.capabilities().is_none());
    // No 8BITMIME after HELO: an 8-bit body fails clearly and permanently,
    // before MAIL.
    assert_eq!(
        s.send(message(&["bob@example.net"], "Grüße\r\n".as_bytes())),
        ""
    );
    let r = s.done();
    assert_eq!(
        r.recipients[0].outcome,
        Err(RelayError::EightBitUnsupported)
    );
    assert!(r.recipients[0].is_permanent());
    // A 7-bit body goes.
    assert_eq!(
        s.send(message(&["bob@example.net"], b"hi\r\n")),
        "MAIL FROM:<alice@example.org>\r\n"
    );
}

#[test]
fn ehlo_transient_failure_ends_session() {
    let mut s = Script::new(config(TlsRequirement::Plain));
    s.server("220 hi\r\n");
    assert_eq!(s.server("450 later\r\n"), "QUIT\r\n");
    assert!(matches!(
        s.failed(),
        RelayError::Rejected {
            phase: Phase::Ehlo,
            ..
        }
    ));
}

#[test]
fn ehlo_refused_with_required_tls_never_sends_mail() {
    let mut s = Script::new(config(TlsRequirement::Required));
    s.server("220 old\r\n");
    assert_eq!(s.server("500 what?\r\n"), "HELO client.example\r\n");
    assert_eq!(s.server("250 old\r\n"), "QUIT\r\n");
    let e = s.failed();
    assert_eq!(e, RelayError::TlsUnavailable);
    assert!(e.is_transient());
}

#[test]
fn mail_refused_fails_every_recipient_without_rset() {
    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_BARE);
    s.send(message(&["bob@example.net", "carol@example.net"], b"x\r\n"));
    assert_eq!(s.server("553 5.1.8 bad sender\r\n"), "");
    let r = s.done();
    assert_eq!(stage_of(&r, 0), (Phase::Mail, 553));
    assert_eq!(stage_of(&r, 1), (Phase::Mail, 553));
    assert!(r.recipients.iter().all(|r| r.is_permanent()));
    // No transaction was opened: the next message starts with MAIL.
    assert_eq!(
        s.send(message(&["bob@example.net"], b"x\r\n")),
        "MAIL FROM:<alice@example.org>\r\n"
    );
}

#[test]
fn some_recipients_refused() {
    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_BARE);
    s.send(message(
        &["a@example.net", "b@example.net", "c@example.net"],
        b"x\r\n",
    ));
    s.server("250 ok\r\n");
    assert_eq!(
        s.server("550 5.1.1 no such user\r\n"),
        "RCPT TO:<b@example.net>\r\n"
    );
    assert_eq!(s.server("250 ok\r\n"), "RCPT TO:<c@example.net>\r\n");
    assert_eq!(s.server("451 4.3.0 try later\r\n"), "DATA\r\n");
    s.server("354 go\r\n");
    s.server("250 ok\r\n");
    let r = s.done();
    assert!(r.recipients[0].is_permanent());
    assert_eq!(stage_of(&r, 0), (Phase::Rcpt, 550));
    assert!(r.recipients[1].is_delivered());
    assert!(r.recipients[2].is_transient());
    assert_eq!(r.delivered(), 1);
}

#[test]
fn all_recipients_refused_skips_data_and_rsets_before_next_message() {
    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_BARE);
    s.send(message(&["a@example.net", "b@example.net"], b"x\r\n"));
    s.server("250 ok\r\n");
    s.server("550 no\r\n");
    assert_eq!(s.server("550 no\r\n"), "");
    let r = s.done();
    assert_eq!(r.delivered(), 0);
    // The server still holds MAIL: RSET first, then MAIL after its reply.
    assert_eq!(s.send(message(&["a@example.net"], b"x\r\n")), "RSET\r\n");
    assert_eq!(
        s.server("250 reset\r\n"),
        "MAIL FROM:<alice@example.org>\r\n"
    );
}

#[test]
fn data_refused() {
    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_BARE);
    s.send(message(&["a@example.net"], b"x\r\n"));
    s.server("250 ok\r\n");
    s.server("250 ok\r\n");
    assert_eq!(s.server("554 5.5.1 no valid recipients\r\n"), "");
    let r = s.done();
    assert_eq!(stage_of(&r, 0), (Phase::Data, 554));
    assert!(r.recipients[0].is_permanent());
}

#[test]
fn final_reply_after_354_transient_and_permanent() {
    for (reply, permanent) in [
        ("451 4.3.0 disk full\r\n", false),
        ("554 5.7.1 spam\r\n", true),
    ] {
        let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_BARE);
        s.send(message(&["a@example.net", "b@example.net"], b"x\r\n"));
        s.server("250 ok\r\n");
        s.server("250 ok\r\n");
        s.server("250 ok\r\n");
        s.server("354 go\r\n");
        s.server(reply);
        let r = s.done();
        for i in 0..2 {
            assert_eq!(stage_of(&r, i).0, Phase::DataEnd);
            assert_eq!(r.recipients[i].is_permanent(), permanent);
            assert_eq!(r.recipients[i].is_transient(), !permanent);
        }
        // A final reply closes the transaction: no RSET needed.
        assert_eq!(
            s.send(message(&["a@example.net"], b"x\r\n")),
            "MAIL FROM:<alice@example.org>\r\n"
        );
    }
}

#[test]
fn reply_421_at_any_point() {
    // During RCPT: the accepted and the undecided recipients get the 421.
    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_BARE);
    s.send(message(&["a@example.net", "b@example.net"], b"x\r\n"));
    s.server("250 ok\r\n");
    s.server("550 no\r\n");
    assert_eq!(s.server("421 4.4.2 shutting down\r\n"), "");
    let events = s.take_events();
    let [ClientEvent::Done(r), ClientEvent::Failed(e)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(stage_of(r, 0), (Phase::Rcpt, 550));
    assert_eq!(stage_of(r, 1), (Phase::Rcpt, 421));
    assert!(r.recipients[1].is_transient());
    assert!(e.is_transient());
    assert!(s.client.is_closed());

    // After the body.
    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_BARE);
    s.send(message(&["a@example.net"], b"x\r\n"));
    s.server("250 ok\r\n");
    s.server("250 ok\r\n");
    s.server("354 go\r\n");
    s.server("421 timeout\r\n");
    let events = s.take_events();
    let ClientEvent::Done(r) = &events[0] else {
        panic!()
    };
    assert_eq!(stage_of(r, 0), (Phase::DataEnd, 421));

    // Unsolicited, while idle.
    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_BARE);
    s.server("421 idle too long\r\n");
    assert!(matches!(
        s.failed(),
        RelayError::Rejected {
            phase: Phase::Idle,
            ..
        }
    ));

    // To EHLO.
    let mut s = Script::new(config(TlsRequirement::Plain));
    s.server("220 hi\r\n");
    assert_eq!(s.server("421 go away\r\n"), "");
    assert!(s.failed().is_transient());
}

#[test]
fn malformed_replies_end_the_session() {
    for bad in [
        "hello\r\n",
        "250 ok\n",
        "25O ok\r\n",
        "250-a\r\n251 b\r\n",
        "250x\r\n",
    ] {
        let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_BARE);
        s.send(message(&["a@example.net"], b"x\r\n"));
        assert_eq!(s.server(bad), "", "{bad:?}");
        let events = s.take_events();
        let [ClientEvent::Done(r), ClientEvent::Failed(e)] = events.as_slice() else {
            panic!("{bad:?}: {events:?}")
        };
        assert!(
            matches!(
                e,
                RelayError::MalformedReply {
                    phase: Phase::Mail,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(r.recipients[0].is_transient());
    }
    // An over-long line is refused before the end of line arrives.
    let mut s = Script::new(config(TlsRequirement::Plain));
    s.server(&format!("220 {}", "x".repeat(5000)));
    assert!(matches!(
        s.failed(),
        RelayError::MalformedReply {
            phase: Phase::Greeting,
            ..
        }
    ));
    // A reply nobody asked for.
    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_BARE);
    s.server("250 surprise\r\n");
    assert!(matches!(s.failed(), RelayError::Protocol { .. }));
}

#[test]
fn replies_split_anywhere_are_reassembled() {
    let mut s = Script::new(config(TlsRequirement::Plain));
    for b in "220 mx ESMTP\r".bytes() {
        s.feed(&[b]);
    }
    assert_eq!(s.server("\n"), "EHLO client.example\r\n");
    s.server("250-mx\r\n250-PIPE");
    s.server("LINING\r\n250 8BITMIME\r\n");
    assert_eq!(s.take_events(), [ClientEvent::Ready]);
    assert!(s.client.capabilities().unwrap().pipelining);
}

#[test]
fn pipelining_sends_mail_rcpt_data_in_one_write() {
    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_PIPE);
    let out = s.send(message(&["a@example.net", "b@example.net"], b"x\r\n"));
    assert_eq!(
        out,
        "MAIL FROM:<alice@example.org> SIZE=3\r\nRCPT TO:<a@example.net>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
    );
    assert_eq!(
        s.server("250 ok\r\n250 ok\r\n550 no\r\n354 go\r\n"),
        "x\r\n.\r\n"
    );
    s.server("250 queued\r\n");
    let r = s.done();
    assert!(r.recipients[0].is_delivered());
    assert!(r.recipients[1].is_permanent());
}

#[test]
fn pipelined_mail_refused_consumes_the_group() {
    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_PIPE);
    s.send(message(&["a@example.net"], b"x\r\n"));
    // RFC 2920: every reply of the group is read; a 354 despite no valid
    // recipient is ended with an empty body.
    assert_eq!(
        s.server("550 bad sender\r\n503 need MAIL\r\n354 go\r\n"),
        ".\r\n"
    );
    assert_eq!(s.server("554 no recipients\r\n"), "");
    let r = s.done();
    assert_eq!(stage_of(&r, 0), (Phase::Mail, 550));

    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_PIPE);
    s.send(message(&["a@example.net"], b"x\r\n"));
    s.server("250 ok\r\n550 no\r\n554 no valid recipients\r\n");
    let r = s.done();
    assert_eq!(stage_of(&r, 0), (Phase::Rcpt, 550));
    // MAIL succeeded: RSET goes in front of the next group, in the same write.
    let out = s.send(message(&["a@example.net"], b"x\r\n"));
    assert!(out.starts_with("RSET\r\nMAIL FROM:"), "{out}");
}

#[test]
fn chunking_uses_bdat() {
    let ehlo = "250-mx\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250 8BITMIME\r\n";
    let mut s = Script::ready(config(TlsRequirement::Plain), ehlo);
    assert_eq!(
        s.send(message(&["a@example.net"], b".x\nz")),
        "MAIL FROM:<alice@example.org>\r\n"
    );
    assert_eq!(s.server("250 ok\r\n"), "RCPT TO:<a@example.net>\r\n");
    // No stuffing for BDAT; bare LF normalised; the size counts the octets sent.
    assert_eq!(s.server("250 ok\r\n"), "BDAT 5 LAST\r\n.x\r\nz");
    s.server("250 queued\r\n");
    assert!(s.done().all_delivered());

    // Binary bodies go raw, BODY=BINARYMIME, in chunks when small chunks
    // are configured, with pipelining.
    let mut c = config(TlsRequirement::Plain);
    c.chunk_size = 4;
    let ehlo = "250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 BINARYMIME\r\n";
    let mut s = Script::ready(c, ehlo);
    let mut m = message(&["a@example.net"], b"\0\x01\r\x02\n\xff");
    m.body_type = Some(Body::BinaryMime);
    assert_eq!(
        s.send(m),
        "MAIL FROM:<alice@example.org> BODY=BINARYMIME\r\nRCPT TO:<a@example.net>\r\n"
    );
    s.feed(b"250 ok\r\n250 ok\r\n");
    let out = s.take_output();
    assert_eq!(out, b"BDAT 4\r\n\0\x01\r\x02BDAT 2 LAST\r\n\n\xff");
    s.server("250 chunk\r\n250 queued\r\n");
    assert!(s.done().all_delivered());
}

#[test]
fn binary_needs_chunking_and_binarymime() {
    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_PIPE);
    let mut m = message(&["a@example.net"], b"\0");
    m.body_type = Some(Body::BinaryMime);
    assert_eq!(s.send(m), "");
    assert_eq!(
        s.done().recipients[0].outcome,
        Err(RelayError::BinaryUnsupported)
    );
}

#[test]
fn bdat_chunk_refused() {
    let mut c = config(TlsRequirement::Plain);
    c.chunk_size = 2;
    let mut s = Script::ready(c, "250-mx\r\n250 CHUNKING\r\n");
    s.send(message(&["a@example.net"], b"abcd"));
    s.server("250 ok\r\n");
    assert_eq!(s.server("250 ok\r\n"), "BDAT 2\r\nab");
    assert_eq!(s.server("452 4.3.1 full\r\n"), "BDAT 2 LAST\r\ncd");
    s.server("503 sequence\r\n");
    let r = s.done();
    assert_eq!(stage_of(&r, 0), (Phase::Bdat, 452));
    assert!(r.recipients[0].is_transient());
}

#[test]
fn size_precheck() {
    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_PIPE);
    assert_eq!(s.send(message(&["a@example.net"], &[b'a'; 1001])), "");
    let r = s.done();
    assert_eq!(
        r.recipients[0].outcome,
        Err(RelayError::MessageTooBig {
            size: 1001,
            limit: 1000
        })
    );
    assert!(r.recipients[0].is_permanent());
}

#[test]
fn eight_bit_and_smtputf8_negotiation() {
    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_PIPE);
    let out = s.send(message(&["a@example.net"], "é\r\n".as_bytes()));
    assert!(
        out.starts_with("MAIL FROM:<alice@example.org> SIZE=4 BODY=8BITMIME\r\n"),
        "{out}"
    );

    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_PIPE);
    s.send(message(&["jörg@example.net"], b"x\r\n"));
    assert_eq!(
        s.done().recipients[0].outcome,
        Err(RelayError::SmtpUtf8Unsupported)
    );

    let mut s = Script::ready(
        config(TlsRequirement::Plain),
        "250-mx\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
    );
    let out = s.send(message(&["jörg@example.net"], b"x\r\n"));
    assert_eq!(out, "MAIL FROM:<alice@example.org> SMTPUTF8\r\n");
}

#[test]
fn bare_line_endings_refused_by_option() {
    let mut c = config(TlsRequirement::Plain);
    c.line_endings = LineEndings::Refuse;
    let mut s = Script::ready(c, EHLO_BARE);
    assert_eq!(s.send(message(&["a@example.net"], b"a\n.\nb\r\n")), "");
    let r = s.done();
    assert_eq!(r.recipients[0].outcome, Err(RelayError::BareLineEnding));
    assert!(r.recipients[0].is_permanent());
}

#[test]
fn dsn_parameters_pass_through_or_are_dropped() {
    let mut m = message(&[], b"x\r\n");
    m.ret = Some(Ret::Headers);
    m.envid = Some("id+1".into());
    let mut r = Recipient::new(rcpt("a@example.net"));
    r.params = RcptParams {
        notify: Some(Notify::On {
            success: true,
            failure: true,
            delay: false,
        }),
        ..RcptParams::default()
    };
    m.recipients.push(r);

    let mut s = Script::ready(
        config(TlsRequirement::Plain),
        "250-mx\r\n250-PIPELINING\r\n250 DSN\r\n",
    );
    let out = s.send(m.clone());
    assert_eq!(
        out,
        "MAIL FROM:<alice@example.org> RET=HDRS ENVID=id+2B1\r\nRCPT TO:<a@example.net> NOTIFY=SUCCESS,FAILURE\r\nDATA\r\n"
    );

    let mut s = Script::ready(
        config(TlsRequirement::Plain),
        "250-mx\r\n250 PIPELINING\r\n",
    );
    let out = s.send(m);
    assert_eq!(
        out,
        "MAIL FROM:<alice@example.org>\r\nRCPT TO:<a@example.net>\r\nDATA\r\n"
    );
    s.server("250 ok\r\n250 ok\r\n354 go\r\n");
    s.server("250 ok\r\n");
    assert!(s.done().dsn_dropped);
}

#[test]
fn starttls_then_only_post_tls_capabilities_count() {
    let mut s = Script::new(config(TlsRequirement::Required));
    s.server("220 mx\r\n");
    // Before TLS the server claims a tiny SIZE and AUTH; after TLS it does not.
    assert_eq!(
        s.server("250-mx\r\n250-SIZE 1\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n"),
        "STARTTLS\r\n"
    );
    assert_eq!(s.server("220 2.0.0 go ahead\r\n"), "");
    assert_eq!(s.take_events(), [ClientEvent::StartTlsNow]);
    assert!(s.client.capabilities().is_none());
    assert!(
        s.client.timeout().is_none(),
        "nothing awaited during the handshake"
    );
    s.client.tls_established(tls_info());
    assert_eq!(s.written(), "EHLO client.example\r\n");
    s.server("250-mx\r\n250 8BITMIME\r\n");
    assert_eq!(s.take_events(), [ClientEvent::Ready]);
    let caps = s.client.capabilities().unwrap();
    assert_eq!(caps.size, None);
    assert!(caps.auth.is_none() && !caps.starttls);
    let out = s.send(message(&["a@example.net"], b"bigger than one octet\r\n"));
    assert_eq!(out, "MAIL FROM:<alice@example.org>\r\n");
    s.server("250 ok\r\n");
    s.server("250 ok\r\n");
    s.server("354 go\r\n");
    s.server("250 ok\r\n");
    let r = s.done();
    assert_eq!(r.tls, Some(tls_info()));
    assert_eq!(
        r.tls.unwrap().to_string(),
        "using TLSv1.3 with cipher TLS13_AES_128_GCM_SHA256 (verified)"
    );
}

#[test]
fn starttls_offered_again_after_tls_is_ignored() {
    let mut s = Script::new(config(TlsRequirement::Required));
    s.server("220 mx\r\n");
    s.server("250-mx\r\n250 STARTTLS\r\n");
    s.server("220 go\r\n");
    s.take_events();
    s.client.tls_established(tls_info());
    s.written();
    assert_eq!(s.server("250-mx\r\n250 STARTTLS\r\n"), "");
    assert_eq!(s.take_events(), [ClientEvent::Ready]);
}

#[test]
fn bytes_after_starttls_220_abort() {
    // The injected reply arrives in the same read as the 220.
    let mut s = Script::new(config(TlsRequirement::Required));
    s.server("220 mx\r\n");
    s.server("250-mx\r\n250 STARTTLS\r\n");
    assert_eq!(s.server("220 go ahead\r\n250-injected\r\n"), "");
    let e = s.failed();
    assert_eq!(e, RelayError::ResponseInjection { bytes: 14 });
    assert!(!s.events.contains(&ClientEvent::StartTlsNow));
    assert!(s.client.is_closed());
    s.client.tls_established(tls_info());
    assert_eq!(s.written(), "", "no EHLO after an abort");

    // Or in a later read, before the driver has handed the socket to TLS.
    let mut s = Script::new(config(TlsRequirement::Opportunistic));
    s.server("220 mx\r\n");
    s.server("250-mx\r\n250 STARTTLS\r\n");
    s.server("220 go ahead\r\n");
    assert_eq!(s.take_events(), [ClientEvent::StartTlsNow]);
    s.server("250 injected\r\n");
    assert_eq!(s.failed(), RelayError::ResponseInjection { bytes: 14 });
}

#[test]
fn required_tls_without_starttls_sends_nothing() {
    let mut s = Script::new(config(TlsRequirement::Required));
    s.server("220 mx\r\n");
    assert_eq!(s.server("250-mx\r\n250 PIPELINING\r\n"), "QUIT\r\n");
    let e = s.failed();
    assert_eq!(e, RelayError::TlsUnavailable);
    assert!(e.is_transient());
    assert!(s.client.send(message(&["a@example.net"], b"x")).is_err());
    assert_eq!(s.written(), "");
}

#[test]
fn starttls_refused() {
    let mut s = Script::new(config(TlsRequirement::Required));
    s.server("220 mx\r\n");
    s.server("250-mx\r\n250 STARTTLS\r\n");
    assert_eq!(s.server("554 5.7.0 no TLS for you\r\n"), "QUIT\r\n");
    let e = s.failed();
    assert!(matches!(e, RelayError::StartTlsRefused(_)));
    assert!(e.is_transient(), "TLS trouble is never a bounce");

    // Opportunistic goes on in plaintext.
    let mut s = Script::new(config(TlsRequirement::Opportunistic));
    s.server("220 mx\r\n");
    s.server("250-mx\r\n250 STARTTLS\r\n");
    assert_eq!(s.server("454 4.7.0 TLS not available\r\n"), "");
    assert_eq!(s.take_events(), [ClientEvent::Ready]);
    assert!(s.client.tls().is_none());
}

#[test]
fn handshake_failure_fails_the_session() {
    let mut s = Script::new(config(TlsRequirement::Required));
    s.server("220 mx\r\n");
    s.server("250-mx\r\n250 STARTTLS\r\n");
    s.server("220 go\r\n");
    s.take_events();
    s.client.tls_failed("peer is TLS 1.3 only");
    assert_eq!(s.written(), "", "no QUIT inside a broken TLS layer");
    assert!(matches!(s.failed(), RelayError::TlsHandshake(_)));
}

#[test]
fn plain_mode_never_starttls() {
    let mut s = Script::new(config(TlsRequirement::Plain));
    s.server("220 mx\r\n");
    assert_eq!(s.server("250-mx\r\n250 STARTTLS\r\n"), "");
    assert_eq!(s.take_events(), [ClientEvent::Ready]);
}

#[test]
fn implicit_tls_never_starttls() {
    let mut s = Script {
        client: Client::new_tls(Arc::new(config(TlsRequirement::Required)), tls_info()),
        events: Vec::new(),
    };
    assert_eq!(s.server("220 mx\r\n"), "EHLO client.example\r\n");
    assert_eq!(s.server("250-mx\r\n250 STARTTLS\r\n"), "");
    assert_eq!(s.take_events(), [ClientEvent::Ready]);
}

fn auth_config(tls: TlsRequirement) -> SessionConfig {
    let mut c = config(tls);
    c.auth = Some(RelayCredentials::new("user", "pass"));
    c
}

fn through_tls(c: SessionConfig, post_tls_ehlo: &str) -> (Script, String) {
    let mut s = Script::new(c);
    s.server("220 mx\r\n");
    s.server("250-mx\r\n250 STARTTLS\r\n");
    s.server("220 go\r\n");
    s.take_events();
    s.client.tls_established(tls_info());
    s.written();
    let out = s.server(post_tls_ehlo);
    (s, out)
}

#[test]
fn auth_plain_over_tls() {
    let (mut s, out) = through_tls(
        auth_config(TlsRequirement::Required),
        "250-mx\r\n250 AUTH LOGIN PLAIN\r\n",
    );
    assert_eq!(out, "AUTH PLAIN AHVzZXIAcGFzcw==\r\n");
    assert_eq!(s.server("235 2.7.0 ok\r\n"), "");
    assert_eq!(s.take_events(), [ClientEvent::Ready]);
    assert!(!format!("{:?}", auth_config(TlsRequirement::Plain)).contains("pass\""));
}

#[test]
fn auth_login_over_tls() {
    let (mut s, out) = through_tls(
        auth_config(TlsRequirement::Required),
        "250-mx\r\n250 AUTH LOGIN\r\n",
    );
    assert_eq!(out, "AUTH LOGIN\r\n");
    assert_eq!(s.server("334 VXNlcm5hbWU6\r\n"), "dXNlcg==\r\n");
    assert_eq!(s.server("334 UGFzc3dvcmQ6\r\n"), "cGFzcw==\r\n");
    s.server("235 ok\r\n");
    assert_eq!(s.take_events(), [ClientEvent::Ready]);
}

#[test]
fn auth_refused_or_unavailable() {
    let (mut s, _) = through_tls(
        auth_config(TlsRequirement::Required),
        "250-mx\r\n250 AUTH PLAIN\r\n",
    );
    assert_eq!(s.server("535 5.7.8 bad credentials\r\n"), "QUIT\r\n");
    let e = s.failed();
    assert!(matches!(
        e,
        RelayError::Rejected {
            phase: Phase::Auth,
            ..
        }
    ));

    let (mut s, out) = through_tls(
        auth_config(TlsRequirement::Required),
        "250-mx\r\n250 AUTH CRAM-MD5\r\n",
    );
    assert_eq!(out, "QUIT\r\n");
    assert_eq!(s.failed(), RelayError::AuthUnavailable);
}

#[test]
fn no_credentials_in_plaintext_unless_allowed() {
    let mut s = Script::new(auth_config(TlsRequirement::Opportunistic));
    s.server("220 mx\r\n");
    assert_eq!(s.server("250-mx\r\n250 AUTH PLAIN\r\n"), "QUIT\r\n");
    assert_eq!(s.failed(), RelayError::AuthRequiresTls);

    let mut c = auth_config(TlsRequirement::Plain);
    c.allow_plaintext_auth = true;
    let mut s = Script::new(c);
    s.server("220 mx\r\n");
    assert_eq!(
        s.server("250-mx\r\n250 AUTH PLAIN\r\n"),
        "AUTH PLAIN AHVzZXIAcGFzcw==\r\n"
    );
}

#[test]
fn timeouts_follow_rfc_5321() {
    use std::time::Duration;
    let mut s = Script::new(config(TlsRequirement::Plain));
    assert_eq!(
        s.client.timeout(),
        Some((Phase::Greeting, Duration::from_secs(300)))
    );
    s.server("220 mx\r\n");
    s.server(EHLO_BARE);
    s.take_events();
    assert_eq!(s.client.timeout(), None, "idle: nothing awaited");
    s.send(message(&["a@example.net"], b"x\r\n"));
    assert_eq!(
        s.client.timeout(),
        Some((Phase::Mail, Duration::from_secs(300)))
    );
    s.server("250 ok\r\n");
    assert_eq!(
        s.client.timeout(),
        Some((Phase::Rcpt, Duration::from_secs(300)))
    );
    s.server("250 ok\r\n");
    assert_eq!(
        s.client.timeout(),
        Some((Phase::Data, Duration::from_secs(120)))
    );
    s.server("354 go\r\n");
    assert_eq!(
        s.client.timeout(),
        Some((Phase::DataEnd, Duration::from_secs(600)))
    );
    s.client.on_timeout();
    s.written();
    let events = s.take_events();
    let [ClientEvent::Done(r), ClientEvent::Failed(e)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(*e, RelayError::Timeout(Phase::DataEnd));
    assert!(r.recipients[0].is_transient());
}

#[test]
fn connection_reuse_for_several_messages() {
    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_PIPE);
    for i in 0..3 {
        let out = s.send(message(&["a@example.net"], format!("m{i}\r\n").as_bytes()));
        assert!(out.starts_with("MAIL FROM:"), "{out}");
        assert_eq!(
            s.server("250 ok\r\n250 ok\r\n354 go\r\n"),
            format!("m{i}\r\n.\r\n")
        );
        s.server("250 ok\r\n");
        assert!(s.done().all_delivered());
    }
}

#[test]
fn server_closing_mid_transaction() {
    let mut s = Script::ready(config(TlsRequirement::Plain), EHLO_BARE);
    s.send(message(&["a@example.net"], b"x\r\n"));
    s.client.on_closed();
    s.written();
    let events = s.take_events();
    assert!(matches!(
        &events[1],
        ClientEvent::Failed(RelayError::Closed(Phase::Mail))
    ));
}

#[test]
fn unreadable_ehlo_lines_are_skipped() {
    // smtp-sink's reply ends with an empty "250 " line.
    let s = Script::ready(
        config(TlsRequirement::Plain),
        "250-smtp-sink\r\n250-PIPELINING\r\n250-SIZE x\r\n250 \r\n",
    );
    let caps = s.client.capabilities().unwrap();
    assert!(caps.pipelining);
    assert_eq!(caps.size, None);
}

/// A client over TLS (implicit, as the driver would hand it over) whose
/// certificate check result is `verified`, ready after `ehlo`.
fn over_tls(verified: bool, ehlo: &str) -> Script {
    let tls = OutboundTls::new(
        TlsVersion::Tls13,
        "TLS13_AES_128_GCM_SHA256",
        verified,
        "mx.example.net",
    );
    let mut s = Script {
        client: Client::new_tls(Arc::new(config(TlsRequirement::Required)), tls),
        events: Vec::new(),
    };
    assert_eq!(s.server("220 mx\r\n"), "EHLO client.example\r\n");
    assert_eq!(s.server(ehlo), "");
    assert_eq!(s.take_events(), [ClientEvent::Ready]);
    s
}

fn requiretls_outcome(s: &mut Script) -> RelayError {
    let r = s.done();
    match &r.recipients[0].outcome {
        Err(e) => e.clone(),
        Ok(reply) => panic!("delivered ({reply}) although REQUIRETLS could not be met"),
    }
}

#[test]
fn requiretls_is_passed_on_over_verified_tls_to_a_server_offering_it() {
    let mut s = over_tls(true, "250-mx\r\n250 REQUIRETLS\r\n");
    let m = message(&["bob@example.net"], b"Subject: x\r\n\r\nhi\r\n").with_requiretls(true);
    assert_eq!(
        s.send(m),
        "MAIL FROM:<alice@example.org> REQUIRETLS\r\n",
        "the flag travels on MAIL FROM"
    );
}

#[test]
fn requiretls_over_unauthenticated_tls_sends_nothing_and_fails_5_7_30() {
    let mut s = over_tls(false, "250-mx\r\n250 REQUIRETLS\r\n");
    let m = message(&["bob@example.net"], b"hi\r\n").with_requiretls(true);
    assert_eq!(s.send(m), "", "not even MAIL FROM");
    let e = requiretls_outcome(&mut s);
    assert!(matches!(e, RelayError::RequireTlsUnmet(_)), "{e:?}");
    assert_eq!(e.status().to_string(), "5.7.30");
    assert!(e.is_permanent());
}

#[test]
fn requiretls_to_a_server_without_the_extension_fails_5_7_30() {
    let mut s = over_tls(true, "250-mx\r\n250 8BITMIME\r\n");
    let m = message(&["bob@example.net"], b"hi\r\n").with_requiretls(true);
    assert_eq!(s.send(m), "");
    let e = requiretls_outcome(&mut s);
    assert_eq!(e.status().to_string(), "5.7.30");
    assert!(e.to_string().contains("does not offer REQUIRETLS"), "{e}");
}

#[test]
fn requiretls_on_plaintext_sends_nothing() {
    let mut s = Script::ready(
        config(TlsRequirement::Opportunistic),
        "250-mx\r\n250 REQUIRETLS\r\n",
    );
    let m = message(&["bob@example.net"], b"hi\r\n").with_requiretls(true);
    assert_eq!(s.send(m), "");
    assert_eq!(requiretls_outcome(&mut s).status().to_string(), "5.7.30");
}
