//! # postern-listener
//!
//! TLS listener policy for SMTP, mapped honestly onto rustls, and the tokio
//! listeners that drive a [`postern_session::Session`] per connection.
//!
//! - [`policy`]: [`TlsSettings`] in an operator's (OpenSSL) terms, built
//!   into a rustls configuration with a [`TlsPolicyReport`]: what rustls
//!   cannot honour is an error, or a warning stating the effective value;
//!   an empty or unsupported set never widens to "all".
//! - [`Listener::serve_connection`]: drives one session over any accepted
//!   `AsyncRead + AsyncWrite` stream (a TCP socket, a socket handed over
//!   by systemd, a stream behind a PROXY-protocol front, a
//!   [`tokio::io::duplex`] in a test): runs the TLS handshake with a
//!   timeout, drives the session with RFC 5321 §4.5.3.2 timeouts, and
//!   upgrades in place on `STARTTLS` (plaintext read before the handshake
//!   never reaches rustls).
//! - [`proxy`]: the PROXY protocol (v1 and v2) in front of a listener,
//!   believed only from trusted fronts ([`Listener::accept_proxy`]).
//! - [`Server`]: binds [`ListenerConfig`]s (plain, STARTTLS, implicit TLS),
//!   accepts with global and per-IP limits, serves every connection with
//!   [`Listener::serve_connection`], reloads certificates atomically, and
//!   shuts down gracefully.
//! - [`Handler`] / [`ConnectionHandler`]: what the embedder implements; it
//!   answers the session's [`Question`]s (asynchronously; the answer to the
//!   greeting says what the connection is offered, AUTH included) and is
//!   told its [`Notice`]s, in order. The [`session`] crate is re-exported.
//!
//! - [`observe`]: an optional [`Observer`] per listener, told about
//!   throttles, TLS handshake failures (classified), every answered
//!   question (with the reply the session wrote and the handler's time) and
//!   every close (with its TLS version): metrics without this crate choosing
//!   a metrics library. [`scrape`] serves one document over HTTP for the
//!   scraper; [`until_stop_signal`] is a service's SIGTERM/SIGINT/SIGHUP
//!   loop; the `self-signed` feature adds `self_signed` (a 90-day
//!   development certificate, made again near expiry), the `acme` feature
//!   `acme` (certificates obtained and renewed over ACME with http-01,
//!   swapped in with the atomic reload), [`Validity`] reads a certificate's
//!   dates.
//!
//! The listener's [`Mode`] is the one source of truth for offering and
//! requiring `STARTTLS`: it sets the session's
//! [`StartTlsPolicy`] ([`Mode::starttls_policy`]), and a listener whose
//! session configuration disagrees is refused when it is built.
//!
//! # The guide's three listeners
//!
//! Ports 25 and 587 accept plaintext and offer `STARTTLS` (587 requires it
//! and AUTH before mail), 465 speaks TLS from the first byte; SSLv2/SSLv3
//! are off, the cipher list is in OpenSSL notation with the guide's DHE
//! suites and a DH parameter file. This example runs them on loopback with
//! port 0 (use 25, 587 and 465 in production), prints the policy report,
//! and shuts down gracefully.
//!
//! ```
//! use std::sync::Arc;
//! use postern_listener::session::{Config, Decision, Question};
//! use postern_listener::{
//!     CertSpec, ConnContext, ConnectionView, ConnectionHandler, Handler, ListenerConfig, Mode,
//!     Server, TlsSettings,
//! };
//!
//! /// Accepts everything; a real MTA spools the body (told in notices) and
//! /// fsyncs before accepting `MessageComplete`.
//! struct Accept;
//! struct AcceptConn;
//! impl Handler for Accept {
//!     type Conn = AcceptConn;
//!     fn connect(&self, _: &ConnContext) -> AcceptConn {
//!         AcceptConn
//!     }
//! }
//! impl ConnectionHandler for AcceptConn {
//!     async fn question(&mut self, question: Question, facts: &ConnectionView<'_>) -> Decision {
//!         if let Question::Mail { .. } = question {
//!             tracing::info!(tls = facts.is_tls(), "MAIL");
//!         }
//!         Decision::Accept
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("postern-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let dh_file = dir.join("dh2048.pem");
//! # std::fs::write(&dh_file, include_str!("../tests/data/ffdhe2048.pem"))?;
//! # let cert = rcgen::generate_simple_self_signed(vec!["mx.example.org".to_owned()])?;
//! # let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
//! // From files in production: CertSpec::files(&["mx.example.org"], "cert.pem", "key.pem").
//! let certificate = CertSpec::pem(&["mx.example.org"], cert_pem, key_pem);
//! let tls = TlsSettings::new(vec![certificate])
//!     // "SSLv2 and SSLv3 disabled": list what is allowed.
//!     .with_versions(["TLSv1.2", "TLSv1.3"])
//!     .with_ciphers(
//!         "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:\
//!          DHE-RSA-AES128-SHA256:DHE-RSA-AES128-SHA:DHE-DSS-AES128-SHA256:\
//!          DHE-RSA-AES256-SHA256:DHE-DSS-AES256-SHA:DHE-RSA-AES256-SHA",
//!     )
//!     .with_dh_params(dh_file);
//!
//! // What `postern-mta check` prints: nothing is silently dropped.
//! let (_, report) = tls.build(Arc::new(postern_listener::default_provider()))?;
//! println!("{report}");
//! assert!(report.to_string().contains("DHE-RSA-AES128-SHA (finite-field DHE key exchange, CBC mode)"));
//! assert!(report.to_string().contains("valid 2048-bit group, unused"));
//!
//! let mx = Config::new("mx.example.org");
//! let mut submission = mx.clone();
//! submission.require_auth = true;
//! let any = "127.0.0.1:0".parse()?;
//! let listeners = vec![
//!     ListenerConfig::new("smtp", any, Mode::StartTls { required: false })
//!         .with_tls(tls.clone())
//!         .with_session(mx.clone()),
//!     ListenerConfig::new("submission", any, Mode::StartTls { required: true })
//!         .with_tls(tls.clone())
//!         .with_session(submission.clone()),
//!     ListenerConfig::new("submissions", any, Mode::Implicit)
//!         .with_tls(tls)
//!         .with_session(submission),
//! ];
//! let provider = Arc::new(postern_listener::default_provider());
//! let server = Server::bind(listeners, Arc::new(Accept), provider)?;
//! assert_eq!(server.local_addrs().len(), 3);
//!
//! let runtime = tokio::runtime::Runtime::new()?;
//! runtime.block_on(async {
//!     let running = tokio::spawn({
//!         let server = server.clone();
//!         async move { server.run().await }
//!     });
//!     // Port 25 greets in plaintext.
//!     use tokio::io::AsyncReadExt as _;
//!     let mut tcp = tokio::net::TcpStream::connect(server.local_addr("smtp").unwrap()).await?;
//!     let mut greeting = [0u8; 64];
//!     let n = tcp.read(&mut greeting).await?;
//!     assert!(greeting[..n].starts_with(b"220 mx.example.org ESMTP"));
//!     // Idle sessions get 421 at shutdown, and `run` returns.
//!     server.shutdown();
//!     let n = tcp.read(&mut greeting).await?;
//!     assert!(greeting[..n].starts_with(b"421 4.3.2"));
//!     running.await?;
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "acme")]
pub mod acme;
mod admission;
mod certs;
mod config;
mod driver;
mod error;
pub mod guard;
mod handler;
#[cfg(feature = "serde")]
mod limits_table;
mod listener;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod observe;
pub mod policy;
mod provider;
pub mod proxy;
pub mod scrape;
#[cfg(feature = "self-signed")]
pub mod self_signed;
mod server;
#[cfg(unix)]
mod signals;
mod stream;
#[cfg(feature = "serde")]
mod table;
#[cfg(feature = "users")]
pub mod users;
mod validity;

