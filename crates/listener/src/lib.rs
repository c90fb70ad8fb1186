//! # postern-listener
//!
//! TLS listener policy for SMTP, mapped honestly onto rustls, and the tokio
//! listeners that drive a [`postern_session::Session`] per connection.
//!
//! - [`policy`]: [`TlsSettings`] in an operator's (OpenSSL) terms, built
//!   into a rustls configuration with a [`PolicyReport`]: what rustls
//!   cannot honour is an error, or a warning stating the effective value;
//!   an empty or unsupported set never widens to "all".
//! - [`Server`]: binds [`ListenerConfig`]s (plain, STARTTLS, implicit TLS),
//!   accepts with global and per-IP limits, runs the TLS handshake with a
//!   timeout, drives the session with RFC 5321 §4.5.3.2 timeouts, upgrades
//!   in place on `STARTTLS` (plaintext read before the handshake never
//!   reaches rustls), reloads certificates atomically, and shuts down
//!   gracefully.
//! - [`Handler`] / [`ConnectionHandler`]: what the embedder implements; it
//!   sees every session event in order and answers those that need a
//!   decision, asynchronously.
//!
//! # The guide's three listeners
//!
//! ```no_run
//! use std::sync::Arc;
//! use postern_listener::{
//!     CertSpec, ConnContext, ConnectionHandler, Facts, Handler, ListenerConfig, Mode, Server,
//!     TlsSettings,
//! };
//! use postern_session::{Decision, Event};
//!
//! struct Accept;
//! struct AcceptConn;
//! impl Handler for Accept {
//!     type Conn = AcceptConn;
//!     fn connect(&self, _: &ConnContext) -> AcceptConn {
//!         AcceptConn
//!     }
//! }
//! impl ConnectionHandler for AcceptConn {
//!     async fn event(&mut self, _event: Event, _facts: &Facts<'_>) -> Decision {
//!         Decision::Accept
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = Arc::new(rustls::crypto::ring::default_provider());
//! let tls = TlsSettings {
//!     versions: vec!["TLSv1.2".into(), "TLSv1.3".into()],
//!     ciphers: Some("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384".into()),
//!     ..TlsSettings::new(vec![CertSpec::files(
//!         &["mx.example.org"],
//!         "/etc/postern/cert.pem",
//!         "/etc/postern/key.pem",
//!     )])
//! };
//! let listeners = vec![
//!     ListenerConfig::new("smtp", "0.0.0.0:25".parse()?, Mode::StartTls { required: false })
//!         .with_tls(tls.clone()),
//!     ListenerConfig::new("submission", "0.0.0.0:587".parse()?, Mode::StartTls { required: true })
//!         .with_tls(tls.clone()),
//!     ListenerConfig::new("submissions", "0.0.0.0:465".parse()?, Mode::Implicit).with_tls(tls),
//! ];
//! let server = Server::bind(listeners, Arc::new(Accept), provider)?;
//! server.run().await;
//! # Ok(())
//! # }
//! ```

mod admission;
mod certs;
mod config;
mod driver;
mod error;
mod handler;
pub mod policy;
mod server;
mod stream;

pub use certs::{CertSpec, PemSource};
pub use config::{ConnLimits, ListenerConfig, Mode};
pub use error::{BindError, ReloadError};
pub use handler::{ConnContext, ConnectionHandler, Facts, Handler};
pub use policy::{BuiltTls, ClientAuth, PolicyError, PolicyReport, Problem, TlsSettings, Warning};
pub use server::{Server, ShutdownHandle};
