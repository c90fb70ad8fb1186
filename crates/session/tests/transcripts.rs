//! Runs the scripted transcripts in `tests/transcripts/*.txt`.
//!
//! Format, one directive per line (`#` comments and blank lines skipped):
//!
//! | line | meaning |
//! |---|---|
//! | `@config k[=v] ...` | session settings (before the first exchange), see [`configure`] |
//! | `@mode auto` / `@mode manual` | auto-accept every decision (default), or wait for `D:` |
//! | `@split no` | do not replay this file byte by byte |
//! | `C: text` | a client line; CRLF is appended. Consecutive `C:`/`R:` lines are one read |
//! | `R: bytes` | raw client bytes with `\r \n \t \\ \xHH` escapes, no CRLF appended |
//! | `\|` | ends the current read (the next `C:` starts a new one) |
//! | `S: line` | the next line the server wrote, exactly (without CRLF) |
//! | `S~ line` | skip continuation (`ddd-`) lines up to and including `line` |
//! | `E: event` | an event, matched in order (events not named are skipped) |
//! | `D: accept\|reject\|tempfail [code [x.y.z] text]` | answer the pending decision |
//! | `D!: ...` | a decision that must be refused with an API error |
//! | `X: tls\|tls!\|timeout\|shutdown\|eof` | driver signals (`tls!`: must be refused) |
//! | `!: check` | state assertions: `closed`, `open`, `pending <kind>\|none`, `tls`, `plaintext`, `auth <user>\|none`, `no-event <prefix>`, `body-lacks <escaped>`, `discarded <n>`, `wants-read yes\|no`, `no-output` |
//!
//! Every file runs with each read given to `receive` whole and, unless it
//! says `@split no`, again octet by octet: the replies must be the same. At
//! the end every line the server wrote must have been matched by `S:`.

mod common;

use std::path::Path;

use common::{Driver, escape, parse_decision, tls_info, unescape};
use postern_proto::Mechanism;
use postern_session::{
    AfterStartTls, BareLineEndingPolicy, Config, ConnectionInfo, Protocol, VrfyPolicy,
};

fn mechanisms(list: &str) -> Vec<Mechanism<'static>> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Mechanism::parse(s).unwrap().into_owned())
        .collect()
}

/// Applies `@config` settings.
fn configure(config: &mut Config, info: &mut ConnectionInfo, setting: &str) {
    let (key, value) = setting.split_once('=').unwrap_or((setting, ""));
    let num = || {
        value
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("{setting}: number"))
    };
    match key {
        "hostname" => config.hostname = value.into(),
        "lmtp" => config.protocol = Protocol::Lmtp,
        "implicit-tls" => info.tls = Some(tls_info()),
        "starttls" => {
            config.after_starttls = match value {
                "discard" => AfterStartTls::Discard,
                "reject" => AfterStartTls::Reject,
                _ => panic!("{setting}"),
            }
        }
        "no-starttls" => config.starttls.offer_starttls = false,
        "require-tls" => config.starttls.require_tls = true,
        "require-auth" => config.require_auth = true,
        "auth-plaintext" => config.auth.plaintext = mechanisms(value),
        "auth-tls" => config.auth.tls = mechanisms(value),
        "max-recipients" => config.limits.max_recipients = num() as usize,
        "max-size" => config.limits.max_message_size = num(),
        "max-errors" => config.limits.max_errors = num() as u32,
        "max-auth-failures" => config.limits.max_auth_failures = num() as u32,
        "line-limit" => config.limits.lines.command = num() as usize,
        "auth-line-limit" => config.limits.lines.auth = num() as usize,
        "max-pending" => config.limits.max_pending_input = num() as usize,
        "bare" => {
            config.bare_line_endings = match value {
                "normalize" => BareLineEndingPolicy::Normalize,
                "reject" => BareLineEndingPolicy::Reject,
                _ => panic!("{setting}"),
            }
        }
        "bare-lf-line-end" => config.bare_lf_line_end = true,
        "vrfy" | "expn" => {
            let p = match value {
                "252" => VrfyPolicy::CannotVerify,
                "502" => VrfyPolicy::NotImplemented,
                _ => panic!("{setting}"),
            };
            if key == "vrfy" {
                config.vrfy = p;
            } else {
                config.expn = p;
            }
        }
        "no-chunking" => config.extensions.chunking = false,
        "no-binarymime" => config.extensions.binary_mime = false,
        "no-dsn" => config.extensions.dsn = false,
        "no-smtputf8" => config.extensions.smtputf8 = false,
        "no-8bitmime" => config.extensions.eight_bit_mime = false,
        "no-pipelining" => config.extensions.pipelining = false,
        "no-requiretls" => config.extensions.requiretls = false,
        _ => panic!("unknown @config {setting}"),
    }
}

