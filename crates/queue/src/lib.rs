//! The durable mail queue of Postern.
//!
//! [`log`] is the storage engine: checksummed records appended to
//! preallocated segment files, made durable by group commit (one
//! `fdatasync` shared by every writer waiting on it), with an in-memory
//! index of live messages rebuilt at open.

pub mod log;
