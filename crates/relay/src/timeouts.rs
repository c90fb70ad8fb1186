//! Per-phase timeouts, defaulting to RFC 5321 §4.5.3.2.

use std::time::Duration;

/// How long the client waits at each phase. The defaults are RFC 5321
/// §4.5.3.2's minimums; shorten them for tests, never below what slow but
/// legitimate servers need in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// Opening the TCP connection (not in the RFC; 30 s).
    pub connect: Duration,
    /// The initial 220 greeting: 5 minutes.
    pub greeting: Duration,
    /// EHLO, HELO, STARTTLS, AUTH, RSET and QUIT replies (not in the RFC;
    /// 5 minutes, as for MAIL).
    pub command: Duration,
    /// The TLS handshake (not in the RFC; 1 minute).
    pub tls_handshake: Duration,
    /// MAIL: 5 minutes.
    pub mail: Duration,
    /// Each RCPT: 5 minutes.
    pub rcpt: Duration,
    /// The 354 reply to DATA: 2 minutes.
    pub data_init: Duration,
    /// Each write of body data (and each non-final BDAT reply): 3 minutes.
    pub data_block: Duration,
    /// The reply after the end of data: 10 minutes.
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        const MIN: u64 = 60;
        Self {
            connect: Duration::from_secs(30),
            greeting: Duration::from_secs(5 * MIN),
            command: Duration::from_secs(5 * MIN),
            tls_handshake: Duration::from_secs(MIN),
            mail: Duration::from_secs(5 * MIN),
            rcpt: Duration::from_secs(5 * MIN),
            data_init: Duration::from_secs(2 * MIN),
            data_block: Duration::from_secs(3 * MIN),
            data_end: Duration::from_secs(10 * MIN),
        }
    }
}

impl Timeouts {
    /// Every timeout set to `d` (for tests).
    pub fn uniform(d: Duration) -> Self {
        Self {
            connect: d,
            greeting: d,
            command: d,
            tls_handshake: d,
            mail: d,
            rcpt: d,
            data_init: d,
            data_block: d,
            data_end: d,
        }
    }
}
