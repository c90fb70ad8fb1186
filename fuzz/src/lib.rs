//! Fuzz target bodies, shared by cargo-fuzz and the corpus replay tests.
