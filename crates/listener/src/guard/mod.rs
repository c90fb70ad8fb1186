//! Abuse limits that need no IO: an AUTH failure limiter
//! ([`AuthGuard`]) and a connection rate limiter ([`ConnectionRate`]).
//!
//! Both count events per address prefix in sliding windows (a minute and
//! a day) kept in a [`GuardStore`]: [`MemoryStore`] holds a bounded number
//! of entries and evicts the least useful when full, so an attack from
//! ever new addresses cannot grow memory without bound; a shared store
//! (a database, for several servers) implements the same small trait. The
//! clock is passed in (`now`), so the logic is tested without sleeping.
//!
//! [`Server`](crate::Server) applies a [`ConnectionRate`] when a listener
//! has one ([`ListenerConfig::with_connection_rate`](crate::ListenerConfig::with_connection_rate));
//! the embedder asks an [`AuthGuard`] before checking credentials and
//! tells it of failures (see its documentation for the replies).

mod auth;
#[cfg(feature = "serde")]
mod config;
mod counter;
mod net;
mod rate;
pub mod shared;
mod store;
mod window;

pub use auth::{AuthGuard, AuthLimits, AuthRefusal, FailureOutcome};
#[cfg(feature = "serde")]
pub use config::{AuthGuardConfig, ConnectionRateConfig, FieldError, validate_windows};
pub use counter::Counter;
pub use ipnet::IpNet;
pub use net::Networks;
pub use rate::{ConnectionRate, RateLimits, RateRefusal};
pub use shared::SharedHooks;
pub use store::{Entry, GuardStore, Key, MemoryStore};
pub use window::Window;
