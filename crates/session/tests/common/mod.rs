//! A scripted driver shared by the transcript runner, the property tests
//! and the fuzz-style driver: it feeds bytes, records output and events in
//! readable form, and answers decisions.

#![allow(dead_code, unreachable_pub)]

use std::fmt::Write as _;
use std::sync::Arc;

use postern_proto::{EnhancedCode, Reply, ReplyCode};
use postern_session::{
    Config, ConnectionInfo, Decision, Event, Notice, Question, Session, TlsInfo, TlsVersion,
};

/// Renders bytes with `\r`, `\n`, `\t`, `\\` and `\xHH` escapes.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s
}

/// The inverse of [`escape`].
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'\\' => out.push(b'\\'),
                b'x' if i + 3 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                other => panic!("unknown escape \\{}", other as char),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// One line of text for an event.
pub fn render(event: &Event) -> String {
    match event {
        Event::Question(q) => render_question(q),
        Event::Notice(n) => render_notice(n),
    }
}

fn render_question(question: &Question) -> String {
    match question {
        Question::Connect => "connect".into(),
        Question::Hello { verb, host, .. } => {
            format!("{} {host}", format!("{verb:?}").to_lowercase())
        }
        Question::Auth { credentials } => format!(
            "auth {} authcid={} authzid={} secret={}",
            credentials.mechanism,
            credentials.authcid,
            credentials.authzid.as_deref().unwrap_or("-"),
            escape(credentials.secret.expose())
        ),
        Question::Mail { from, params } => {
            let mut p = Vec::new();
            params.encode(&mut p);
            format!("mail {from}{}", String::from_utf8_lossy(&p))
        }
        Question::Rcpt { to, params } => {
            let mut p = Vec::new();
            params.encode(&mut p);
            format!("rcpt {to}{}", String::from_utf8_lossy(&p))
        }
        Question::DataStart { kind } => match kind {
            postern_session::BodyKind::Data => "data-start data".into(),
            postern_session::BodyKind::Bdat { size, last } => {
                format!("data-start bdat {size}{}", if *last { " last" } else { "" })
            }
            other => format!("data-start {other:?}"),
        },
        Question::MessageComplete { size, recipients } => {
            format!("message size={size} recipients={recipients}")
        }
        other => format!("{other:?}"),
    }
}

fn render_notice(notice: &Notice) -> String {
    match notice {
        Notice::BodyChunk(chunk) => format!("body {}", escape(chunk)),
        Notice::TransactionAborted { reason } => format!("aborted {reason:?}").to_lowercase(),
        Notice::StartTls { discarded } => format!("starttls discarded={discarded}"),
        Notice::TlsEstablished => "tls-established".into(),
        Notice::Closed { reason } => format!("closed {reason:?}").to_lowercase(),
        other => format!("{other:?}"),
    }
}

/// Parses `code [x.y.z] text` into a reply.
pub fn parse_reply(s: &str) -> Reply<'static> {
    let (code, rest) = s.split_once(' ').unwrap_or((s, ""));
    let code = ReplyCode::new(code.parse().expect("reply code")).expect("valid code");
    let (enhanced, text) = match rest.split_once(' ') {
        Some((e, t)) => match EnhancedCode::parse_prefix(e) {
            Some((e, _)) => (Some(e), t.to_string()),
            None => (None, rest.to_string()),
        },
        None => (None, rest.to_string()),
    };
    Reply::new(code, enhanced, [text]).expect("valid reply")
}

/// Parses `accept|reject|tempfail [reply]`.
pub fn parse_decision(s: &str) -> Decision {
    let (verb, reply) = match s.split_once(' ') {
        Some((v, r)) => (v, Some(parse_reply(r))),
        None => (s, None),
    };
    match (verb, reply) {
        ("accept", None) => Decision::Accept,
        ("accept", Some(r)) => Decision::AcceptWith(r),
        ("reject", None) => Decision::Reject,
        ("reject", Some(r)) => Decision::RejectWith(r),
        ("tempfail", None) => Decision::Tempfail,
        ("tempfail", Some(r)) => Decision::TempfailWith(r),
        (v, _) => panic!("unknown decision {v}"),
    }
}

pub fn tls_info() -> TlsInfo {
    let mut info = TlsInfo::new(TlsVersion::Tls13, "TLS13_AES_256_GCM_SHA384");
    info.sni = Some("mx.example.org".into());
    info
}

/// Drives a session: feeds input (one receive per read, or byte by byte),
/// logs events, auto-accepts decisions when asked to.
pub struct Driver {
    pub session: Session,
    /// Events in readable form; consecutive body chunks coalesced.
    pub log: Vec<String>,
    /// Output written so far.
    pub output: Vec<u8>,
    /// Client bytes the session did not take yet.
    pub stalled: Vec<u8>,
    pub auto: bool,
    pub bytewise: bool,
}

impl Driver {
    pub fn new(config: Config, info: ConnectionInfo, auto: bool) -> Self {
        let mut d = Self {
            session: Session::new(Arc::new(config), info),
            log: Vec::new(),
            output: Vec::new(),
            stalled: Vec::new(),
            auto,
            bytewise: false,
        };
        d.pump();
        d
    }

    /// Polls events (auto-deciding if set), collects output, and offers
    /// stalled input again, until nothing changes.
    pub fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(event) = self.session.poll_event() {
                progressed = true;
                let text = render(&event);
                match (self.log.last_mut(), text.strip_prefix("body ")) {
                    (Some(last), Some(more)) if last.starts_with("body ") => last.push_str(more),
                    _ => self.log.push(text),
                }
                if self.auto && event.needs_decision() {
                    self.session.accept().expect("auto-accept");
                }
            }
            if self.session.has_output() {
                self.output.extend_from_slice(&self.session.take_output());
            }
            if !self.stalled.is_empty() && self.ready_for_input() {
                let n = self.feed_now();
                progressed |= n > 0;
            }
            if !progressed {
                return;
            }
        }
    }

    /// Bytes already read go to the session when it wants them, and also
    /// while it is closed or awaiting TLS (it drops them then).
    fn ready_for_input(&self) -> bool {
        self.session.wants_read() || self.session.is_closed() || self.session.awaiting_tls()
    }

    fn feed_now(&mut self) -> usize {
        let data = std::mem::take(&mut self.stalled);
        let mut taken = 0;
        if self.bytewise {
            while taken < data.len() {
                let n = self.session.receive(&data[taken..taken + 1]);
                if n == 0 {
                    break;
                }
                taken += n;
                // Let decisions and events happen between octets.
                while let Some(event) = self.session.poll_event() {
                    let text = render(&event);
                    match (self.log.last_mut(), text.strip_prefix("body ")) {
                        (Some(last), Some(more)) if last.starts_with("body ") => {
                            last.push_str(more)
                        }
                        _ => self.log.push(text),
                    }
                    if self.auto && event.needs_decision() {
                        self.session.accept().expect("auto-accept");
                    }
                }
            }
        } else {
            taken = self.session.receive(&data);
        }
        self.stalled = data[taken..].to_vec();
        taken
    }

    /// Sends client bytes as one read.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stalled.extend_from_slice(bytes);
        if self.ready_for_input() {
            self.feed_now();
        }
        self.pump();
    }

    pub fn decide(&mut self, d: Decision) -> Result<(), postern_session::ApiError> {
        let r = self.session.decide(d);
        self.pump();
        r
    }

    pub fn take_output_string(&mut self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.output)).into_owned()
    }

    pub fn tls(&mut self) -> Result<(), postern_session::ApiError> {
        let r = self.session.tls_established(tls_info());
        self.pump();
        r
    }
}
