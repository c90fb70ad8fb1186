//! A users file for SMTP AUTH (feature `users`): one
//! `name:argon2-hash [SCRAM-keys]` line per user
//! ([`postern_session::PasswordLine`]).
//!
//! The argon2 hash checks PLAIN and LOGIN ([`UsersFile::verify`]); the
//! salted, iterated SCRAM keys serve SCRAM-SHA-256(-PLUS) through
//! [`postern_session::ScramStore`] (a line written before SCRAM keys
//! existed serves PLAIN and LOGIN only). [`add_user`] adds or replaces a
//! user atomically, the file readable by its owner only.
//!
//! A user `alice` authenticates as `alice`, or as `alice@D` for any of the
//! [local domains](UsersFile::with_local_domains); `alice@example.org` is a
//! user of its own. The file is re-read when its modification time changes,
//! so an added user counts without a restart.
//!
//! Password checks run in a bounded set of argon2 memory areas
//! ([`VerifyPool`]): concurrent guesses wait for an area instead of each
//! allocating argon2's memory.
//!
//! ```
//! use postern_listener::users::{UsersFile, add_user};
//!
//! let dir = std::env::temp_dir().join(format!("postern-users-doc-{}", std::process::id()));
//! let path = dir.join("users");
//! add_user(&path, "alice", b"s3cret").expect("written");
//! let users = UsersFile::open(&path).with_local_domains(["example.org"]);
//! assert!(users.verify("alice@example.org", b"s3cret"));
//! assert!(!users.verify("alice", b"guess"));
//! # std::fs::remove_dir_all(&dir).ok();
//! ```

mod file;
mod name;
mod verify;

pub use file::{UsersFile, add_user, hash_password};
pub use name::{BadUserName, validate_name};
pub use verify::VerifyPool;