struct Run {
    driver: Option<Driver>,
    config: Config,
    info: ConnectionInfo,
    auto: bool,
    bytewise: bool,
    read: Vec<u8>,
    out_lines: std::collections::VecDeque<String>,
    event_cursor: usize,
}

impl Run {
    fn driver(&mut self) -> &mut Driver {
        if self.driver.is_none() {
            let mut d = Driver::new(self.config.clone(), self.info.clone(), self.auto);
            d.bytewise = self.bytewise;
            self.driver = Some(d);
        }
        self.driver.as_mut().unwrap()
    }

    fn flush_read(&mut self) {
        if !self.read.is_empty() {
            let read = std::mem::take(&mut self.read);
            self.driver().send(&read);
        }
        self.collect_output();
    }

    fn collect_output(&mut self) {
        let d = self.driver();
        let out = d.take_output_string();
        let mut lines: Vec<String> = out.split("\r\n").map(str::to_string).collect();
        let tail = lines.pop().unwrap_or_default();
        assert!(tail.is_empty(), "output not ending in CRLF: {tail:?}");
        self.out_lines.extend(lines);
    }
}

fn run_script(path: &Path, script: &str, bytewise: bool) -> Result<(), String> {
    let mut run = Run {
        driver: None,
        config: Config::default(),
        info: ConnectionInfo::default(),
        auto: true,
        bytewise,
        read: Vec::new(),
        out_lines: Default::default(),
        event_cursor: 0,
    };
    for (n, raw) in script.lines().enumerate() {
        let lineno = n + 1;
        let fail = |msg: String| Err(format!("{}:{lineno}: {msg}", path.display()));
        let line = raw.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("@config ") {
            if run.driver.is_some() {
                return fail("@config after the session started".into());
            }
            for s in rest.split_whitespace() {
                configure(&mut run.config, &mut run.info, s);
            }
            continue;
        }
        if let Some(mode) = line.strip_prefix("@mode ") {
            run.auto = mode == "auto";
            if let Some(d) = run.driver.as_mut() {
                d.auto = run.auto;
            }
            continue;
        }
        if line.starts_with("@split") {
            continue;
        }
        if let Some(text) = line.strip_prefix("C: ").or(line.strip_prefix("C:")) {
            run.driver();
            run.read.extend_from_slice(text.as_bytes());
            run.read.extend_from_slice(b"\r\n");
            continue;
        }
        if let Some(text) = line.strip_prefix("R: ") {
            run.driver();
            run.read.extend_from_slice(&unescape(text));
            continue;
        }
        run.flush_read();
        if line == "|" {
            continue;
        }
        if let Some(want) = line.strip_prefix("S~ ") {
            // Skips continuation lines up to and including `want`.
            loop {
                match run.out_lines.pop_front() {
                    Some(got) if got == want => break,
                    Some(got) if got.as_bytes().get(3) == Some(&b'-') => {}
                    Some(got) => return fail(format!("server wrote {got:?} before {want:?}")),
                    None => return fail(format!("no server output, expected {want:?}")),
                }
            }
        } else if let Some(want) = line.strip_prefix("S: ").or(line.strip_prefix("S:")) {
            match run.out_lines.pop_front() {
                Some(got) if got == want => {}
                Some(got) => return fail(format!("server wrote {got:?}, expected {want:?}")),
                None => return fail(format!("no server output, expected {want:?}")),
            }
        } else if let Some(want) = line.strip_prefix("E: ") {
            let cursor = run.event_cursor;
            let log = run.driver().log.clone();
            let found = log[cursor..].iter().position(|e| e == want);
            match found {
                Some(i) => run.event_cursor += i + 1,
                None => {
                    return fail(format!(
                        "event {want:?} not found after #{}; log: {:#?}",
                        cursor, log
                    ));
                }
            }
        } else if let Some(d) = line.strip_prefix("D: ") {
            if let Err(e) = run.driver().decide(parse_decision(d)) {
                return fail(format!("decision refused: {e}"));
            }
            run.collect_output();
        } else if let Some(d) = line.strip_prefix("D!: ") {
            if run.driver().decide(parse_decision(d)).is_ok() {
                return fail("decision should have been refused".into());
            }
            run.collect_output();
        } else if let Some(signal) = line.strip_prefix("X: ") {
            let d = run.driver();
            match signal {
                "tls" => {
                    if let Err(e) = d.tls() {
                        return fail(format!("tls_established refused: {e}"));
                    }
                }
                "tls!" => {
                    if d.tls().is_ok() {
                        return fail("tls_established should have been refused".into());
                    }
                }
                "timeout" => {
                    d.session.timeout();
                    d.pump();
                }
                "shutdown" => {
                    d.session.shutdown();
                    d.pump();
                }
                "eof" => {
                    d.session.peer_closed();
                    d.pump();
                }
                _ => return fail(format!("unknown signal {signal}")),
            }
            run.collect_output();
        } else if let Some(check) = line.strip_prefix("!: ") {
            let (what, arg) = check.split_once(' ').unwrap_or((check, ""));
            let no_output = run.out_lines.is_empty();
            let d = run.driver();
            let s = &d.session;
            let ok = match what {
                "closed" => s.is_closed(),
                "open" => !s.is_closed(),
                "tls" => s.is_tls(),
                "plaintext" => !s.is_tls(),
                "pending" => {
                    let got = s
                        .pending_decision()
                        .map_or("none".to_string(), |k| format!("{k:?}").to_lowercase());
                    got.starts_with(arg) || got == arg
                }
                "auth" => match s.authenticated() {
                    Some(a) => a.authcid == arg,
                    None => arg == "none",
                },
                "no-event" => !d.log.iter().any(|e| e.starts_with(arg)),
                "body-lacks" => !d
                    .log
                    .iter()
                    .any(|e| e.starts_with("body ") && e[5..].contains(arg)),
                "discarded" => s.discarded_after_starttls().to_string() == arg,
                "wants-read" => s.wants_read() == (arg == "yes"),
                "no-output" => no_output,
                "recipients" => s.recipients().to_string() == arg,
                _ => return fail(format!("unknown check {what}")),
            };
            if !ok {
                return fail(format!(
                    "check failed: {check}; session: {s:?}; log: {:#?}",
                    d.log
                ));
            }
        } else {
            return fail(format!("unknown directive {line:?}"));
        }
    }
    run.flush_read();
    if !run.out_lines.is_empty() {
        return Err(format!(
            "{}: unmatched server output at end: {:#?}",
            path.display(),
            run.out_lines
        ));
    }
    Ok(())
}

#[test]
fn transcripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 30,
        "transcripts missing in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    let mut runs = 0;
    for path in &files {
        let script = std::fs::read_to_string(path).unwrap();
        let split = !script.lines().any(|l| l.trim() == "@split no");
        for bytewise in [false, true] {
            if bytewise && !split {
                continue;
            }
            runs += 1;
            if let Err(e) = run_script(path, &script, bytewise) {
                failures.push(format!(
                    "[{}] {e}",
                    if bytewise {
                        "octet by octet"
                    } else {
                        "whole reads"
                    }
                ));
            }
        }
    }
    eprintln!("{} transcript files, {runs} runs", files.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn escape_round_trips() {
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(unescape(&escape(&all)), all);
}
