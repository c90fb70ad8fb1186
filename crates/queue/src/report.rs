//! Delivery status notifications (RFC 3464, with status codes from RFC 3463)
//! and the per-recipient diagnosis the outbound runner keeps in the spool.
//!
//! Two halves:
//! - [`Diagnosis`]: what went wrong for one recipient (enhanced status,
//!   the server's reply as the relay parsed it or our own explanation,
//!   remote MTA), in proto's types. It is stored typed in a recipient's
//!   `Deferred`/`Failed`/`Delivered` state; only an envelope written by an
//!   earlier version, which kept it as text, is read once with
//!   [`Diagnosis::parse`] (any text gives a diagnosis, never an error).
//! - [`render`]: the report itself, a `multipart/report;
//!   report-type=delivery-status` message with a human-readable part, the
//!   `message/delivery-status` part (per-message fields, then one block per
//!   recipient) and the returned headers (`text/rfc822-headers`) or the
//!   whole message (`message/rfc822`) as `RET` asks. [`parse_report`] is a
//!   small checker for the format, used by the tests and handy for tooling.
//!
//! The report is sent with the null reverse-path (RFC 3464 §2, RFC 5321
//! §4.5.5) so that it can never cause another report.

use std::fmt;

use postern_proto::{EnhancedCode, Reply, ReplyCode};
use serde::{Deserialize, Deserializer, Serialize};

/// The suffix that carries the remote MTA in the text form of a
/// [`Diagnosis`] (its `Display`, and what earlier versions stored).
const REMOTE_MTA_OPEN: &str = " (remote mta: ";

/// Longest diagnostic text kept in a report line; SMTP lines are limited to
/// 1000 octets (RFC 5321 §4.5.3.1.6) and the report travels over SMTP.
const MAX_DIAGNOSTIC: usize = 800;

/// An RFC 3463 status known valid when the crate is compiled (the check
/// runs in const context, so an invalid one does not build).
pub(crate) const fn status(class: u8, subject: u16, detail: u16) -> EnhancedCode {
    match EnhancedCode::new(class, subject, detail) {
        Some(code) => code,
        None => panic!("invalid enhanced status code"),
    }
}

/// `4.0.0`, "other undefined status", transient (RFC 3463 §3.1).
pub(crate) const OTHER_TRANSIENT: EnhancedCode = status(4, 0, 0);

/// What happened to one recipient, in the terms a DSN needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Diagnosis {
    /// The RFC 3463 enhanced status (e.g. `5.1.1`); `Status:` in a report.
    pub status: EnhancedCode,
    /// Our own explanation when no server reply decided (TLS unavailable,
    /// connection refused...); without a reply it becomes
    /// `Diagnostic-Code: X-Postern; ...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The server that answered, as `name[address]:port` or a bare name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_mta: Option<String>,
    /// The remote server's reply as the relay parsed it, when a server
    /// replied; it becomes `Diagnostic-Code: smtp; ...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Reply<'static>>,
}

impl Diagnosis {
    /// A diagnosis from a server reply. The status is the reply's enhanced
    /// code, or without one the reply class with `.0.0` (RFC 3463 §3.1
    /// "other undefined status").
    pub fn from_reply(reply: Reply<'static>, remote_mta: Option<String>) -> Diagnosis {
        Diagnosis {
            status: reply_status(&reply),
            reply: Some(reply),
            detail: None,
            remote_mta,
        }
    }

    /// A diagnosis for a failure no server reply describes.
    pub fn local(status: EnhancedCode, detail: &str, remote_mta: Option<String>) -> Diagnosis {
        Diagnosis {
            status,
            reply: None,
            detail: Some(one_line(detail)),
            remote_mta,
        }
    }

    /// 4.3.5, "system incorrectly configured" (RFC 3463), for a failure
    /// no server reply describes: a route the router cannot carry out (an
    /// unreadable trust anchor or password file, a mode it does not know)
    /// defers the mail until an operator fixes it.
    pub fn misconfigured(detail: &str) -> Diagnosis {
        const STATUS: EnhancedCode = match EnhancedCode::new(4, 3, 5) {
            Some(code) => code,
            None => panic!("4.3.5 is a valid status"),
        };
        Diagnosis::local(STATUS, detail, None)
    }

    /// Reads a diagnosis from its text form (its `Display`, which is how
    /// versions before the typed envelope stored it). Never fails: text
    /// that does not start with a reply code or a status gets
    /// `default_status` and is kept as the detail.
    pub fn parse(text: &str, default_status: EnhancedCode) -> Diagnosis {
        let text = text.trim();
        let (body, remote_mta) = match text.rfind(REMOTE_MTA_OPEN) {
            Some(at) if text.ends_with(')') => (
                &text[..at],
                Some(text[at + REMOTE_MTA_OPEN.len()..text.len() - 1].to_owned()),
            ),
            _ => (text, None),
        };
        if let Some(reply) = reply_from_text(body) {
            return Diagnosis::from_reply(reply, remote_mta);
        }
        if let Some((status, n)) = EnhancedCode::parse_prefix(body) {
            return Diagnosis {
                status,
                reply: None,
                detail: Some(one_line(&body[n..])),
                remote_mta,
            };
        }
        Diagnosis {
            status: default_status,
            reply: None,
            detail: (!body.is_empty()).then(|| one_line(body)),
            remote_mta,
        }
    }

    /// The host name of the remote MTA (`name` of `name[address]:port`).
    pub fn remote_host(&self) -> Option<&str> {
        let mta = self.remote_mta.as_deref()?;
        let name = mta.split('[').next().unwrap_or(mta).trim();
        (!name.is_empty()).then_some(name)
    }

