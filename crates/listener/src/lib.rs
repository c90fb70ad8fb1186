//! TLS listener policy and the tokio listeners that drive `postern-session`.
//!
//! Placeholder: the policy types and the accept loop land with the
//! listener issue.