/// The sans-IO session this crate drives, re-exported so embedders name
/// the types of the handler signatures ([`Question`], [`Notice`],
/// [`Decision`], ...) without a dependency of their own.
pub use postern_session as session;
pub use postern_session::{Decision, EhloOffer, Event, Notice, Question, StartTlsPolicy, TlsInfo};

pub use certs::{CertSpec, PemSource};
pub use config::{ConnLimits, ListenerConfig, Mode};
pub use error::{BindError, ConnectionError, ReloadError};
#[cfg(feature = "serde")]
pub use guard::FieldError;
pub use handler::{ConnContext, ConnectionHandler, ConnectionView, Handler};
#[cfg(feature = "serde")]
pub use limits_table::MessageLimits;
pub use listener::Listener;
pub use observe::Observer;
pub use policy::{
    BuiltTls, ClientAuth, PolicyError, Problem, TlsPolicyReport, TlsSettings, Warning,
};
#[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
pub use provider::default_provider;
pub use proxy::{Accepted, BadTrusted, ProxyError, ProxyProtocol, ProxyStream};
pub use server::{Server, ShutdownHandle};
#[cfg(unix)]
pub use signals::{StopSignal, until_stop_signal};
#[cfg(feature = "serde")]
pub use table::ListenerTable;
pub use validity::{CertNote, EXPIRY_WARNING, Validity, ValidityError, expiry_notes, utc};
