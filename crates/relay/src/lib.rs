//! # postern-relay
//!
//! Postern's outbound SMTP client: it delivers messages to a smart host or
//! to a domain's MX hosts and enforces the route's TLS policy.
//!
//! ## Layers and features
//!
//! Two layers, as quinn-proto and quinn (or h2 and hyper) are:
//! - The sans-IO core, always built: [`Client`], a state machine with no
//!   IO and no clock. Feed it received octets ([`Client::receive`], which
//!   returns how many it took and bounds what it holds), write what it
//!   produces ([`Client::output`], then [`Client::consume_output`]), act on
//!   its [`ClientEvent`]s (`StartTlsNow`, `Ready`, `Done(results)`,
//!   `Closed`, `Failed`), and wait at most [`Client::timeout`] for input.
//!   The core also holds the TLS policy ([`TlsPolicy`], [`client_config`]
//!   for rustls), routes, MX ordering ([`plan_mx`]), the [`Resolver`]
//!   trait, results and errors ([`RelayError::status`] gives the RFC 3463
//!   code). It needs rustls for the policy types but no runtime.
//! - The driver (feature `tokio`): [`Connection`] and [`Relay`] own the
//!   socket, upgrade it in place with tokio-rustls, apply RFC 5321
//!   §4.5.3.2 timeouts and try MX hosts in order through a [`Resolver`]
//!   ([`HickoryResolver`] for DNS with feature `hickory`,
//!   [`StaticResolver`] for tests and fixed hosts).
//!
//! | feature | default | adds |
//! |---|---|---|
//! | `tokio` | yes | `Connection`, `Connector`, `Relay`; tokio, tokio-rustls, tracing |
//! | `hickory` | yes | `HickoryResolver`, `mx_records`, `DnssecResolver` (DNSSEC status for DANE); hickory-resolver, hickory-proto (implies `tokio`) |
//! | `webpki-roots` | yes | `Anchors::WebPki`, the Mozilla root program |
//! | `mta-sts-fetch` | yes | `mta_sts::{PolicyFetcher, PolicyCache, StsResolver}`, `Relay::with_mta_sts`; hyper (HTTP/1.1 client only) (implies `tokio`) |
//!
//! With `default-features = false` only the sans-IO core is built, and
//! `cargo tree -p postern-relay --no-default-features -e normal` lists no
//! tokio, tokio-rustls, hickory or webpki-roots (`scripts/check-layering.sh`
//! checks it).
//!
//! ## Driving the client yourself
//! The core alone, as a caller with its own IO (or a test) uses it; the
//! server's replies are canned here.
//! ```
//! use std::sync::Arc;
//! use postern_proto::{ForwardPath, Host, Mailbox, ReversePath};
//! use postern_relay::{Client, ClientEvent, Message, SessionConfig, TlsRequirement};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = SessionConfig::new(Host::parse("client.example")?.into_owned())
//!     .with_tls(TlsRequirement::Plain);
//! let mut client = Client::new(Arc::new(config));
//! let mut wire = Vec::new();
//! let mut exchange = |client: &mut Client, reply: &[u8]| {
//!     // Read from the socket, feed what was read, keep what was not taken.
//!     let taken = client.receive(reply);
//!     assert_eq!(taken, reply.len());
//!     // Write the output (here: collect it), then say how much went out.
//!     wire.extend_from_slice(client.output());
//!     let written = client.output().len();
//!     client.consume_output(written);
//! };
//! exchange(&mut client, b"220 mx.example.net ESMTP\r\n");
//! exchange(&mut client, b"250-mx.example.net\r\n250 PIPELINING\r\n");
//! assert_eq!(client.poll_event(), Some(ClientEvent::Ready));
//!
//! let from = ReversePath::Mailbox(Mailbox::parse("alice@example.net")?.into_owned());
//! let to = ForwardPath::Mailbox(Mailbox::parse("bob@example.com")?.into_owned());
//! client.send(Message::new(from, [to], &b"Subject: hi\r\n\r\nHello.\r\n"[..]))?;
//! exchange(&mut client, b"250 ok\r\n250 ok\r\n354 go on\r\n");
//! exchange(&mut client, b"250 2.0.0 queued\r\n");
//! let Some(ClientEvent::Done(result)) = client.poll_event() else { panic!() };
//! assert!(result.all_delivered());
//! // MAIL, RCPT and DATA went out in one pipelined write.
//! assert!(String::from_utf8(wire)?.contains(
//!     "MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
//! ));
//! # Ok(()) }
//! ```
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
//!   ([`RelayError::ResponseInjection`]), and after the handshake only the new
//!   EHLO reply's capabilities count.
//!
//! ## DANE
//! [`dane`] holds the sans-IO DANE pieces (RFC 7672): TLSA records, which
//! of them an SMTP client may use, and [`dane::DaneVerifier`], a rustls
//! certificate verifier. `Connector::with_dane` makes a connector that
//! requires TLS and authenticates the server by its validated TLSA records
//! only; the record that matched is in [`OutboundTls::dane`].
//! [`TlsMode::Dane`] and [`TlsMode::DaneOnly`] make [`Relay::deliver`] do
//! the rest with a [`DaneResolver`] ([`Relay::with_dane_resolver`];
//! [`DnssecResolver`] over the network): the DNSSEC status of the MX,
//! address and TLSA records decides, per host, between DANE, the fallback
//! and deferring ([`DaneRefusal`]).
//!
//! ## MTA-STS
//! [`mta_sts`] holds the sans-IO MTA-STS pieces (RFC 8461: the TXT record,
//! the policy, MX patterns, cache decisions) and, with `mta-sts-fetch`,
//! the IO: the HTTPS policy fetch, the on-disk cache and
//! `mta_sts::StsResolver`. A route with [`TlsPolicy::mta_sts`] set, on a
//! relay made with `Relay::with_mta_sts`, gets the recipient domain's
//! policy when the delivery is planned: under `enforce`, the MX hosts DANE
//! does not authenticate must match the policy and present a certificate
//! valid for their name, else they are not used
//! ([`RelayError::StsNoMatchingMx`] when none is left).
//!
//! ## Example: the driver
//! With the default features (`tokio`, `hickory`, `webpki-roots`):
//! ```no_run
//! # #[cfg(all(feature = "hickory", feature = "webpki-roots"))]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use postern_proto::{ForwardPath, Host, Mailbox, ReversePath, TlsVersion};
//! use postern_relay::{
//!     HickoryResolver, Message, Relay, Route, SessionConfig, Target, TlsMode, TlsPolicy,
//! };
//!
//! let provider = Arc::new(postern_relay::default_provider());
//! let session = SessionConfig::new(Host::parse("mx.example.net")?.into_owned());
//! let relay = Relay::new(session, provider, Arc::new(HickoryResolver::from_system_conf()?));
//!
//! // Deliver to example.com's MX hosts, only over verified TLS 1.2.
//! let route = Route::new(
//!     Target::mx("example.com", 25),
//!     TlsPolicy::new(TlsMode::Verified { anchors: postern_relay::Anchors::WebPki })
//!         .with_versions([TlsVersion::Tls11, TlsVersion::Tls12]),
//! );
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

