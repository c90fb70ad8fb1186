//! `postern-mta`: the example MTA composed of the Postern crates.
//!
//! The binary (`src/main.rs`) is a thin CLI over this library so the
//! integration tests and the outbound runner share the same types.
//!
//! | module | holds |
//! |---|---|
//! | [`spool`] | the durable queue: body + envelope per message; the contract with the outbound runner |

pub mod spool;
