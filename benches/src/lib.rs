//! Shared helpers for the Postern benchmarks.
