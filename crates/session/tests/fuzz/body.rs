// The body of the `session` fuzz target, shared by
// `fuzz/fuzz_targets/session.rs` (libFuzzer) and
// `crates/session/tests/fuzz_driver.rs` (proptest + corpus replay on
// stable), through `include!`. Self-contained: it names every path in full.
//
// The input is a program. Its first octet picks the configuration; then
// each op octet is one driver action:
//
// | op | action |
// |---|---|
// | `0x00..=0x7f` | feed the next `(op & 0x7f) + 1` octets as one read |
// | `0x80` `0x81` `0x82` | accept / reject / tempfail with default replies |
// | `0x83 c` | accept with a custom reply of code `200 + c % 400` |
// | `0x84 c` | reject with a custom reply of code `200 + c % 400` |
// | `0x85` | `tls_established` |
// | `0x86` / `0x87` / `0x88` | `timeout` / `shutdown` / `peer_closed` |
// | `0x89 n` | write (consume) `n` octets of output |
// | `0x8a` | toggle auto-accept of decisions |
// | other | poll events |
//
// It panics when an invariant breaks: a panic is a finding.

/// What a fuzz program reached, so tests can see that it got somewhere.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FuzzOutcome {
    /// Messages completed.
    pub messages: usize,
    /// STARTTLS upgrades completed.
    pub upgrades: usize,
    /// The session ended closed.
    pub closed: bool,
}

