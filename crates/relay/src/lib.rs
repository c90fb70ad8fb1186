//! # postern-relay
//!
//! Postern's outbound SMTP client: it delivers messages to a smart host or
//! to a domain's MX hosts and enforces the route's TLS policy.
//!
//! Two layers, in the style of rustls and quinn-proto:
//! - [`Client`], a sans-IO state machine: feed it received octets
//!   ([`Client::receive`]), write what it produces
//!   ([`Client::poll_transmit`]), act on its [`Event`]s (`StartTlsNow`,
//!   `Ready`, `Done(results)`, `Closed`, `Failed`). No IO, no clock.
//! - [`Connection`] and [`Relay`], a tokio driver that owns the socket,
//!   upgrades it in place with tokio-rustls, applies RFC 5321 §4.5.3.2
//!   timeouts and tries MX hosts in order through a [`Resolver`]
//!   ([`HickoryResolver`] for DNS, [`StaticResolver`] for tests).
//!
//! ## TLS policy
//! [`TlsMode`]: `None`, `Opportunistic` (STARTTLS when offered, no
//! certificate check, a plaintext reconnection only when the handshake
//! fails), `Required` (STARTTLS offered and successful, or a transient
//! failure with nothing sent), `Verified` (required plus PKIX and host name
//! checks against webpki-roots or configured anchors) and `Implicit` (TLS
//! from connect, port 465). The invariant (DESIGN.md, invariant 6):
//! - MAIL, RCPT and DATA are never sent in plaintext when the policy
//!   requires TLS: the client only becomes ready after TLS is up.
//! - rustls is configured with exactly the policy's versions, so no
//!   handshake completes on another; versions rustls cannot speak (SSLv3,
//!   TLS 1.0/1.1) are reported by [`TlsPolicy::versions`], never widened,
//!   and a policy left with no version fails before connecting.
//! - Octets received after the 220 reply to STARTTLS abort the connection
//!   ([`Error::ResponseInjection`]), and after the handshake only the new
//!   EHLO reply's capabilities count.
//!
//! ## Example
//! ```no_run
//! use std::sync::Arc;
//! use postern_proto::{ForwardPath, Host, Mailbox, ReversePath};
//! use postern_relay::{
//!     HickoryResolver, Message, Relay, Route, SessionConfig, Target, TlsMode, TlsPolicy,
//!     TlsVersion,
//! };
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = Arc::new(rustls::crypto::ring::default_provider());
//! let session = SessionConfig::new(Host::parse("mx.example.net")?.into_owned());
//! let relay = Relay::new(session, provider, Arc::new(HickoryResolver::from_system_conf()?));
//!
//! // Deliver to example.com's MX hosts, only over verified TLS 1.2.
//! let route = Route {
//!     target: Target::Mx { domain: "example.com".into(), port: 25 },
//!     tls: TlsPolicy::new(TlsMode::Verified { anchors: postern_relay::Anchors::WebPki })
//!         .with_versions([TlsVersion::Tls11, TlsVersion::Tls12]),
//! };
//! // TLS 1.1 is reported, not offered.
//! assert_eq!(route.tls.versions().unsupported, [TlsVersion::Tls11]);
//!
//! let from = ReversePath::Mailbox(Mailbox::parse("alice@example.net")?.into_owned());
//! let to = ForwardPath::Mailbox(Mailbox::parse("bob@example.com")?.into_owned());
//! let message = Message::new(from, [to], &b"Subject: hi\r\n\r\nHello.\r\n"[..]);
//!
//! for result in relay.deliver(&route, vec![message]).await {
//!     if let Some(tls) = &result.tls {
//!         println!("{tls}"); // using TLSv1.2 with cipher ... (verified)
//!     }
//!     for r in &result.recipients {
//!         match &r.outcome {
//!             Ok(reply) => println!("{}: delivered ({reply})", r.recipient),
//!             Err(e) if e.is_transient() => println!("{}: retry later: {e}", r.recipient),
//!             Err(e) => println!("{}: bounce: {e}", r.recipient),
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```

mod body;
mod client;
pub mod dane;
mod driver;
mod error;
mod hickory;
mod message;
mod policy;
mod relay;
mod resolve;
mod result;
mod timeouts;
mod tls;

pub use body::LineEndings;
pub use client::{Client, Credentials, Event, NotReady, SessionConfig, TlsRequirement};
pub use driver::{Connection, Connector};
pub use error::{Error, Stage};
pub use hickory::{HickoryResolver, mx_records};
pub use message::{Message, Recipient};
pub use policy::{Anchors, TlsMode, TlsPolicy, TlsVersion, UnknownVersion, VersionReport};
pub use relay::{Relay, Route, Target};
pub use resolve::{BoxFuture, MxRecord, ResolveError, Resolver, StaticResolver, plan_mx};
pub use result::{MessageResult, RecipientResult};
pub use timeouts::Timeouts;
pub use tls::{TlsInfo, client_config};
