//! The embedded default configuration: what `postern-mta` runs with no
//! `--config`. Three loopback listeners, a self-signed certificate, local
//! domain `localhost`, TLS 1.2+, and the guide's rules.
//!
//! The text lives in `examples/mta/default.toml`, so it is edited, linted
//! and read as the TOML it is; it is compiled into the binary here.

/// The embedded default, in the same TOML format as a configuration file
/// (see `examples/mta/hardening.toml` for every knob, commented).
pub const DEFAULT_CONFIG: &str = include_str!("../default.toml");