/// Runs one fuzz program against a session.
pub fn fuzz_session(data: &[u8]) -> FuzzOutcome {
    let mut outcome = FuzzOutcome::default();
    use postern_session::{
        AfterStartTls, ApiError, BareLineEndingPolicy, Config, ConnectionInfo, Decision, Event,
        Notice, Protocol, Question, Session, TlsInfo, TlsVersion,
    };

    let Some((&selector, mut program)) = data.split_first() else {
        return outcome;
    };
    let mut config = Config::default();
    if selector & 1 != 0 {
        config.protocol = Protocol::Lmtp;
    }
    if selector & 2 != 0 {
        config.after_starttls = AfterStartTls::Reject;
    }
    if selector & 4 != 0 {
        config.auth.plaintext = vec![postern_proto::Mechanism::Plain, postern_proto::Mechanism::Login];
    }
    if selector & 8 != 0 {
        config.bare_line_endings = BareLineEndingPolicy::Normalize;
    }
    if selector & 16 != 0 {
        config.limits.max_message_size = 64;
        config.limits.max_recipients = 2;
        config.limits.max_errors = 5;
        config.limits.max_auth_failures = 2;
        config.limits.lines = postern_proto::LineLimits::new(64, 128);
        config.limits.max_pending_input = 256;
    }
    if selector & 32 != 0 {
        config.starttls.require_tls = true;
        config.require_auth = true;
    }
    let mut info = ConnectionInfo::default();
    if selector & 64 != 0 {
        info.tls = Some(TlsInfo::new(TlsVersion::Tls13, "TLS13_AES_128_GCM_SHA256"));
    }
    let pending_limit = config
        .limits
        .max_pending_input
        .max(config.limits.lines.command)
        .max(config.limits.lines.auth);
    let max_size = config.limits.max_message_size;

    let mut session = Session::new(std::sync::Arc::new(config), info);
    let mut auto = selector & 128 != 0;
    let mut written: Vec<u8> = Vec::new();
    let mut stash: Vec<u8> = Vec::new();
    let mut closed_events = 0usize;
    let mut body_in_transaction: u64 = 0;
    let mut output_at_close: Option<usize> = None;

    let reply = |code: u8| {
        let code = 200 + u16::from(code) % 400;
        postern_proto::ReplyCode::new(code)
            .and_then(|c| postern_proto::Reply::new(c, None, ["fuzz"]).ok())
    };

    let drain = |session: &mut Session,
                     auto: bool,
                     closed_events: &mut usize,
                     body: &mut u64,
                     messages: &mut usize| {
        while let Some(event) = session.poll_event() {
            match &event {
                Event::Notice(Notice::Closed { .. }) => {
                    *closed_events += 1;
                    assert!(session.is_closed(), "Closed event on an open session");
                }
                Event::Notice(Notice::BodyChunk(chunk)) => {
                    assert!(!chunk.is_empty(), "empty body chunk");
                    *body += chunk.len() as u64;
                    assert!(*body <= max_size, "body past the size limit handed out");
                }
                Event::Question(Question::MessageComplete { size, .. }) => {
                    assert!(*size <= max_size, "oversized message completed");
                    *body = 0;
                    *messages += 1;
                }
                Event::Notice(Notice::TransactionAborted { .. })
                | Event::Question(Question::Mail { .. }) => *body = 0,
                _ => {}
            }
            if auto && event.needs_decision() && session.pending_decision().is_some() {
                session.accept().expect("accepting a pending decision");
            }
        }
    };

    while let Some((&op, rest)) = program.split_first() {
        program = rest;
        let was_pending = session.pending_decision().is_some();
        let was_closed = session.is_closed();
        let take_arg = |program: &mut &[u8]| -> u8 {
            match program.split_first() {
                Some((&b, rest)) => {
                    *program = rest;
                    b
                }
                None => 0,
            }
        };
        match op {
            0x00..=0x7f => {
                let n = (usize::from(op) + 1).min(program.len());
                stash.extend_from_slice(&program[..n]);
                program = &program[n..];
            }
            0x80..=0x84 => {
                let decision = match op {
                    0x80 => Some(Decision::Accept),
                    0x81 => Some(Decision::Reject),
                    0x82 => Some(Decision::Tempfail),
                    0x83 => reply(take_arg(&mut program)).map(Decision::AcceptWith),
                    _ => reply(take_arg(&mut program)).map(Decision::RejectWith),
                };
                if let Some(decision) = decision {
                    match session.decide(decision) {
                        Ok(()) => assert!(was_pending && !was_closed, "decided with nothing pending"),
                        Err(ApiError::NothingPending) => assert!(!was_pending),
                        Err(ApiError::Closed) => assert!(was_closed),
                        Err(_) => assert!(was_pending, "reply check without a decision"),
                    }
                }
            }
            0x85 => {
                let awaiting = session.awaiting_tls();
                let ok = session
                    .tls_established(TlsInfo::new(TlsVersion::Tls12, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"))
                    .is_ok();
                assert_eq!(ok, awaiting, "tls_established outside an upgrade");
                if ok {
                    outcome.upgrades += 1;
                    assert!(session.hello().is_none() && session.authenticated().is_none());
                    assert!(!session.in_transaction() && session.pending_decision().is_none());
                    assert!(session.is_tls());
                }
            }
            0x86 => session.timeout(),
            0x87 => session.shutdown(),
            0x88 => session.peer_closed(),
            0x89 => {
                let n = usize::from(take_arg(&mut program)).min(session.output().len());
                written.extend_from_slice(&session.output()[..n]);
                session.consume_output(n);
            }
            0x8a => auto = !auto,
            _ => {}
        }
        // The driver: hand over what was read while the session wants it
        // (and while it drops input: closed, or awaiting TLS).
        if !stash.is_empty()
            && (session.wants_read() || session.is_closed() || session.awaiting_tls())
        {
            let closed_before = session.is_closed();
            let n = session.receive(&stash);
            assert!(n <= stash.len());
            if closed_before {
                assert_eq!(n, stash.len(), "a closed session drops all input");
            }
            stash.drain(..n);
        }
        drain(&mut session, auto, &mut closed_events, &mut body_in_transaction, &mut outcome.messages);
        assert!(session.buffered() <= pending_limit, "held input past the limit");
        if session.is_closed() {
            assert!(!session.wants_read());
            assert!(session.pending_decision().is_none());
            let total = written.len() + session.output().len();
            match output_at_close {
                None => output_at_close = Some(total),
                Some(t) => assert_eq!(t, total, "output after close"),
            }
        }
    }
    drain(&mut session, auto, &mut closed_events, &mut body_in_transaction, &mut outcome.messages);
    assert!(closed_events <= 1, "closed twice");
    assert_eq!(closed_events == 1, session.is_closed());
    // Everything written is a sequence of well-formed reply lines.
    written.extend_from_slice(session.output());
    assert!(written.is_empty() || written.ends_with(b"\r\n"), "partial reply line");
    for line in written.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(line.ends_with(b"\r"), "bare LF in output");
        let line = &line[..line.len() - 1];
        assert!(!line.contains(&b'\r'), "bare CR in output");
        assert!(
            line.len() >= 4
                && line[..3].iter().all(u8::is_ascii_digit)
                && (line[3] == b' ' || line[3] == b'-'),
            "malformed reply line {:?}",
            String::from_utf8_lossy(line)
        );
    }
    outcome.closed = session.is_closed();
    outcome
}
