//! What an embedder's answers can and cannot do to the wire: a narrowed
//! EHLO offer is advertised and enforced, a wider one is refused, and no
//! reply text can put a second reply line on the wire.

mod common;

use common::Driver;
use postern_proto::{EnhancedCode, Mechanism, Reply, ReplyCode};
use postern_session::{
    ApiError, Config, ConnectionInfo, Decision, DecisionKind, Event, Question, Session,
};
use proptest::prelude::*;

/// A manual driver past the greeting, with the `EHLO` question pending.
fn at_ehlo(config: Config, tls: bool) -> Driver {
    let mut info = ConnectionInfo::default();
    if tls {
        info.tls = Some(common::tls_info());
    }
    let mut d = Driver::new(config, info, false);
    d.decide(Decision::Accept).unwrap();
    d.send(b"EHLO client.example\r\n");
    assert_eq!(d.session.pending_decision(), Some(DecisionKind::Hello));
    d.take_output_string();
    d
}

fn proposal(d: &mut Driver) -> postern_session::EhloOffer {
    d.session.offer().clone()
}

#[test]
fn the_hello_question_carries_the_proposal() {
    let mut session = Session::new(Config::default(), ConnectionInfo::default());
    session.accept().unwrap();
    session.receive(b"EHLO client.example\r\n");
    let offer = std::iter::from_fn(|| session.poll_event())
        .find_map(|e| match e {
            Event::Question(Question::Hello { offer, .. }) => Some(offer),
            _ => None,
        })
        .expect("a Hello question");
    assert!(offer.starttls, "plaintext: STARTTLS proposed");
    assert!(offer.auth.is_empty(), "plaintext: no AUTH by default");
}

