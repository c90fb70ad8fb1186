//! `postern-mta`: the example MTA composed of the Postern crates.
//!
//! The binary (`src/main.rs`) is a thin CLI over this library so the
//! integration tests and the outbound runner share the same types.
//!
//! | module | holds |
//! |---|---|
//! | [`spool`] | the durable queue: body + envelope per message; the contract with the outbound runner |
//! | [`config`] | the TOML configuration, typed and validated; the rule set; `route_for` |
//! | [`defaults`] | the embedded default configuration |
//! | [`users`] | the users file (argon2), the mailbox directory |
//! | [`maildir`] | local delivery into Maildir; the local sweep |
//! | [`received`] | the Received header and RFC 5322 dates |
//! | [`server`] | the listener handler: rules, users, spool per session event |
//! | [`tls`] | self-signed certificate, TLS settings, per-listener session policy |
//! | [`cli`] | the commands: check, explain, policy test, user add |
//! | [`outbound`], [`dsn`] | the queue runner and delivery status notifications (outbound engineer) |
//!
//! The outbound runner (`outbound.rs`, `dsn.rs`) is started by `main` as
//! `outbound::spawn(spool.clone(), config.clone(), shutdown.clone())` with a
//! [`Spool`](spool::Spool), an `Arc<`[`Config`](config::Config)`>` and a
//! [`Shutdown`] receiver.

pub mod cli;
pub mod config;
pub mod defaults;
pub mod dsn;
pub mod maildir;
pub mod outbound;
pub mod received;
pub mod server;
pub mod spool;
pub mod tls;
pub mod users;

/// The graceful-shutdown signal shared by the server, local delivery and
/// the outbound runner: `true` once SIGTERM (or SIGINT) arrived. Wait with
/// `shutdown.wait_for(|s| *s).await`, or poll `*shutdown.borrow()`.
pub type Shutdown = tokio::sync::watch::Receiver<bool>;
