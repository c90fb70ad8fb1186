//! How a [`PgStore`](super::PgStore) connects and leases.

use std::time::Duration;

/// The PostgreSQL store's settings. Build with [`PgConfig::new`] and the
/// `with_*` methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PgConfig {
    /// The connection string (`host=... port=... user=... dbname=...` or
    /// a `postgresql://` URL), as tokio-postgres reads it.
    pub dsn: String,
    /// This node's name: unique among the nodes sharing the database
    /// (leases are taken in its name; a node restarted under the same
    /// name takes its old leases back at once).
    pub node: String,
    /// Connections kept open.
    pub pool_size: usize,
    /// How long a delivery claim lasts without renewal: after a node dies,
    /// its messages wait this long before another node takes them.
    /// Renewed every third of it while the work runs.
    pub lease: Duration,
    /// How long an operation keeps retrying on a lost connection before
    /// it fails with [`PgError::Unreachable`](super::PgError::Unreachable).
    pub retry_for: Duration,
}

impl PgConfig {
    /// Defaults for `dsn` and `node`: 8 connections, 30 s leases, 5 s of
    /// retries.
    pub fn new(dsn: impl Into<String>, node: impl Into<String>) -> PgConfig {
        PgConfig {
            dsn: dsn.into(),
            node: node.into(),
            pool_size: 8,
            lease: Duration::from_secs(30),
            retry_for: Duration::from_secs(5),
        }
    }

    /// The node name when none is configured: `$POSTERN_NODE`, else the
    /// system's host name (so one configuration file serves every node),
    /// else `"postern"`.
    pub fn default_node() -> String {
        std::env::var("POSTERN_NODE")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "postern".to_owned())
    }

    /// Sets [`PgConfig::pool_size`] (at least 1).
    #[must_use]
    pub fn with_pool_size(mut self, n: usize) -> PgConfig {
        self.pool_size = n.max(1);
        self
    }

    /// Sets [`PgConfig::lease`] (at least one second).
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> PgConfig {
        self.lease = lease.max(Duration::from_secs(1));
        self
    }

    /// Sets [`PgConfig::retry_for`].
    #[must_use]
    pub fn with_retry_for(mut self, retry_for: Duration) -> PgConfig {
        self.retry_for = retry_for;
        self
    }
}
