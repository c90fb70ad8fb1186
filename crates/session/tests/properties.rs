//! Property tests: random command sequences, random byte splits and random
//! decisions. The session never panics, answers every command exactly once
//! and in order, gives the same replies for any split of the input, and
//! keeps nothing across STARTTLS.

mod common;

use std::sync::Arc;

use common::{Driver, tls_info};
use postern_proto::Mechanism;
use postern_session::{Config, ConnectionInfo, Decision, DecisionKind, Session};
use proptest::prelude::*;

/// One client action: a command line, a DATA command with its body, a
/// BDAT chunk, or STARTTLS (which ends a segment of input).
#[derive(Debug, Clone)]
enum Unit {
    Line(Vec<u8>),
    Data(Vec<Vec<u8>>),
    Bdat(bool),
    StartTls,
}

const VOCABULARY: &[&str] = &[
    "EHLO client.example.org",
    "HELO client.example.org",
    "LHLO client.example.org",
    "MAIL FROM:<a@example.org>",
    "MAIL FROM:<>",
    "MAIL FROM:<a@example.org> SIZE=99999999999",
    "MAIL FROM:<a@example.org> BODY=BINARYMIME",
    "MAIL FROM:<a@example.org> REQUIRETLS",
    "MAIL FROM:<a@example.org> FOO=1",
    "RCPT TO:<b@example.org>",
    "RCPT TO:<c@example.org> NOTIFY=NEVER",
    "RCPT TO:<jörg@example.org>",
    "DATA",
    "RSET",
    "NOOP",
    "VRFY alice",
    "EXPN staff",
    "HELP",
    "QUIT",
    "AUTH PLAIN AGFsaWNlAHB3",
    "AUTH PLAIN",
    "AUTH LOGIN",
    "AUTH CRAM-MD5",
    "AGFsaWNlAHB3",
    "*",
    "STARTTLS now",
    "FOO",
    "DATA x",
    ".",
];

fn unit() -> impl Strategy<Value = Unit> {
    let line = prop_oneof![
        8 => proptest::sample::select(VOCABULARY).prop_map(|s| s.as_bytes().to_vec()),
        1 => proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(0u8), 0x20u8..0x7f],
            0..24
        ),
    ]
    .prop_map(|mut l| {
        l.extend_from_slice(b"\r\n");
        Unit::Line(l)
    });
    let body_line = prop_oneof![
        Just(b"Subject: x".to_vec()),
        Just(b".".to_vec()),
        Just(b"..stuffed".to_vec()),
        Just(b"a\n.\nMAIL FROM:<x@y.z>".to_vec()),
        Just(b"b\r.\rRSET".to_vec()),
        Just(b"QUIT".to_vec()),
        Just(Vec::new()),
    ];
    prop_oneof![
        10 => line,
        2 => proptest::collection::vec(body_line, 0..5).prop_map(Unit::Data),
        1 => any::<bool>().prop_map(Unit::Bdat),
        1 => Just(Unit::StartTls),
    ]
}

/// Input segments: STARTTLS ends one, as a driver hands the socket to TLS
/// there.
fn segments(units: &[Unit]) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new()];
    for u in units {
        let seg = out.last_mut().unwrap();
        match u {
            Unit::Line(l) => seg.extend_from_slice(l),
            Unit::Data(lines) => {
                seg.extend_from_slice(b"DATA\r\n");
                for l in lines {
                    // A body line that is exactly "." would end the body;
                    // the model below knows, so keep it.
                    seg.extend_from_slice(l);
                    seg.extend_from_slice(b"\r\n");
                }
                seg.extend_from_slice(b".\r\n");
            }
            Unit::Bdat(last) => {
                // The payload is itself a command line, so the model can
                // follow either reading of it.
                seg.extend_from_slice(if *last {
                    b"BDAT 6 LAST\r\nNOOP\r\n"
                } else {
                    b"BDAT 6\r\nNOOP\r\n"
                });
            }
            Unit::StartTls => {
                seg.extend_from_slice(b"STARTTLS\r\n");
                out.push(Vec::new());
            }
        }
    }
    out
}

fn config(auth_on_plaintext: bool) -> Config {
    let mut c = Config::default();
    if auth_on_plaintext {
        c.auth.plaintext = vec![Mechanism::Plain, Mechanism::Login];
    }
    c
}

