//! # postern-proto
//!
//! The SMTP wire grammar of Postern: commands, ESMTP parameters, replies and
//! message bodies, parsed and encoded, with no IO.
//!
//! The grammar is strict where laxness has led to security bugs: only CRLF
//! ends a line (bare CR and bare LF are errors of their own kinds), lines are
//! bounded and an over-long line is discarded as it streams in, invalid UTF-8
//! is an error rather than a replacement character, and only `CRLF.CRLF` ends a
//! DATA body (so `\n.\n` and its cousins cannot smuggle a second message).
//! Every grammar error maps to the precise reply a server should send.
//!
//! Parsing is zero-copy: a [`Command`] borrows from the input line, and
//! [`Command::into_owned`] gives the owned form ([`OwnedCommand`]).
//!
//! ```
//! use postern_proto::{Command, CommandParser, Parsed, ReversePath};
//!
//! let mut parser = CommandParser::default();
//! let input = b"MAIL FROM:<alice@example.org> SIZE=2048 BODY=8BITMIME\r\n";
//! let Parsed::Command { command, consumed } = parser.parse(input) else {
//!     panic!("a complete command")
//! };
//! assert_eq!(consumed, input.len());
//! let Command::Mail { from: ReversePath::Mailbox(sender), params } = &command else {
//!     panic!("MAIL")
//! };
//! assert_eq!(sender.domain().unwrap().as_str(), "example.org");
//! assert_eq!(params.size, Some(2048));
//!
//! // Encoding gives the canonical wire form back.
//! assert_eq!(command.to_vec().unwrap(), input);
//!
//! // Grammar errors carry the reply to send.
//! let Parsed::Error { error, .. } = parser.parse(b"MAIL FROM:<alice@example.org>\n") else {
//!     panic!("bare LF")
//! };
//! assert_eq!(error.reply().to_vec(), b"500 5.5.2 Bare CR or LF not allowed; lines end with CRLF\r\n");
//! ```
//!
//! Modules, each with the ABNF it implements:
//! - [`command`]: commands, the incremental [`CommandParser`], AUTH responses.
//! - [`address`]: paths, mailboxes, domains, address literals (RFC 5321, RFC 6531).
//! - [`params`]: MAIL and RCPT parameters (SIZE, BODY, SMTPUTF8, DSN, AUTH=,
//!   REQUIRETLS, MT-PRIORITY), xtext.
//! - [`reply`]: reply codes, enhanced status codes, replies, incremental parsing.
//! - [`ehlo`]: the EHLO reply and its typed capability set.
//! - [`line`]: CRLF-only line framing with limits.
//! - [`data`] and [`bdat`]: streaming DATA decoding and BDAT chunk reading.
//! - [`error`]: grammar errors and their replies.
//! - [`tls`]: the one [`TlsVersion`] and its one name parser.
//!
//! With the `serde` feature, the vocabulary types (paths, mailboxes, hosts,
//! `BODY`/`RET`/`NOTIFY`/`ORCPT`, replies, enhanced codes, mechanisms, TLS
//! versions) serialize in their SMTP text form and deserialize through the
//! same strict grammar, and [`duration`] reads the durations of
//! configuration files.

pub mod address;
pub mod bdat;
pub mod command;
pub mod data;
#[cfg(feature = "serde")]
pub mod duration;
pub mod ehlo;
pub mod error;
mod grammar;
pub mod line;
pub mod params;
pub mod reply;
#[cfg(feature = "serde")]
mod serde_impl;
pub mod tls;

pub use address::{
    AddressError, AddressLiteral, Domain, ForwardPath, Host, LocalPart, Mailbox, ReversePath,
};
pub use bdat::{BdatReader, BdatStep};
pub use command::{
    AuthParsed, AuthResponse, Command, CommandParser, EncodeError, InitialResponse, Mechanism,
    OwnedCommand, Parsed, encode_base64, parse_auth_response,
};
pub use data::{BareLineEndings, DataConfig, DataDecoder, DataStep, DataSummary};
pub use ehlo::{Capabilities, EhloError, EhloResponse};
pub use error::SyntaxError;
pub use line::{Frame, LineFramer, LineLimits};
pub use params::{Body, MailParams, Notify, Orcpt, RcptParams, Ret, UnknownParam};
pub use reply::{EnhancedCode, Reply, ReplyCode, ReplyError, ReplyLimits, ReplyParse, parse_reply};
pub use tls::{TlsVersion, TlsVersionSet, UnknownTlsVersion};
