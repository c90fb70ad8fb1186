//! The session's own replies, pre-encoded: writing one is a copy, with no
//! allocation. Enhanced status codes follow RFC 3463 / RFC 5248.

pub(crate) const OK: &[u8] = b"250 2.0.0 OK\r\n";
pub(crate) const SENDER_OK: &[u8] = b"250 2.1.0 Sender OK\r\n";
pub(crate) const RECIPIENT_OK: &[u8] = b"250 2.1.5 Recipient OK\r\n";
pub(crate) const START_DATA: &[u8] = b"354 End data with <CR><LF>.<CR><LF>\r\n";
pub(crate) const MESSAGE_OK: &[u8] = b"250 2.0.0 Message accepted\r\n";
pub(crate) const BYE: &[u8] = b"221 2.0.0 Bye\r\n";
pub(crate) const HELP: &[u8] =
    b"214 2.0.0 Postern SMTP server; see RFC 5321 for the command set\r\n";
pub(crate) const CANNOT_VRFY: &[u8] =
    b"252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n";
pub(crate) const CANNOT_EXPN: &[u8] =
    b"252 2.5.0 Cannot EXPN list, but will accept message and attempt delivery\r\n";
pub(crate) const VRFY_NOT_IMPLEMENTED: &[u8] = b"502 5.5.1 VRFY not available\r\n";
pub(crate) const EXPN_NOT_IMPLEMENTED: &[u8] = b"502 5.5.1 EXPN not available\r\n";

// Sequence (RFC 5321 §4.3.2).
pub(crate) const SEND_HELLO_FIRST: &[u8] = b"503 5.5.1 Send EHLO or HELO first\r\n";
pub(crate) const SEND_LHLO_FIRST: &[u8] = b"503 5.5.1 Send LHLO first\r\n";
pub(crate) const USE_LHLO: &[u8] = b"500 5.5.1 This is LMTP: use LHLO\r\n";
pub(crate) const NESTED_MAIL: &[u8] = b"503 5.5.1 Sender already specified\r\n";
pub(crate) const NEED_MAIL: &[u8] = b"503 5.5.1 Need MAIL command first\r\n";
pub(crate) const NO_RECIPIENTS: &[u8] = b"554 5.5.1 No valid recipients\r\n";
pub(crate) const BINARYMIME_NEEDS_BDAT: &[u8] = b"503 5.5.1 BODY=BINARYMIME requires BDAT\r\n";
pub(crate) const DATA_AFTER_BDAT: &[u8] = b"503 5.5.1 DATA not allowed after BDAT\r\n";
pub(crate) const BDAT_NOT_OFFERED: &[u8] = b"502 5.5.1 BDAT not available\r\n";
pub(crate) const REFUSED_SEND_QUIT: &[u8] = b"503 5.5.1 Service refused; send QUIT\r\n";

// Limits.
pub(crate) const TOO_MANY_RECIPIENTS: &[u8] = b"452 4.5.3 Too many recipients\r\n";
pub(crate) const TOO_LARGE: &[u8] =
    b"552 5.3.4 Message size exceeds fixed maximum message size\r\n";
pub(crate) const BARE_LINE_END: &[u8] =
    b"521 5.5.2 Bare LF or CR in a command line; lines end with CRLF\r\n";
pub(crate) const BARE_LINE_ENDINGS: &[u8] = b"550 5.6.11 Bare CR or LF in message body\r\n";
pub(crate) const TOO_MANY_ERRORS: &[u8] = b"421 4.7.0 Too many errors; closing connection\r\n";
pub(crate) const TOO_MANY_AUTH_FAILURES: &[u8] =
    b"421 4.7.0 Too many authentication failures; closing connection\r\n";
pub(crate) const TIMEOUT: &[u8] = b"421 4.4.2 Timeout; closing connection\r\n";
pub(crate) const SHUTDOWN: &[u8] = b"421 4.3.2 Service shutting down; closing connection\r\n";

// Transport and AUTH policy.
pub(crate) const MUST_STARTTLS: &[u8] = b"530 5.7.0 Must issue a STARTTLS command first\r\n";
pub(crate) const AUTH_REQUIRED: &[u8] = b"530 5.7.0 Authentication required\r\n";
pub(crate) const REQUIRETLS_NEEDS_TLS: &[u8] = b"530 5.7.10 REQUIRETLS needs a TLS connection\r\n";
pub(crate) const READY_FOR_TLS: &[u8] = b"220 2.0.0 Ready to start TLS\r\n";
pub(crate) const TLS_ALREADY_ACTIVE: &[u8] = b"503 5.5.1 TLS already active\r\n";
pub(crate) const STARTTLS_NOT_OFFERED: &[u8] = b"502 5.5.1 STARTTLS not available\r\n";
pub(crate) const STARTTLS_IN_TRANSACTION: &[u8] =
    b"503 5.5.1 STARTTLS not permitted during a mail transaction\r\n";
pub(crate) const PIPELINED_AFTER_STARTTLS: &[u8] =
    b"554 5.5.0 Commands pipelined after STARTTLS; closing connection\r\n";
pub(crate) const ENCRYPTION_REQUIRED: &[u8] =
    b"538 5.7.11 Encryption required for requested authentication mechanism\r\n";
pub(crate) const AUTH_NOT_AVAILABLE: &[u8] = b"502 5.5.1 Authentication not available\r\n";
pub(crate) const ALREADY_AUTHENTICATED: &[u8] = b"503 5.5.1 Already authenticated\r\n";
pub(crate) const AUTH_IN_TRANSACTION: &[u8] =
    b"503 5.5.1 AUTH not permitted during a mail transaction\r\n";
pub(crate) const AUTH_OK: &[u8] = b"235 2.7.0 Authentication successful\r\n";
pub(crate) const AUTH_FAILED: &[u8] = b"535 5.7.8 Authentication credentials invalid\r\n";
pub(crate) const AUTH_TEMPFAIL: &[u8] = b"454 4.7.0 Temporary authentication failure\r\n";
pub(crate) const AUTH_CANCELLED: &[u8] = b"501 5.7.0 Authentication cancelled\r\n";
pub(crate) const AUTH_MALFORMED: &[u8] = b"501 5.5.2 Malformed authentication response\r\n";

// Default refusals of embedder decisions.
pub(crate) const CONNECT_REJECTED: &[u8] = b"554 5.7.1 Service refused\r\n";
pub(crate) const CONNECT_TEMPFAIL: &[u8] =
    b"421 4.3.2 Service not available; closing connection\r\n";
pub(crate) const HELLO_REJECTED: &[u8] = b"550 5.7.1 Greeting refused\r\n";
pub(crate) const HELLO_TEMPFAIL: &[u8] = b"450 4.7.1 Greeting refused; try again later\r\n";
pub(crate) const SENDER_REJECTED: &[u8] = b"550 5.7.1 Sender refused\r\n";
pub(crate) const RECIPIENT_REJECTED: &[u8] = b"550 5.7.1 Recipient refused\r\n";
pub(crate) const DATA_REJECTED: &[u8] = b"554 5.7.1 Transaction refused\r\n";
pub(crate) const MESSAGE_REJECTED: &[u8] = b"550 5.7.1 Message refused\r\n";
pub(crate) const TEMPFAIL: &[u8] = b"451 4.3.0 Temporary failure; try again later\r\n";
