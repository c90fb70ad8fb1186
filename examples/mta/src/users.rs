//! The users and the mailbox directory: which local addresses exist. The
//! users file itself (argon2 hashes, SCRAM keys, atomic owner-only
//! updates) is [`postern_listener::users`].
//!
//! A user `alice` is a mailbox at every local domain and authenticates as
//! `alice` (or `alice@` any local domain); `alice@example.org` is a mailbox
//! only there.

use std::sync::Arc;

pub use postern_listener::users::{UsersFile as Users, add_user, validate_name};
use postern_session::{ScramKeys, ScramStore};

use crate::config::MtaConfig;

/// The users file of `config`, `alice@D` finding `alice` for its local
/// domains.
pub fn open(config: &MtaConfig) -> Users {
    Users::open(&config.users_file()).with_local_domains(config.domains.iter().map(|d| &d.name))
}

/// Whether `local@domain` is a mailbox: `postmaster` at every local domain
/// (RFC 5321 §4.5.1), the domain's configured mailboxes, users named
/// `local` and users named `local@domain`. `false` for non-local domains.
pub fn has_mailbox(config: &MtaConfig, users: &Users, local: &str, domain: &str) -> bool {
    let Some(d) = config.local_domain(domain) else {
        return false;
    };
    let local = local.to_ascii_lowercase();
    if local == "postmaster" || d.mailboxes.contains(&local) {
        return true;
    }
    validate_name(&local).is_ok()
        && (users.contains(&local) || users.contains(&format!("{local}@{}", d.name)))
}

/// The mailbox directory local delivery asks: the configuration's local
/// domains and mailboxes, and the users file.
#[derive(Debug, Clone)]
pub struct Mailboxes {
    /// The configuration.
    pub config: Arc<MtaConfig>,
    /// The users.
    pub users: Arc<Users>,
}

/// The users file as SCRAM's key store.
impl ScramStore for Mailboxes {
    fn scram_keys(&self, authcid: &str) -> Option<ScramKeys> {
        self.users.scram_keys(authcid)
    }
}

impl postern_queue::maildir::MailboxDirectory for Mailboxes {
    fn has_mailbox(&self, local: &str, domain: &str) -> bool {
        has_mailbox(&self.config, &self.users, local, domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_of_users_and_domains() {
        let dir = std::env::temp_dir().join(format!("postern-mta-users-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("users");
        let mut config = MtaConfig::embedded().unwrap();
        config.set_data_dir(dir.clone());
        assert_eq!(config.users_file(), path);
        assert!(!add_user(&path, "Alice", b"s3cret").unwrap());
        let users = open(&config);
        assert!(users.verify("alice@localhost", b"s3cret"));
        assert!(has_mailbox(&config, &users, "ALICE", "localhost"));
        assert!(has_mailbox(&config, &users, "postmaster", "tls.localhost"));
        assert!(!has_mailbox(&config, &users, "bob", "localhost"));
        assert!(!has_mailbox(&config, &users, "alice", "example.com"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