/// Runs the segments, each cut at the given points; decisions are taken
/// from `decisions` in turn. Returns output and event log.
fn run(
    config: &Config,
    segs: &[Vec<u8>],
    cuts: &[usize],
    decisions: &[u8],
    keep_greetings: bool,
) -> (Vec<u8>, Vec<String>, Session) {
    let mut d = Driver::new(config.clone(), ConnectionInfo::default(), false);
    let mut next_decision = 0;
    let mut decide_all = |d: &mut Driver| {
        while let Some(kind) = d.session.pending_decision() {
            let choice = decisions.get(next_decision).copied().unwrap_or(0);
            next_decision += 1;
            let greeting = matches!(kind, DecisionKind::Connect | DecisionKind::Hello);
            let decision = match choice % 8 {
                _ if keep_greetings && greeting => Decision::Accept,
                0..=5 => Decision::Accept,
                6 => Decision::Reject,
                _ => Decision::Tempfail,
            };
            d.decide(decision)
                .expect("a pending decision accepts an answer");
        }
    };
    decide_all(&mut d);
    for seg in segs {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (seg.len() + 1)).collect();
        points.push(0);
        points.push(seg.len());
        points.sort_unstable();
        points.dedup();
        for w in points.windows(2) {
            d.send(&seg[w[0]..w[1]]);
            decide_all(&mut d);
        }
        if d.session.awaiting_tls() {
            d.tls().expect("tls after StartTls");
            decide_all(&mut d);
        }
    }
    let out = std::mem::take(&mut d.output);
    (out, d.log, d.session)
}

/// Splits input into the lines a server frames: each ends at LF.
fn framed_lines(input: &[u8]) -> Vec<&[u8]> {
    input.split_inclusive(|&b| b == b'\n').collect()
}

/// Splits output into replies (a reply ends at a line with SP after its
/// code), checking every line's shape.
fn replies(output: &[u8]) -> Vec<String> {
    let text = String::from_utf8(output.to_vec()).expect("replies are UTF-8");
    assert!(
        output.is_empty() || text.ends_with("\r\n"),
        "incomplete reply"
    );
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.split_terminator("\r\n") {
        let b = line.as_bytes();
        assert!(
            b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && (b[3] == b' ' || b[3] == b'-'),
            "malformed reply line {line:?}"
        );
        current.push_str(line);
        current.push('\n');
        if b[3] == b' ' {
            out.push(std::mem::take(&mut current));
        }
    }
    assert!(current.is_empty(), "unterminated multi-line reply");
    out
}