#[test]
fn a_narrowed_offer_is_advertised_and_enforced() {
    let mut d = at_ehlo(Config::default(), true);
    let offer = proposal(&mut d);
    assert_eq!(offer.auth, vec![Mechanism::Plain, Mechanism::Login]);
    d.decide(Decision::Advertise(offer.without_auth())).unwrap();
    let ehlo = d.take_output_string();
    assert!(ehlo.starts_with("250-localhost\r\n"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "AUTH withheld: {ehlo}");
    assert!(d.session.capabilities().auth.is_none());
    // Refused before any credential is read: no 334, no question.
    d.send(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    assert_eq!(
        d.take_output_string(),
        "502 5.5.1 Authentication not available\r\n"
    );
    assert_eq!(d.session.pending_decision(), None);
}

#[test]
fn a_withheld_mechanism_on_plaintext_gets_538_when_tls_would_offer_it() {
    let mut config = Config::default();
    config.auth.plaintext = vec![Mechanism::Plain];
    let mut d = at_ehlo(config, false);
    let offer = proposal(&mut d);
    assert_eq!(offer.auth, vec![Mechanism::Plain]);
    d.decide(Decision::Advertise(offer.without_auth())).unwrap();
    assert!(!d.take_output_string().contains("AUTH"));
    d.send(b"AUTH PLAIN\r\n");
    assert!(
        d.take_output_string().starts_with("538 5.7.11 "),
        "TLS would allow PLAIN"
    );
}

#[test]
fn one_mechanism_kept_is_the_only_one_served() {
    let mut d = at_ehlo(Config::default(), true);
    let offer = proposal(&mut d).retain_auth(|m| *m == Mechanism::Login);
    d.decide(Decision::Advertise(offer)).unwrap();
    assert!(d.take_output_string().contains("250 AUTH LOGIN\r\n"));
    d.send(b"AUTH PLAIN\r\n");
    assert!(d.take_output_string().starts_with("504 5.5.4"));
    d.send(b"AUTH LOGIN\r\n");
    assert!(d.take_output_string().starts_with("334 "));
}

#[test]
fn withdrawn_extensions_are_refused_like_unoffered_ones() {
    let mut d = at_ehlo(Config::default(), false);
    let mut offer = proposal(&mut d);
    offer.extensions.dsn = false;
    offer.extensions.chunking = false;
    offer.starttls = false;
    d.decide(Decision::Advertise(offer)).unwrap();
    let ehlo = d.take_output_string();
    for gone in ["DSN", "CHUNKING", "BINARYMIME", "STARTTLS"] {
        assert!(!ehlo.contains(gone), "{gone} still advertised: {ehlo}");
    }
    d.send(b"STARTTLS\r\n");
    assert_eq!(
        d.take_output_string(),
        "502 5.5.1 STARTTLS not available\r\n"
    );
    d.send(b"MAIL FROM:<a@example.org> RET=FULL\r\n");
    assert!(d.take_output_string().starts_with("555 5.5.4"));
}

#[test]
fn an_offer_cannot_widen_the_proposal_nor_answer_another_question() {
    let mut d = at_ehlo(Config::default(), false);
    let mut offer = proposal(&mut d);
    offer.auth.push(Mechanism::Plain);
    assert_eq!(
        d.decide(Decision::Advertise(offer.clone())),
        Err(ApiError::NotProposed("AUTH PLAIN".into()))
    );
    assert_eq!(d.session.pending_decision(), Some(DecisionKind::Hello));
    assert!(d.take_output_string().is_empty(), "nothing written");
    d.decide(Decision::Accept).unwrap();
    d.send(b"MAIL FROM:<a@example.org>\r\n");
    assert_eq!(
        d.decide(Decision::Advertise(offer)),
        Err(ApiError::OfferNotAllowed(DecisionKind::Mail))
    );
}

#[test]
fn a_new_ehlo_gets_a_fresh_proposal() {
    let mut d = at_ehlo(Config::default(), true);
    let offer = proposal(&mut d).without_auth();
    d.decide(Decision::Advertise(offer)).unwrap();
    d.send(b"EHLO client.example\r\n");
    d.decide(Decision::Accept).unwrap();
    assert!(d.take_output_string().contains("AUTH PLAIN LOGIN"));
}

/// Writes everything up to the QUIT reply: one line per reply, each a
/// three-digit code followed by SP (nothing here is multi-line).
fn reply_lines(wire: &str) -> Vec<&str> {
    wire.split_terminator("\r\n").collect()
}

#[test]
fn crlf_in_embedder_text_never_makes_a_second_reply() {
    let injected = "queued\r\n250 2.0.0 forged\r\n";
    assert!(
        Reply::new(ReplyCode::MAILBOX_UNAVAILABLE, None, [injected]).is_err(),
        "Reply::new refuses the text"
    );
    // `Reply::fixed` takes it, in release builds too, as one line.
    let reply = Reply::fixed(
        ReplyCode::MAILBOX_UNAVAILABLE,
        EnhancedCode::new(5, 1, 1),
        injected,
    );
    let mut d = Driver::new(Config::default(), ConnectionInfo::default(), false);
    d.decide(Decision::Accept).unwrap();
    d.send(b"HELO client.example\r\n");
    d.decide(Decision::Accept).unwrap();
    d.take_output_string();
    d.send(b"MAIL FROM:<a@example.org>\r\n");
    d.decide(Decision::RejectWith(reply)).unwrap();
    let wire = d.take_output_string();
    let lines = reply_lines(&wire);
    assert_eq!(lines.len(), 1, "{wire:?}");
    assert!(lines[0].starts_with("550 5.1.1 queued"), "{wire:?}");
}

proptest! {
    /// Whatever text an embedder puts in a decision's reply, through
    /// either constructor, the session writes exactly one reply line.
    #[test]
    fn any_decision_text_is_one_reply_line(text in "[ -~\r\n\0]{0,40}", code in 500u16..560) {
        let code = ReplyCode::new(code).unwrap();
        let replies = [
            Some(Reply::fixed(code, None, text.clone())),
            Reply::new(code, None, [text.clone()]).ok(),
        ];
        for reply in replies.into_iter().flatten() {
            let mut d = Driver::new(Config::default(), ConnectionInfo::default(), false);
            d.decide(Decision::Accept).unwrap();
            d.take_output_string();
            d.send(b"HELO client.example\r\n");
            d.decide(Decision::RejectWith(reply)).unwrap();
            let wire = d.take_output_string();
            let lines = reply_lines(&wire);
            prop_assert_eq!(lines.len(), 1, "{:?}", wire);
            prop_assert!(lines[0].starts_with(&format!("{} ", code.get())), "{:?}", wire);
        }
    }
}