    /// The status class: 2 (success), 4 (transient) or 5 (permanent).
    pub fn class(&self) -> u8 {
        self.status.class()
    }

    /// The reply on one bounded line (`550 5.1.1 No such user`), as the
    /// `Diagnostic-Code: smtp;` field and logs show it.
    pub fn reply_line(&self) -> Option<String> {
        self.reply.as_ref().map(|r| one_line(&r.to_string()))
    }
}

impl fmt::Display for Diagnosis {
    /// The text form, for logs and the report's human part: the reply
    /// (then `; detail` when there is both), or `status detail`, then
    /// ` (remote mta: name[address]:port)` when known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.reply_line(), &self.detail) {
            (Some(reply), Some(detail)) => write!(f, "{reply}; {detail}")?,
            (Some(reply), None) => f.write_str(&reply)?,
            (None, Some(detail)) => write!(f, "{} {}", self.status, detail)?,
            (None, None) => write!(f, "{}", self.status)?,
        }
        if let Some(mta) = &self.remote_mta {
            write!(f, "{REMOTE_MTA_OPEN}{mta})")?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Diagnosis {
    /// The typed form, or an earlier version's text in `reply` (read with
    /// [`Diagnosis::parse`]; a missing status is then `4.0.0`).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::compat::StoredDiagnosis::deserialize(d).map(|s| s.into_diagnosis(OTHER_TRANSIENT))
    }
}

/// The status a reply carries: its enhanced code, or its class with
/// `.0.0` (`4.0.0` for a class no status has, such as 3yz).
pub(crate) fn reply_status(reply: &Reply<'_>) -> EnhancedCode {
    reply
        .enhanced()
        .or_else(|| EnhancedCode::new(reply.code().class(), 0, 0))
        .unwrap_or(OTHER_TRANSIENT)
}

/// A reply from its one-line text form `NNN [x.y.z] text` (a multi-line
/// reply was folded onto one line before it was stored). `None` when the
/// text does not start with a 2yz, 4yz or 5yz code.
fn reply_from_text(text: &str) -> Option<Reply<'static>> {
    let line = one_line(text);
    let line = line.as_str();
    let b = line.as_bytes();
    if b.len() < 3
        || !matches!(b[0], b'2' | b'4' | b'5')
        || b.get(3).is_some_and(|c| !matches!(c, b' ' | b'-'))
    {
        return None;
    }
    let code = ReplyCode::new(line.get(..3)?.parse().ok()?)?;
    let rest = line.get(4..).unwrap_or("");
    let (enhanced, text) = match EnhancedCode::parse_prefix(rest) {
        Some((e, n)) if e.class() == code.class() => (Some(e), rest[n..].trim_start()),
        _ => (None, rest),
    };
    Some(Reply::fixed(code, enhanced, text.to_owned()))
}

/// True for an RFC 3463 status: `[245].d{1,3}.d{1,3}`.
pub fn is_status(s: &str) -> bool {
    let mut parts = s.split('.');
    let ok = |p: Option<&str>, max: usize| {
        p.is_some_and(|p| !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let class = parts.next();
    matches!(class, Some("2" | "4" | "5"))
        && ok(parts.next(), 3)
        && ok(parts.next(), 3)
        && parts.next().is_none()
}

/// Non-ASCII characters become `?` (for the 7-bit delivery-status part).
fn ascii(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii() { c } else { '?' })
        .collect()
}

/// Folds a (possibly multi-line) text onto one printable line, bounded in
/// length: control characters become spaces, runs of spaces collapse.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_DIAGNOSTIC));
    let mut space = false;
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' {
            if !space && !out.is_empty() {
                out.push(' ');
            }
            space = true;
            continue;
        }
        space = false;
        if out.len() + c.len_utf8() > MAX_DIAGNOSTIC {
            out.push_str("...");
            return out;
        }
        out.push(c);
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// The `Action` of a recipient block (RFC 3464 §2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DsnAction {
    /// Delivery failed; no further attempts.
    Failed,
    /// Not delivered yet; still trying.
    Delayed,
    /// Delivered.
    Delivered,
    /// Handed to a system that will not send further DSNs.
    Relayed,
}

impl DsnAction {
    /// The field value.
    pub fn as_str(self) -> &'static str {
        match self {
            DsnAction::Failed => "failed",
            DsnAction::Delayed => "delayed",
            DsnAction::Delivered => "delivered",
            DsnAction::Relayed => "relayed",
        }
    }
}

/// One recipient's block in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecipientReport {
    /// The address delivery was attempted to (`Final-Recipient`).
    pub final_recipient: String,
    /// The `ORCPT` as `addr-type;address`, when the client gave one
    /// (`Original-Recipient`).
    pub original_recipient: Option<String>,
    /// What happened.
    pub action: DsnAction,
    /// Why.
    pub diagnosis: Diagnosis,
    /// Unix seconds of the last attempt (`Last-Attempt-Date`).
    pub last_attempt: Option<u64>,
    /// Unix seconds until which delivery is retried (`Will-Retry-Until`,
    /// for `delayed` only, RFC 3464 §2.3.9).
    pub will_retry_until: Option<u64>,
}