// The crate docs link to the driver's types, which do not exist without
// its features; the links resolve in the documentation that matters
// (default features, and docs.rs with all of them).
#![cfg_attr(
    not(all(feature = "tokio", feature = "hickory")),
    allow(rustdoc::broken_intra_doc_links)
)]

mod body;
mod client;
pub mod dane;
// hickory-proto's DNSSEC validation takes its crypto from the provider
// feature; without one it is not built, so say so here.
#[cfg(all(feature = "hickory", not(any(feature = "aws-lc-rs", feature = "ring"))))]
compile_error!("postern-relay's `hickory` feature needs a crypto provider: `aws-lc-rs` or `ring`");
#[cfg(feature = "hickory")]
mod dns;
mod dnssec;
#[cfg(feature = "tokio")]
mod driver;
mod error;
#[cfg(feature = "hickory")]
mod hickory;
mod message;
pub mod mta_sts;
mod policy;
mod provider;
#[cfg(feature = "tokio")]
mod relay;
mod resolve;
mod result;
mod route;
mod timeouts;
mod tls;
pub mod tlsrpt;

pub use body::LineEndings;
pub use client::{
    Client, ClientEvent, NotReady, PasswordFileError, RelayCredentials, SessionConfig,
    TlsRequirement,
};
#[cfg(feature = "serde")]
pub use dns::{DnsSettings, DnsSettingsError, DnssecChoice};
#[cfg(feature = "hickory")]
pub use dns::{DnssecConfig, DnssecMode, DnssecResolver};
pub use dnssec::{DaneResolver, DnsAnswer, DnssecStatus, tlsa_name};
#[cfg(feature = "tokio")]
pub use driver::{Connection, Connector};
pub use error::{DaneRefusal, Phase, RelayError};
#[cfg(feature = "hickory")]
pub use hickory::{HickoryResolver, mx_records};
pub use message::{Message, Recipient};
pub use policy::{AnchorFileError, Anchors, TlsMode, TlsPolicy, VersionReport};
#[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
pub use provider::default_provider;
#[cfg(feature = "tokio")]
pub use relay::{HostTls, LivePlan, PlannedHost, Relay};
pub use resolve::{BoxFuture, MxRecord, ResolveError, Resolver, StaticResolver, plan_mx};
pub use result::{Delivery, MessageResult, RecipientResult};
pub use route::{Route, Target};
pub use timeouts::Timeouts;
pub use tls::{OutboundTls, client_config, dane_client_config};
