//! postern-proto (work in progress)
pub mod bdat;
pub mod data;