/// Walks the client's lines against the server's replies as a client
/// would: one reply per command line, a body after 354 answered once at
/// its end, BDAT payloads skipped unless the BDAT line was read as a SASL
/// response. Fails if a command goes unanswered or a reply is unexplained.
fn check_one_reply_per_command(input: &[u8], output: &[u8], closed: bool) {
    let lines = framed_lines(input);
    let replies = replies(output);
    let mut r = replies.iter();
    let greeting = r.next().expect("a greeting");
    if greeting.starts_with("421") {
        assert!(r.next().is_none(), "replies after a 421 greeting");
        return;
    }
    let mut i = 0;
    let mut prev_code = String::new();
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        let Some(reply) = r.next() else {
            assert!(
                closed,
                "line {:?} unanswered",
                String::from_utf8_lossy(line)
            );
            return;
        };
        let code = &reply[..3];
        if code == "421" {
            // A 421 may follow a line's own reply (limits): it was not that
            // line's reply, unless the line was the one that hit it.
            assert!(r.next().is_none(), "replies after 421");
            assert!(closed, "421 without close");
            return;
        }
        let sasl_response = prev_code == "334";
        if code == "354" {
            // The body, up to CRLF . CRLF, is answered once.
            let mut prev_ended_crlf = true;
            let mut ended = false;
            while i < lines.len() {
                let l = lines[i];
                i += 1;
                if l == b".\r\n" && prev_ended_crlf {
                    ended = true;
                    break;
                }
                prev_ended_crlf = l.ends_with(b"\r\n");
            }
            if !ended {
                assert!(r.next().is_none(), "reply to an unfinished body");
                return;
            }
            let Some(after) = r.next() else {
                assert!(closed, "body unanswered");
                return;
            };
            prev_code = after[..3].to_string();
            if prev_code == "421" {
                assert!(r.next().is_none());
                return;
            }
        } else {
            if !sasl_response && line.starts_with(b"BDAT ") {
                i += 1; // the payload, consumed whatever the reply
            }
            prev_code = code.to_string();
        }
        // 221 (QUIT) and 521 (a bare LF or CR in a command line) close the
        // session: nothing after them is answered.
        if matches!(prev_code.as_str(), "221" | "521")
            || (prev_code == "554" && reply.contains("STARTTLS"))
        {
            assert!(r.next().is_none(), "replies after close");
            assert!(closed);
            return;
        }
        // A 421 right after this reply closes the session.
        if let Some(next) = r.clone().next()
            && next.starts_with("421")
        {
            r.next();
            assert!(r.next().is_none(), "replies after 421");
            assert!(closed, "421 without close");
            return;
        }
    }
    assert!(
        r.next().is_none(),
        "more replies than commands: {replies:?} for {:?}",
        String::from_utf8_lossy(input)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn one_reply_per_command_and_split_invariance(
        units in proptest::collection::vec(unit(), 0..30),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        decisions in proptest::collection::vec(any::<u8>(), 0..40),
        auth_on_plaintext in any::<bool>(),
    ) {
        let config = config(auth_on_plaintext);
        let segs = segments(&units);
        let (whole_out, whole_log, session) = run(&config, &segs, &[], &decisions, false);
        let (split_out, split_log, _) = run(&config, &segs, &cuts, &decisions, false);
        prop_assert_eq!(
            String::from_utf8_lossy(&whole_out),
            String::from_utf8_lossy(&split_out),
            "replies depend on how the input was split"
        );
        prop_assert_eq!(&whole_log, &split_log);
        // The reply model runs per segment: STARTTLS resets the server.
        let input: Vec<u8> = segs.concat();
        check_one_reply_per_command(&input, &whole_out, session.is_closed());
    }

    #[test]
    fn nothing_survives_starttls(
        units in proptest::collection::vec(unit(), 0..25),
        decisions in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut config = config(true);
        config.limits.max_errors = 10_000;
        config.limits.max_auth_failures = 10_000;
        // The first upgrade is the one under test. A bare LF or CR in a
        // command line closes the session (521) before any upgrade, so such
        // lines (and bodies, read as commands when DATA is refused) are
        // left out here.
        let bare = |l: &[u8]| l.contains(&b'\r') || l.contains(&b'\n');
        let units: Vec<Unit> = units
            .into_iter()
            .filter(|u| !matches!(u, Unit::StartTls))
            .filter(|u| match u {
                Unit::Line(l) => !bare(&l[..l.len() - 2]),
                Unit::Data(lines) => !lines.iter().any(|l| bare(l)),
                _ => true,
            })
            .collect();
        let mut segs = segments(&units);
        // Bring any state (body, SASL exchange, transaction) to an end,
        // then upgrade.
        segs.push(b"\r\n.\r\n*\r\nRSET\r\nEHLO client.example.org\r\nSTARTTLS\r\n".to_vec());
        let (_, log, mut session) = run(&config, &segs, &[], &decisions, true);
        if session.is_closed() {
            // QUIT in the prefix.
            prop_assume!(false);
        }
        prop_assert!(session.is_tls(), "upgrade happened; log {:?}", log);
        prop_assert!(session.hello().is_none());
        prop_assert!(session.authenticated().is_none());
        prop_assert!(!session.in_transaction());
        prop_assert_eq!(session.pending_decision(), None);
        let _ = session.take_output();
        session.receive(b"MAIL FROM:<a@example.org>\r\nAUTH PLAIN\r\n");
        prop_assert_eq!(
            String::from_utf8(session.take_output()).unwrap(),
            "503 5.5.1 Send EHLO or HELO first\r\n503 5.5.1 Send EHLO or HELO first\r\n"
        );
        session.receive(b"EHLO client.example.org\r\n");
        session.accept().unwrap();
        let ehlo = String::from_utf8(session.take_output()).unwrap();
        prop_assert!(!ehlo.contains("STARTTLS"));
        prop_assert!(ehlo.contains("AUTH PLAIN LOGIN"));
        session.receive(b"STARTTLS\r\nAUTH PLAIN AGFsaWNlAHB3\r\n");
        prop_assert_eq!(
            String::from_utf8(session.take_output()).unwrap(),
            "503 5.5.1 TLS already active\r\n"
        );
        prop_assert_eq!(session.pending_decision(), Some(postern_session::DecisionKind::Auth));
    }
}

#[test]
fn model_accepts_a_known_good_exchange() {
    let config = config(false);
    let segs = segments(&[
        Unit::Line(b"EHLO x.example\r\n".to_vec()),
        Unit::Line(b"MAIL FROM:<a@example.org>\r\n".to_vec()),
        Unit::Line(b"RCPT TO:<b@example.org>\r\n".to_vec()),
        Unit::Data(vec![b"hi".to_vec(), b"a\n.\nMAIL FROM:<x@y.z>".to_vec()]),
        Unit::Bdat(true),
        Unit::Line(b"QUIT\r\n".to_vec()),
    ]);
    let (out, _, session) = run(&config, &segs, &[], &[], false);
    check_one_reply_per_command(&segs.concat(), &out, session.is_closed());
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("550 5.6.11"), "bare LF body refused: {text}");
    assert!(session.is_closed());
}

#[test]
fn tls_established_is_refused_unless_awaiting() {
    let mut s = Session::new(Arc::new(Config::default()), ConnectionInfo::default());
    assert!(s.tls_established(tls_info()).is_err());
    assert_eq!(s.decide(Decision::Accept), Ok(()));
    assert_eq!(
        s.decide(Decision::Accept),
        Err(postern_session::ApiError::NothingPending)
    );
}
