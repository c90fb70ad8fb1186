//! `postern-mta`: the example MTA composed of the Postern crates.
//!
//! The binary (`src/main.rs`) is a thin CLI over this library so the
//! integration tests and the outbound runner share the same types.
//!
//! | module | holds |
//! |---|---|
//! | [`config`] | the TOML configuration, typed and validated; the rule set; `route_for` |
//! | [`defaults`] | the embedded default configuration |
//! | [`users`] | the users file (argon2), the mailbox directory |
//! | [`server`] | the listener handler: rules, users, spool per session event |
//! | [`tls`] | self-signed certificate, TLS settings, per-listener session policy |
//! | [`acme`] | ACME (RFC 8555) certificates: http-01, storage, renewal with atomic reload |
//! | [`cli`] | the commands: check, explain, policy test, user add |
//! | [`outbound`] | the router that asks the rules, and the runner's start |
//! | [`metrics`] | Prometheus series from the listener and runner hooks; `GET /metrics` |
//!
//! # Example
//!
//! Load the embedded default configuration and ask its rules what they do
//! with a plaintext delivery to the TLS-only local domain and with a
//! relayed recipient, as `postern-mta explain` does:
//!
//! ```
//! use postern_mta::config::MtaConfig;
//! use postern_proto::{ForwardPath, Mailbox, ReversePath};
//! use postern_rules::{Facts, RelayTlsMode, Stage, VerdictKind};
//!
//! let mailbox = |a| Mailbox::parse(a).expect("valid address");
//! let config = MtaConfig::embedded().expect("the embedded default loads");
//! assert!(config.is_local_domain("localhost"));
//! let plaintext = Facts::new()
//!     .tls(false)
//!     .sender(ReversePath::Mailbox(mailbox("bob@example.org")))
//!     .recipient(ForwardPath::Mailbox(mailbox("postmaster@tls.localhost")));
//! let outcome = config.rules().evaluate(Stage::Rcpt, &plaintext);
//! assert_eq!(outcome.verdict.kind(), VerdictKind::Reject);
//!
//! // Relaying to example.com goes through the smart host, implicit TLS 1.2.
//! let alice = || ReversePath::Mailbox(mailbox("alice@localhost"));
//! let plan = config.route_for(ForwardPath::Mailbox(mailbox("carol@example.com")), alice());
//! assert_eq!(plan.tls, RelayTlsMode::Implicit);
//! // Elsewhere: MX routing with DANE where the domain is DNSSEC-signed,
//! // else opportunistic STARTTLS (the guide's "Use StartTLS").
//! let plan = config.route_for(ForwardPath::Mailbox(mailbox("dave@example.org")), alice());
//! assert_eq!(plan.tls, RelayTlsMode::Dane);
//! ```
//!
//! The outbound runner (`outbound.rs`, `dsn.rs`) is started by `main` as
//! `outbound::spawn(spool.clone(), config.clone(), shutdown.clone(), None)` with a
//! [`Store`](postern_queue::Store) (an `Arc<dyn Store>`), an `Arc<`[`MtaConfig`](config::MtaConfig)`>` and a
//! [`Shutdown`] receiver.

pub mod abuse;
pub mod acme;
pub mod cli;
pub mod config;
pub mod defaults;
pub mod metrics;

pub mod outbound;
pub mod server;

pub mod tls;
pub mod users;
pub mod verify;

/// The graceful-shutdown signal shared by the server, local delivery and
/// the outbound runner: `true` once SIGTERM (or SIGINT) arrived. Wait with
/// `shutdown.wait_for(|s| *s).await`, or poll `*shutdown.borrow()`.
pub type Shutdown = tokio::sync::watch::Receiver<bool>;