/// Everything a report is built from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Report<'a> {
    /// Our host name (`Reporting-MTA: dns; ...`, the `From` domain).
    pub reporting_mta: &'a str,
    /// The original message's queue id (`X-Postern-Queue-ID`).
    pub queue_id: &'a str,
    /// The id of the report itself (used for `Message-ID` and the MIME
    /// boundary).
    pub report_id: &'a str,
    /// The original sender, the report's recipient (`To`).
    pub original_sender: &'a str,
    /// The client's HELO name, when known (`Received-From-MTA`).
    pub received_from_mta: Option<&'a str>,
    /// The `ENVID` the client gave (`Original-Envelope-Id`).
    pub envid: Option<&'a str>,
    /// Unix seconds the original arrived (`Arrival-Date`).
    pub arrival: u64,
    /// Unix seconds now (`Date`).
    pub now: u64,
    /// The recipients reported on, at least one.
    pub recipients: Vec<RecipientReport>,
    /// The original message as queued.
    pub original: &'a [u8],
    /// `RET=FULL`: return the whole message; otherwise only its headers.
    pub return_full: bool,
    /// Why the recipients were given up, for the human part (e.g. the
    /// message expired after 5 days).
    pub reason: Option<String>,
}

/// The header block of a message: everything before the first empty line
/// (or the whole message when there is none), ending with a line break.
pub fn header_block(message: &[u8]) -> &[u8] {
    let mut at = 0;
    while at < message.len() {
        let end = memchr_lf(&message[at..]).map_or(message.len(), |i| at + i + 1);
        let line = &message[at..end];
        if line == b"\r\n" || line == b"\n" {
            return &message[..at];
        }
        at = end;
    }
    message
}

/// The fields of a header block as (name, value with its folding line
/// breaks), in order. Lines end at LF, a CR before it dropped; a line
/// starting with SP or HTAB continues the field before it; a line without
/// a colon, or with a name that is not UTF-8, is skipped.
pub(crate) fn header_fields(header: &[u8]) -> Vec<(&str, &[u8])> {
    fn push<'a>(out: &mut Vec<(&'a str, &'a [u8])>, field: &'a [u8]) {
        let field = field.strip_suffix(b"\r").unwrap_or(field);
        if let Some(colon) = field.iter().position(|&b| b == b':')
            && let Ok(name) = std::str::from_utf8(&field[..colon])
        {
            out.push((name.trim_end_matches([' ', '\t']), &field[colon + 1..]));
        }
    }
    let mut out = Vec::new();
    // The start of the field being read, continuation lines included.
    let mut current: Option<usize> = None;
    let mut at = 0;
    while at < header.len() {
        let end = memchr_lf(&header[at..]).map_or(header.len(), |i| at + i);
        let starts_field = !matches!(header[at], b' ' | b'\t') || current.is_none();
        if starts_field && let Some(start) = current.replace(at) {
            push(&mut out, &header[start..at.saturating_sub(1)]);
        }
        at = end + 1;
    }
    if let Some(start) = current {
        let end = header.len();
        let end = if header.ends_with(b"\n") {
            end - 1
        } else {
            end
        };
        push(&mut out, &header[start..end.max(start)]);
    }
    out
}

fn memchr_lf(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'\n')
}

