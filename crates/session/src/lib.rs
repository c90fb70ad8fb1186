//! # postern-session
//!
//! The SMTP (and LMTP) server session of Postern as a sans-IO state
//! machine, in the style of rustls and quinn-proto: the caller owns the
//! socket, feeds the session the bytes it reads, writes the replies the
//! session produces, answers its questions and takes note of its notices
//! (one ordered queue of [`Event`]s holds both). There is
//! no IO, no async runtime and no TLS library here; the session never
//! blocks and never panics.
//!
//! It holds the security invariants of the inbound side:
//! - bytes pipelined after `STARTTLS` never reach the TLS session (they are
//!   discarded and counted, or the session refuses and closes), and after
//!   the handshake nothing of the plaintext session survives: no greeting,
//!   no AUTH, no envelope;
//! - what the reply to `EHLO` advertises is what the session honours: the
//!   session proposes what policy allows on the current transport (AUTH
//!   mechanisms included), the embedder may narrow it per connection
//!   ([`Decision::Advertise`]) but never widen it; an AUTH attempt with a
//!   mechanism not offered gets `538 5.7.11` (or `504`/`502`) before any
//!   credential is read, and credentials reach the embedder in a type that
//!   keeps the secret out of `Debug`;
//! - every reply written is one reply: the session's own are constants,
//!   and an embedder's is a [`postern_proto::Reply`], whose text cannot
//!   hold CR or LF;
//! - command lines, AUTH lines, body size, recipients, errors and buffered
//!   input are bounded, each limit with its own reply;
//! - only CRLF ends a command line: a bare LF or bare CR in one gets
//!   `521 5.5.2` and the session closes, so the octets after it never run
//!   as a command ([`Config::bare_lf_line_end`] allows bare LF line ends
//!   for legacy clients, set per connection);
//! - only `CRLF.CRLF` ends a `DATA` body, and bare CR/LF in it are refused
//!   (`550 5.6.11`) or normalised, by policy.
//!
//! Parsing is [`postern_proto`]'s: this crate decides what each command
//! means in the session's state.
//!
//! # Driving a session
//!
//! A complete driver loop over a byte stream, with decisions made on the
//! spot (an async embedder may make them later: commands pipelined behind
//! a pending decision wait and are answered in order).
//!
//! ```
//! use std::sync::Arc;
//! use postern_proto::{EnhancedCode, Reply, ReplyCode};
//! use postern_session::{Config, ConnectionInfo, Decision, Event, Notice, Question, Session};
//!
//! let config = Arc::new(Config::new("mx.example.org"));
//! let mut session = Session::new(config, ConnectionInfo::default());
//!
//! // What the client sends, as the socket delivers it: a pipelined group
//! // (RFC 2920), then the body split mid-line.
//! let mut reads: std::collections::VecDeque<&[u8]> = [
//!     &b"EHLO client.example\r\n"[..],
//!     b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n\
//!       RCPT TO:<nobody@example.org>\r\nDATA\r\n",
//!     b"Subject: hi\r\n\r\nHello",
//!     b" Bob.\r\n.\r\nQUIT\r\n",
//! ]
//! .into();
//!
//! let mut wire = Vec::new(); // what the driver writes to the socket
//! let mut spool = Vec::new(); // where the message goes
//! loop {
//!     // 1. Answer questions, take note of notices.
//!     while let Some(event) = session.poll_event() {
//!         match event {
//!             Event::Question(Question::Rcpt { to, .. })
//!                 if to.to_string() == "<nobody@example.org>" =>
//!             {
//!                 let no_such_user = Reply::new(
//!                     ReplyCode::MAILBOX_UNAVAILABLE,
//!                     EnhancedCode::new(5, 1, 1),
//!                     ["No such user"],
//!                 )
//!                 .unwrap();
//!                 session.decide(Decision::RejectWith(no_such_user)).unwrap();
//!             }
//!             // The default capabilities; `Decision::Advertise(offer)`
//!             // would narrow them for this connection.
//!             Event::Question(_) => session.accept().unwrap(),
//!             Event::Notice(Notice::BodyChunk(chunk)) => spool.extend_from_slice(&chunk),
//!             Event::Notice(Notice::StartTls { .. }) => {
//!                 // Write out the output, run the TLS handshake on the
//!                 // socket, then call `session.tls_established(info)`.
//!             }
//!             Event::Notice(_) => {}
//!         }
//!     }
//!     // 2. Write the replies: one write per batch.
//!     if session.has_output() {
//!         wire.extend_from_slice(session.output());
//!         session.consume_output(session.output().len());
//!     }
//!     if session.is_closed() {
//!         break; // close the socket
//!     }
//!     // 3. Read, unless the session holds as much as it may.
//!     if session.wants_read() {
//!         let Some(read) = reads.pop_front() else {
//!             session.peer_closed();
//!             continue;
//!         };
//!         let taken = session.receive(read);
//!         if taken < read.len() {
//!             reads.push_front(&read[taken..]);
//!         }
//!     }
//! }
//!
//! assert_eq!(spool, b"Subject: hi\r\n\r\nHello Bob.\r\n");
//! let wire = String::from_utf8(wire).unwrap();
//! let codes: Vec<&str> = wire.lines().map(|l| &l[..4]).collect();
//! assert_eq!(
//!     codes,
//!     [
//!         "220 ", // greeting
//!         "250-", "250-", "250-", "250-", "250-", "250-", "250-", "250-", "250-",
//!         "250 ", // EHLO: name and capabilities
//!         "250 ", "250 ", "550 ", "354 ", // MAIL, RCPT, RCPT refused, DATA
//!         "250 ", "221 ", // the message, QUIT
//!     ]
//! );
//! assert!(wire.contains("\r\n250 STARTTLS\r\n"));
//! assert!(!wire.contains("AUTH"), "no AUTH on plaintext by default");
//! ```
//!
//! # Modules
//! - [`config`] and [`limits`]: what is offered and enforced.
//! - [`event`] and [`decision`]: what the session asks and tells, how to
//!   answer; [`EhloOffer`]: what one connection is offered.
//! - [`sasl`]: pluggable SASL mechanisms (PLAIN, LOGIN built in).
//! - [`connection`]: addresses and TLS parameters from the driver.

mod auth;
mod capabilities;
pub mod config;
pub mod connection;
mod data;
mod decide;
pub mod decision;
pub mod event;
pub mod limits;
mod offer;
mod replies;
pub mod sasl;
mod session;
mod starttls;
mod text;
mod transaction;

pub use config::{
    AfterStartTls, AuthPolicy, BareLineEndingPolicy, Config, Extensions, Protocol, StartTlsPolicy,
    VrfyPolicy,
};
pub use connection::{ConnectionInfo, TlsInfo};
pub use decision::{ApiError, Decision};
pub use event::{
    AbortReason, BodyKind, CloseReason, DecisionKind, Event, HelloVerb, Notice, Question,
};
pub use limits::Limits;
pub use offer::EhloOffer;
/// The TLS version in [`TlsInfo`]: proto's, the one of the workspace.
pub use postern_proto::TlsVersion;
pub use sasl::{
    Credentials, DEFAULT_ITERATIONS, PasswordLine, ProofCheck, SCRAM_SHA_256_PLUS, SaslContext,
    SaslMechanism, SaslMechanisms, SaslServer, SaslStep, ScramKeys, ScramSha256, ScramStore,
    Secret,
};
pub use session::{AuthIdentity, Session};
