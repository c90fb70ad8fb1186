//! Resource limits of a session, with safe defaults.

use postern_proto::LineLimits;

/// Bounds on what one client can make the session hold or do.
///
/// Every limit hit has a reply of its own, so a client learns which one it
/// ran into; none of them lets memory grow without bound.
/// Start from `Limits::default()` and set the fields that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most recipients accepted in one transaction; the next `RCPT` gets
    /// `452 4.5.3 Too many recipients` (RFC 5321 §4.5.3.1.8 asks for at
    /// least 100).
    pub max_recipients: usize,
    /// Largest message body in octets, advertised as `SIZE n`. A larger
    /// `SIZE=` on `MAIL` gets `552 5.3.4` at once; a larger body is counted
    /// while it streams (octets past the limit are not handed out) and gets
    /// `552 5.3.4` after its end.
    pub max_message_size: u64,
    /// Protocol errors (the session's own 5xx replies: grammar, sequence,
    /// unsupported parameters) before `421 4.7.0` and close.
    pub max_errors: u32,
    /// Failed AUTH attempts (credentials refused by the embedder) before
    /// `421 4.7.0` and close.
    pub max_auth_failures: u32,
    /// Longest command line and longest AUTH line, CRLF included.
    pub lines: LineLimits,
    /// Most input octets held while the session cannot make progress (a
    /// decision is pending, or body chunks have not been polled). Past it,
    /// [`Session::receive`](crate::Session::receive) accepts no more and
    /// [`Session::wants_read`](crate::Session::wants_read) is false. Raised
    /// to the longest line limit if set below it, so a line can always be
    /// completed.
    pub max_pending_input: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_recipients: 100,
            max_message_size: 25 * 1024 * 1024,
            max_errors: 10,
            max_auth_failures: 3,
            lines: LineLimits::default(),
            max_pending_input: 64 * 1024,
        }
    }
}

impl Limits {
    /// The pending-input bound actually enforced: never below a full line.
    pub(crate) fn effective_pending_input(&self) -> usize {
        self.max_pending_input
            .max(self.lines.command)
            .max(self.lines.auth)
    }
}