/// Builds the report message (headers and body, CRLF line endings), ready
/// to be queued with the null sender to `report.original_sender`.
//
// The MIME framing is written by hand, on purpose for now: `mail-builder`
// 2.x, the well-kept candidate, depends on `encodify` 1.x, which needs
// Rust 1.89, and the workspace declares (and CI builds with) 1.88. The
// framing here is small and fixed: one boundary chosen so it occurs in no
// part, three leaf parts written as they are (7bit, or 8bit for RFC 6533
// reports and 8-bit returned headers), never re-encoded, because the
// receiving MTAs and `parse_report` read the fields in clear.
// `mail-builder` 0.4.4 builds on 1.88 and can produce this layout (explicit
// boundary, raw parts through `transfer_encoding`), but it quotes
// `report-type="delivery-status"`, so `parse_report` would have to accept
// quoted parameters first; revisit with a rust-version of 1.89.
pub fn render(report: &Report<'_>) -> Vec<u8> {
    let utf8 = report.recipients.iter().any(|r| {
        !r.final_recipient.is_ascii()
            || r.original_recipient.as_ref().is_some_and(|o| !o.is_ascii())
    }) || !report.original_sender.is_ascii();
    let returned: &[u8] = if report.return_full {
        report.original
    } else {
        header_block(report.original)
    };
    // Every text that ends up in the body, so no line can look like a
    // delimiter.
    let mut probe: Vec<u8> = returned.to_vec();
    for text in [
        report.original_sender,
        report.envid.unwrap_or(""),
        report.received_from_mta.unwrap_or(""),
    ]
    .into_iter()
    .chain(report.reason.as_deref())
    {
        probe.extend_from_slice(text.as_bytes());
    }
    for r in &report.recipients {
        probe.extend_from_slice(r.final_recipient.as_bytes());
        probe.extend_from_slice(r.original_recipient.as_deref().unwrap_or("").as_bytes());
        probe.extend_from_slice(r.diagnosis.to_string().as_bytes());
    }
    let boundary = boundary_for(report.report_id, &probe);
    let mut m = String::new();
    let crlf = "\r\n";
    let push = |m: &mut String, line: &str| {
        m.push_str(line);
        m.push_str(crlf);
    };

    push(
        &mut m,
        &format!(
            "From: Mail Delivery System <MAILER-DAEMON@{}>",
            report.reporting_mta
        ),
    );
    push(
        &mut m,
        &format!("To: <{}>", one_line(report.original_sender)),
    );
    let failed = report
        .recipients
        .iter()
        .all(|r| r.action == DsnAction::Failed);
    let delayed = report
        .recipients
        .iter()
        .all(|r| r.action == DsnAction::Delayed);
    push(
        &mut m,
        if failed {
            "Subject: Undelivered Mail Returned to Sender"
        } else if delayed {
            "Subject: Delayed Mail (still being retried)"
        } else {
            "Subject: Delivery Status Notification"
        },
    );
    push(&mut m, &format!("Date: {}", rfc5322_date(report.now)));
    push(
        &mut m,
        &format!(
            "Message-ID: <{}@{}>",
            report.report_id, report.reporting_mta
        ),
    );
    push(&mut m, "Auto-Submitted: auto-replied");
    push(&mut m, "MIME-Version: 1.0");
    push(
        &mut m,
        &format!(
            "Content-Type: multipart/report; report-type=delivery-status;{crlf}\tboundary=\"{boundary}\""
        ),
    );
    push(&mut m, "");
    push(&mut m, "This is a MIME-encapsulated message.");
    push(&mut m, "");

    // The human-readable part.
    push(&mut m, &format!("--{boundary}"));
    push(&mut m, "Content-Description: Notification");
    push(
        &mut m,
        if utf8 {
            "Content-Type: text/plain; charset=utf-8"
        } else {
            "Content-Type: text/plain; charset=us-ascii"
        },
    );
    if utf8 {
        push(&mut m, "Content-Transfer-Encoding: 8bit");
    }
    push(&mut m, "");
    push(
        &mut m,
        &format!("This is the mail system at host {}.", report.reporting_mta),
    );
    push(&mut m, "");
    if failed {
        push(
            &mut m,
            "Your message could not be delivered to one or more recipients.",
        );
        push(
            &mut m,
            if report.return_full {
                "It is attached below."
            } else {
                "Its headers are attached below."
            },
        );
    } else if delayed {
        push(
            &mut m,
            "This is a warning only: your message has not been delivered yet to",
        );
        push(
            &mut m,
            "one or more recipients, and delivery is still being tried.",
        );
    } else {
        push(&mut m, "This is a report on the delivery of your message.");
    }
    if let Some(reason) = &report.reason {
        push(&mut m, "");
        push(&mut m, &ascii(&one_line(reason)));
    }
    push(&mut m, "");
    for r in &report.recipients {
        let line = one_line(&format!("<{}>: {}", r.final_recipient, r.diagnosis));
        push(&mut m, &if utf8 { line } else { ascii(&line) });
    }
    push(&mut m, "");

    // The machine-readable part.
    push(&mut m, &format!("--{boundary}"));
    push(&mut m, "Content-Description: Delivery report");
    push(
        &mut m,
        if utf8 {
            "Content-Type: message/global-delivery-status"
        } else {
            "Content-Type: message/delivery-status"
        },
    );
    push(&mut m, "");
    // RFC 3464 §2.2 and §2.3 fix the field order: optional fields before
    // the required ones where the grammar says so, extensions last. The
    // part is 7-bit unless it is the RFC 6533 global variant.
    let field = |text: &str| {
        if utf8 {
            one_line(text)
        } else {
            ascii(&one_line(text))
        }
    };
    if let Some(envid) = report.envid {
        push(&mut m, &format!("Original-Envelope-Id: {}", field(envid)));
    }
    push(
        &mut m,
        &format!("Reporting-MTA: dns; {}", field(report.reporting_mta)),
    );
    if let Some(from) = report.received_from_mta {
        push(&mut m, &format!("Received-From-MTA: dns; {}", field(from)));
    }
    push(
        &mut m,
        &format!("Arrival-Date: {}", rfc5322_date(report.arrival)),
    );
    push(
        &mut m,
        &format!("X-Postern-Queue-ID: {}", field(report.queue_id)),
    );
    for r in &report.recipients {
        push(&mut m, "");
        if let Some(orcpt) = &r.original_recipient {
            let (kind, addr) = orcpt.split_once(';').unwrap_or(("rfc822", orcpt));
            push(
                &mut m,
                &format!(
                    "Original-Recipient: {}; {}",
                    field(kind.trim()),
                    field(addr.trim())
                ),
            );
        }
        let kind = if r.final_recipient.is_ascii() {
            "rfc822"
        } else {
            "utf-8"
        };
        push(
            &mut m,
            &format!("Final-Recipient: {kind}; {}", field(&r.final_recipient)),
        );
        push(&mut m, &format!("Action: {}", r.action.as_str()));
        push(&mut m, &format!("Status: {}", r.diagnosis.status));
        if let Some(host) = r.diagnosis.remote_host() {
            push(&mut m, &format!("Remote-MTA: dns; {}", field(host)));
        }
        match (r.diagnosis.reply_line(), &r.diagnosis.detail) {
            (Some(reply), _) => push(&mut m, &format!("Diagnostic-Code: smtp; {}", field(&reply))),
            (None, Some(detail)) if !detail.is_empty() => push(
                &mut m,
                &format!("Diagnostic-Code: X-Postern; {}", field(detail)),
            ),
            _ => {}
        }
        if let Some(t) = r.last_attempt {
            push(&mut m, &format!("Last-Attempt-Date: {}", rfc5322_date(t)));
        }
        if let Some(t) = r
            .will_retry_until
            .filter(|_| r.action == DsnAction::Delayed)
        {
            push(&mut m, &format!("Will-Retry-Until: {}", rfc5322_date(t)));
        }
    }
    push(&mut m, "");

    // The returned message or headers.
    push(&mut m, &format!("--{boundary}"));
    if report.return_full {
        push(&mut m, "Content-Description: Undelivered Message");
        push(&mut m, "Content-Type: message/rfc822");
    } else {
        push(&mut m, "Content-Description: Undelivered Message Headers");
        push(&mut m, "Content-Type: text/rfc822-headers");
    }
    if returned.iter().any(|&b| b >= 0x80) {
        push(&mut m, "Content-Transfer-Encoding: 8bit");
    }
    push(&mut m, "");
    let mut out = m.into_bytes();
    out.extend_from_slice(&crlf_normalised(returned));
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("{crlf}--{boundary}--{crlf}").as_bytes());
    out
}

/// A boundary that does not occur in the returned content.
fn boundary_for(report_id: &str, content: &[u8]) -> String {
    let base: String = report_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(40)
        .collect();
    let mut n = 0u32;
    loop {
        let b = format!("=_postern_{base}_{n}");
        if !contains(content, b.as_bytes()) {
            return b;
        }
        n += 1;
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Bare CR or LF become CRLF, so the report is valid for SMTP.
fn crlf_normalised(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 16);
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\r' if s.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// An RFC 5322 date-time in UTC, e.g. `Tue, 01 Dec 2026 18:40:00 +0000`,
/// formatted by the `time` crate. Times past the year 9999 (only a corrupt
/// envelope has them) are written as the last second of 9999.
pub fn rfc5322_date(unix: u64) -> String {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc2822;
    let last = time::macros::datetime!(9999-12-31 23:59:59 UTC);
    let at = i64::try_from(unix)
        .ok()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .map_or(last, |t| t.min(last));
    at.format(&Rfc2822).unwrap_or_default()
}

/// A report as [`parse_report`] reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParsedReport {
    /// The top-level header fields, names lower-cased, values unfolded.
    pub headers: Vec<(String, String)>,
    /// The `Content-Type` of each MIME part, in order, lower-cased without
    /// parameters.
    pub part_types: Vec<String>,
    /// The human-readable part's text.
    pub human: String,
    /// The per-message fields of the delivery-status part.
    pub message_fields: Vec<(String, String)>,
    /// The per-recipient field blocks.
    pub recipients: Vec<Vec<(String, String)>>,
    /// The third part's content (returned headers or message).
    pub returned: Vec<u8>,
}

impl ParsedReport {
    /// The first top-level header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// The first per-message field named `name`.
    pub fn message_field(&self, name: &str) -> Option<&str> {
        find(&self.message_fields, name)
    }

    /// Field `name` of recipient block `i`.
    pub fn recipient_field(&self, i: usize, name: &str) -> Option<&str> {
        self.recipients.get(i).and_then(|b| find(b, name))
    }
}

fn find<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Header fields as (lower-case name, unfolded value), in order.
type Fields = Vec<(String, String)>;

/// Reads header fields (unfolding continuation lines) up to the first empty
/// line; returns them and the rest.
fn parse_fields(text: &str) -> Result<(Fields, &str), String> {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut rest = text;
    loop {
        let (line, after) = match rest.find("\r\n") {
            Some(i) => (&rest[..i], &rest[i + 2..]),
            None => (rest, ""),
        };
        if line.is_empty() {
            return Ok((fields, after));
        }
        if line.starts_with([' ', '\t']) {
            let last = fields
                .last_mut()
                .ok_or_else(|| format!("continuation line before any field: {line:?}"))?;
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("not a header field: {line:?}"))?;
            if name.is_empty() || name.contains(' ') {
                return Err(format!("bad field name in {line:?}"));
            }
            fields.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        if after.is_empty() {
            return Ok((fields, ""));
        }
        rest = after;
    }
}

/// Fails when the fields named in `order` (RFC 3464's grammar) appear in
/// another order; extension fields (`X-...`) must come after them.
fn in_order(fields: &Fields, order: &[&str]) -> Result<(), String> {
    let mut last = 0;
    let mut seen_extension = false;
    for (name, _) in fields {
        match order.iter().position(|o| o == name) {
            Some(i) if i < last || seen_extension => {
                return Err(format!("field {name} out of the order RFC 3464 requires"));
            }
            Some(i) => last = i,
            None => seen_extension |= name.starts_with("x-"),
        }
    }
    Ok(())
}

/// Checks a report against RFC 3464 (and RFC 6522 for the container) and
/// returns its parts. A simple checker, not a general MIME parser: it
/// expects CRLF line endings and the three-part layout [`render`] writes.
///
/// Checked: `multipart/report` with `report-type=delivery-status` and a
/// boundary; the second part is `message/delivery-status` (or the global
/// variant); a `Reporting-MTA` of the form `type; name`; at least one
/// recipient block; each with `Final-Recipient` (`type; address`), an
/// `Action` from RFC 3464 §2.3.3 and a `Status` of RFC 3463's form.
pub fn parse_report(message: &[u8]) -> Result<ParsedReport, String> {
    let text = String::from_utf8_lossy(message);
    if text.contains('\n') && text.replace("\r\n", "").contains('\n') {
        return Err("bare LF in report".into());
    }
    let (headers, body) = parse_fields(&text)?;
    let ctype = find(&headers, "content-type").ok_or("no Content-Type")?;
    let lower = ctype.to_ascii_lowercase();
    if !lower.starts_with("multipart/report") {
        return Err(format!("not multipart/report: {ctype}"));
    }
    if !lower
        .replace(' ', "")
        .contains("report-type=delivery-status")
    {
        return Err(format!("report-type is not delivery-status: {ctype}"));
    }
    let boundary = ctype
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .ok_or("no boundary")?;
    let delimiter = format!("\r\n--{boundary}");
    let body = format!("\r\n{body}");
    let close = format!("{delimiter}--");
    let end = body.find(&close).ok_or("no closing boundary")?;
    let mut parts: Vec<&str> = body[..end].split(&delimiter).skip(1).collect();
    for p in &mut parts {
        *p = p
            .strip_prefix("\r\n")
            .ok_or("boundary line not followed by CRLF")?;
    }
    if parts.len() < 2 {
        return Err(format!("{} parts; a report needs at least 2", parts.len()));
    }
    let mut report = ParsedReport {
        headers,
        ..ParsedReport::default()
    };
    let mut contents = Vec::new();
    for p in &parts {
        let (fields, content) = parse_fields(p)?;
        let t = find(&fields, "content-type").unwrap_or("text/plain");
        report.part_types.push(
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase(),
        );
        contents.push(content);
    }
    if !report.part_types[0].starts_with("text/") {
        return Err(format!("first part is {}, not text", report.part_types[0]));
    }
    report.human = contents[0].to_owned();
    if !matches!(
        report.part_types[1].as_str(),
        "message/delivery-status" | "message/global-delivery-status"
    ) {
        return Err(format!(
            "second part is {}, not message/delivery-status",
            report.part_types[1]
        ));
    }
    let mut blocks = contents[1]
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty());
    let first = blocks.next().ok_or("empty delivery-status part")?;
    report.message_fields = parse_fields(first)?.0;
    in_order(
        &report.message_fields,
        &[
            "original-envelope-id",
            "reporting-mta",
            "dsn-gateway",
            "received-from-mta",
            "arrival-date",
        ],
    )?;
    let mta = report
        .message_field("reporting-mta")
        .ok_or("no Reporting-MTA")?;
    if !mta.contains(';') {
        return Err(format!("Reporting-MTA is not 'type; name': {mta}"));
    }
    for block in blocks {
        let fields = parse_fields(block)?.0;
        let fr =
            find(&fields, "final-recipient").ok_or("recipient block without Final-Recipient")?;
        if !fr.contains(';') {
            return Err(format!("Final-Recipient is not 'type; address': {fr}"));
        }
        let action = find(&fields, "action").ok_or("recipient block without Action")?;
        if !matches!(
            action.to_ascii_lowercase().as_str(),
            "failed" | "delayed" | "delivered" | "relayed" | "expanded"
        ) {
            return Err(format!("unknown Action {action}"));
        }
        let status = find(&fields, "status").ok_or("recipient block without Status")?;
        in_order(
            &fields,
            &[
                "original-recipient",
                "final-recipient",
                "action",
                "status",
                "remote-mta",
                "diagnostic-code",
                "last-attempt-date",
                "final-log-id",
                "will-retry-until",
            ],
        )?;
        if !is_status(status) {
            return Err(format!("Status is not an RFC 3463 code: {status}"));
        }
        report.recipients.push(fields);
    }
    if report.recipients.is_empty() {
        return Err("no recipient block".into());
    }
    if let Some(c) = contents.get(2) {
        report.returned = c.as_bytes().to_vec();
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> EnhancedCode {
        EnhancedCode::parse_prefix(s).unwrap().0
    }

    const ORIGINAL: &[u8] =
        b"Received: from a by b\r\nFrom: alice@example.org\r\nSubject: hello\r\n\r\nbody line\r\n";

    fn report(recipients: Vec<RecipientReport>, full: bool) -> Vec<u8> {
        render(&Report {
            reporting_mta: "mx.example.org",
            queue_id: "0123456789abcdef0123456789",
            report_id: "fedcba9876543210fedcba9876",
            original_sender: "alice@example.org",
            envid: Some("env-42"),
            received_from_mta: Some("client.example.org"),
            arrival: 1_764_614_400,
            now: 1_764_614_500,
            recipients,
            original: ORIGINAL,
            return_full: full,
            reason: None,
        })
    }

    fn failed(addr: &str, stored: &str) -> RecipientReport {
        RecipientReport {
            final_recipient: addr.into(),
            original_recipient: None,
            action: DsnAction::Failed,
            diagnosis: Diagnosis::parse(stored, code("5.0.0")),
            last_attempt: Some(1_764_614_490),
            will_retry_until: None,
        }
    }

    #[test]
    fn a_permanent_failure_report_has_every_rfc3464_field() {
        let mut r = failed(
            "bob@example.net",
            "550 5.1.1 <bob@example.net>: no such user (remote mta: mx.example.net[192.0.2.1]:25)",
        );
        r.original_recipient = Some("rfc822;Bob@Example.NET".into());
        let bytes = report(vec![r], false);
        let p = parse_report(&bytes).unwrap();
        assert_eq!(p.header("to"), Some("<alice@example.org>"));
        assert_eq!(p.header("auto-submitted"), Some("auto-replied"));
        assert_eq!(
            p.part_types,
            [
                "text/plain",
                "message/delivery-status",
                "text/rfc822-headers"
            ]
        );
        assert_eq!(
            p.message_field("reporting-mta"),
            Some("dns; mx.example.org")
        );
        assert_eq!(p.message_field("original-envelope-id"), Some("env-42"));
        assert_eq!(
            p.message_field("received-from-mta"),
            Some("dns; client.example.org")
        );
        assert_eq!(
            p.message_field("arrival-date"),
            Some("Mon, 01 Dec 2025 18:40:00 +0000")
        );
        assert_eq!(
            p.recipient_field(0, "final-recipient"),
            Some("rfc822; bob@example.net")
        );
        assert_eq!(
            p.recipient_field(0, "original-recipient"),
            Some("rfc822; Bob@Example.NET")
        );
        assert_eq!(p.recipient_field(0, "action"), Some("failed"));
        assert_eq!(p.recipient_field(0, "status"), Some("5.1.1"));
        assert_eq!(
            p.recipient_field(0, "remote-mta"),
            Some("dns; mx.example.net")
        );
        assert_eq!(
            p.recipient_field(0, "diagnostic-code"),
            Some("smtp; 550 5.1.1 <bob@example.net>: no such user")
        );
        assert!(p.human.contains("<bob@example.net>: 550 5.1.1"));
        // RET=HDRS (or none): the headers only, not the body.
        assert!(p.returned.starts_with(b"Received: from a by b\r\n"));
        assert!(!contains(&p.returned, b"body line"));
        assert!(bytes.windows(2).all(|w| w[1] != b'\n' || w[0] == b'\r'));
    }

    #[test]
    fn ret_full_returns_the_whole_message_and_several_recipients_get_blocks() {
        let bytes = report(
            vec![
                failed("a@x.example", "550 no"),
                failed("b@y.example", "4.7.4 TLS is required but not offered"),
            ],
            true,
        );
        let p = parse_report(&bytes).unwrap();
        assert_eq!(p.part_types[2], "message/rfc822");
        assert!(contains(&p.returned, b"body line"));
        assert_eq!(p.recipients.len(), 2);
        assert_eq!(p.recipient_field(0, "status"), Some("5.0.0"));
        assert_eq!(
            p.recipient_field(0, "diagnostic-code"),
            Some("smtp; 550 no")
        );
        assert_eq!(p.recipient_field(1, "status"), Some("4.7.4"));
        assert_eq!(
            p.recipient_field(1, "diagnostic-code"),
            Some("X-Postern; TLS is required but not offered")
        );
        assert_eq!(p.recipient_field(1, "remote-mta"), None);
    }

    #[test]
    fn a_delay_report_says_delayed_and_until_when_it_is_retried() {
        let mut r = failed("bob@example.net", "451 4.3.0 try again later");
        r.action = DsnAction::Delayed;
        r.will_retry_until = Some(1_765_046_400);
        let bytes = report(vec![r], false);
        let p = parse_report(&bytes).unwrap();
        assert_eq!(
            p.header("subject"),
            Some("Delayed Mail (still being retried)")
        );
        assert!(p.human.contains("This is a warning only"), "{}", p.human);
        assert_eq!(p.recipient_field(0, "action"), Some("delayed"));
        assert_eq!(p.recipient_field(0, "status"), Some("4.3.0"));
        assert_eq!(
            p.recipient_field(0, "will-retry-until"),
            Some("Sat, 06 Dec 2025 18:40:00 +0000")
        );
    }

    #[test]
    fn diagnosis_round_trips_through_its_stored_form() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Stored {
            d: Diagnosis,
        }
        let round_trip = |d: &Diagnosis| {
            let text = toml::to_string(&Stored { d: d.clone() }).unwrap();
            toml::from_str::<Stored>(&text).unwrap().d
        };
        let reply = Reply::new(
            ReplyCode::new(451).unwrap(),
            Some(code("4.3.0")),
            ["first", "second"],
        )
        .unwrap();
        let d = Diagnosis::from_reply(reply, Some("h[1.2.3.4]:25".into()));
        assert_eq!(d.status, code("4.3.0"));
        assert_eq!(round_trip(&d), d);
        let l = Diagnosis::local(code("4.4.1"), "connection refused", None);
        assert_eq!(round_trip(&l), l);
        // The text form (what earlier versions stored) reads back too.
        let again = Diagnosis::parse(&d.to_string(), code("5.0.0"));
        assert_eq!((again.status, &again.remote_mta), (d.status, &d.remote_mta));
        assert_eq!(
            again.reply_line().as_deref(),
            Some("451 4.3.0 first 451 4.3.0 second")
        );
        assert_eq!(Diagnosis::parse(&l.to_string(), code("5.0.0")), l);
        // Foreign text never fails.
        let f = Diagnosis::parse("something odd", code("4.4.7"));
        assert_eq!(f.status, code("4.4.7"));
        assert_eq!(f.detail.as_deref(), Some("something odd"));
        assert_eq!(
            Diagnosis::parse("", OTHER_TRANSIENT),
            Diagnosis {
                status: code("4.0.0"),
                reply: None,
                detail: None,
                remote_mta: None
            }
        );
        // A mismatched enhanced class is ignored.
        assert_eq!(
            Diagnosis::parse("550 4.1.1 x", code("4.0.0")).status,
            code("5.0.0")
        );
    }

    #[test]
    fn status_codes_follow_rfc3463_syntax() {
        for ok in ["2.0.0", "4.4.7", "5.1.10", "5.999.999"] {
            assert!(is_status(ok), "{ok}");
        }
        for bad in ["3.0.0", "5.1", "5.1.1.1", "5.1000.1", "x.1.1", "", "5..1"] {
            assert!(!is_status(bad), "{bad}");
        }
    }

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_798_761_599),
            "Thu, 31 Dec 2026 23:59:59 +0000"
        );
    }

    #[test]
    fn hostile_text_stays_on_one_bounded_line() {
        let long = format!("550 5.7.1 {}\r\nInjected: header", "x".repeat(5000));
        let d = Diagnosis::parse(&long, code("5.0.0"));
        let bytes = report(
            vec![RecipientReport {
                final_recipient: "bob@example.net\r\nBcc: evil@example.com".into(),
                original_recipient: None,
                action: DsnAction::Failed,
                diagnosis: d,
                last_attempt: None,
                will_retry_until: None,
            }],
            false,
        );
        let p = parse_report(&bytes).unwrap();
        assert!(p.header("bcc").is_none());
        assert!(
            p.recipients[0]
                .iter()
                .all(|(n, _)| n != "injected" && n != "bcc")
        );
        for line in bytes.split(|&b| b == b'\n') {
            assert!(line.len() < 1000, "line of {} octets", line.len());
        }
    }

    /// A small deterministic generator (xorshift), so the robustness test
    /// needs no extra dependency and always runs the same inputs.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn text(&mut self, alphabet: &[&str], max: usize) -> String {
            let n = (self.next() as usize) % (max + 1);
            (0..n)
                .map(|_| alphabet[(self.next() as usize) % alphabet.len()])
                .collect()
        }
    }

    #[test]
    fn arbitrary_input_never_panics_and_always_renders_a_valid_report() {
        let alphabet = [
            "5",
            "4",
            "2",
            ".",
            "0",
            "1",
            " ",
            "(remote mta: ",
            ")",
            "[",
            "]",
            ":",
            ";",
            "\r\n",
            "\n",
            "\r",
            "\t",
            "é",
            "\u{0}",
            "x",
            "--",
            "=_postern_",
            "550 ",
            "5.1.1 ",
            "@",
            "--=_postern_r_0",
            "r_1",
        ];
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let stored = g.text(&alphabet, 40);
            let d = Diagnosis::parse(&stored, code("5.0.0"));
            assert!(
                is_status(&d.status.to_string()),
                "{stored:?} -> {:?}",
                d.status
            );
            let _ = d.class();
            let _ = d.remote_host();
            let _ = reply_from_text(&stored);
            let again = Diagnosis::parse(&d.to_string(), code("5.0.0"));
            assert_eq!(again.status, d.status, "{stored:?}");
            let addr = g.text(&alphabet, 20);
            let original = g.text(&alphabet, 60);
            let bytes = render(&Report {
                reporting_mta: "mx.example.org",
                queue_id: "q",
                report_id: "r",
                original_sender: &addr,
                envid: Some(&stored),
                received_from_mta: Some(&addr),
                arrival: g.next(),
                now: g.next() % 4_000_000_000,
                recipients: vec![RecipientReport {
                    final_recipient: addr.clone(),
                    original_recipient: Some(stored.clone()),
                    action: DsnAction::Failed,
                    diagnosis: d,
                    last_attempt: Some(g.next() % 4_000_000_000),
                    will_retry_until: None,
                }],
                original: original.as_bytes(),
                return_full: g.next().is_multiple_of(2),
                reason: Some(stored.clone()),
            });
            if let Err(e) = parse_report(&bytes) {
                panic!(
                    "{e}: inputs {stored:?} {addr:?} {original:?}\n{}",
                    String::from_utf8_lossy(&bytes)
                );
            }
            let _ = parse_report(original.as_bytes());
            let _ = header_block(original.as_bytes());
        }
    }

    #[test]
    fn header_fields_unfold_and_take_bare_lf_lines() {
        let h = b"From: <a@b.c>\r\nSubject: one\r\n\ttwo\r\nno colon\r\nX-A : 1\nTo:x";
        let fields = header_fields(h);
        let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
        assert_eq!(names, ["From", "Subject", "X-A", "To"]);
        assert_eq!(fields[1].1, b" one\r\n\ttwo");
        assert_eq!(fields[2].1, b" 1");
        assert_eq!(fields[3].1, b"x");
        assert!(header_fields(b"").is_empty());
    }

    #[test]
    fn header_block_stops_at_the_first_empty_line() {
        assert_eq!(
            header_block(b"A: 1\r\nB: 2\r\n\r\nbody\r\n"),
            b"A: 1\r\nB: 2\r\n"
        );
        assert_eq!(header_block(b"A: 1\nB: 2\n\nbody\n"), b"A: 1\nB: 2\n");
        assert_eq!(header_block(b"A: 1\r\n"), b"A: 1\r\n");
        assert_eq!(header_block(b""), b"");
    }

    #[test]
    fn the_checker_refuses_what_is_not_a_delivery_report() {
        assert!(parse_report(b"Subject: x\r\n\r\nhello\r\n").is_err());
        let good = report(vec![failed("a@x.example", "550 no")], false);
        let text = String::from_utf8(good).unwrap();
        let bad_status = text.replace("Status: 5.0.0", "Status: 9.9");
        assert!(
            parse_report(bad_status.as_bytes())
                .unwrap_err()
                .contains("Status")
        );
        let bad_action = text.replace("Action: failed", "Action: exploded");
        assert!(
            parse_report(bad_action.as_bytes())
                .unwrap_err()
                .contains("Action")
        );
        let no_mta = text.replace("Reporting-MTA: dns; mx.example.org\r\n", "");
        assert!(parse_report(no_mta.as_bytes()).is_err());
        let reordered = text.replace(
            "Final-Recipient: rfc822; a@x.example\r\nAction: failed",
            "Action: failed\r\nFinal-Recipient: rfc822; a@x.example",
        );
        assert!(
            parse_report(reordered.as_bytes())
                .unwrap_err()
                .contains("order")
        );
    }

    #[test]
    fn utf8_addresses_make_a_global_report_and_ascii_reports_stay_7bit() {
        let ascii_report = report(vec![failed("a@x.example", "550 5.7.1 refusé")], false);
        let p = parse_report(&ascii_report).unwrap();
        assert_eq!(p.part_types[1], "message/delivery-status");
        assert_eq!(
            p.recipient_field(0, "diagnostic-code"),
            Some("smtp; 550 5.7.1 refus?")
        );
        let global = report(vec![failed("josé@x.example", "550 5.1.1 no")], false);
        let p = parse_report(&global).unwrap();
        assert_eq!(p.part_types[1], "message/global-delivery-status");
        assert_eq!(
            p.recipient_field(0, "final-recipient"),
            Some("utf-8; josé@x.example")
        );
    }
}
