//! Connections to the database, and the bounded retry around every
//! operation.
//!
//! Clients are shared as `Arc<Conn>` so an operation is a closure that
//! takes one by value (its future is `Send + 'static`, spawnable on the
//! store's runtime). Transactions are written as `BEGIN` ... `COMMIT`
//! statements on the shared client; a failed operation on a connection
//! that is still open is rolled back before the client is reused.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, NoTls, Statement};

use super::error::{PgError, is_connection_error};

/// How long one attempt may take before it counts as a lost connection
/// (a server that vanished without closing the socket).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The first pause between retries; doubled up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_millis(800);

/// A connection and its prepared statements: a statement prepared once
/// per connection saves a round trip on every later use.
pub(crate) struct Conn {
    client: Client,
    prepared: Mutex<HashMap<&'static str, Statement>>,
}

impl Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Conn {
    /// `sql` prepared on this connection (once).
    pub(crate) async fn prep(&self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = super::lock(&self.prepared).get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await?;
        super::lock(&self.prepared).insert(sql, s.clone());
        Ok(s)
    }
}

pub(crate) struct Pool {
    config: tokio_postgres::Config,
    idle: Mutex<Vec<Arc<Conn>>>,
    permits: Semaphore,
    retry_for: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("retry_for", &self.retry_for)
            .finish_non_exhaustive()
    }
}

/// What one attempt of an operation ended with.
enum Attempt<T> {
    Done(T),
    /// The statement was refused: not retried.
    Refused(tokio_postgres::Error),
    /// The connection failed or timed out (`None`): retried.
    Lost(Option<tokio_postgres::Error>),
}

impl Pool {
    pub(crate) fn new(config: tokio_postgres::Config, size: usize, retry_for: Duration) -> Pool {
        Pool {
            config,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1)),
            retry_for,
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Conn>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection: an idle one, or a new one (its connection task runs
    /// on the current runtime, the store's).
    async fn client(
        &self,
    ) -> Result<(SemaphorePermit<'_>, Arc<Conn>), Option<tokio_postgres::Error>> {
        let permit = self.permits.acquire().await.map_err(|_| None)?;
        loop {
            let Some(c) = self.idle().pop() else { break };
            if !c.is_closed() {
                return Ok((permit, c));
            }
        }
        let (client, connection) = self.config.connect(NoTls).await.map_err(Some)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "queue database connection closed");
            }
        });
        // Durable at COMMIT whatever the server's default says: the
        // session answers 250 on this.
        client
            .batch_execute("SET synchronous_commit = on; SET application_name = 'postern-queue'")
            .await
            .map_err(Some)?;
        Ok((
            permit,
            Arc::new(Conn {
                client,
                prepared: Mutex::new(HashMap::new()),
            }),
        ))
    }

    async fn attempt<T, F, Fut>(&self, op: &F) -> Attempt<T>
    where
        F: Fn(Arc<Conn>) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let (permit, client) = match tokio::time::timeout(ATTEMPT_TIMEOUT, self.client()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Attempt::Lost(e),
            Err(_) => return Attempt::Lost(None),
        };
        let outcome = tokio::time::timeout(ATTEMPT_TIMEOUT, op(client.clone())).await;
        let attempt = match outcome {
            Ok(Ok(v)) => Attempt::Done(v),
            Ok(Err(e)) if is_connection_error(&e) => Attempt::Lost(Some(e)),
            Ok(Err(e)) => {
                // A refused statement may have left a transaction open;
                // if the rollback fails the client is closed and dropped.
                let _ = client.batch_execute("ROLLBACK").await;
                Attempt::Refused(e)
            }
            // A timed-out connection is in an unknown state: dropped.
            Err(_) => return Attempt::Lost(None),
        };
        if !client.is_closed() && !matches!(attempt, Attempt::Lost(_)) {
            self.idle().push(client);
        }
        drop(permit);
        attempt
    }

    /// Runs `op` on a connection; on a lost connection retries on a new
    /// one, pausing 50 ms doubling to 800 ms, for up to `retry_for`. `op`
    /// must therefore be idempotent (or detect its own earlier success).
    pub(crate) async fn run<T, F, Fut>(&self, op: F) -> Result<T, PgError>
    where
        F: Fn(Arc<Conn>) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        self.run_for(self.retry_for, op).await
    }

    /// [`Pool::run`] with its own retry budget (zero: one attempt).
    pub(crate) async fn run_for<T, F, Fut>(&self, budget: Duration, op: F) -> Result<T, PgError>
    where
        F: Fn(Arc<Conn>) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let start = Instant::now();
        let mut pause = FIRST_PAUSE;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.attempt(&op).await {
                Attempt::Done(v) => return Ok(v),
                Attempt::Refused(e) => return Err(PgError::Database(e)),
                Attempt::Lost(e) => {
                    if start.elapsed() + pause > budget {
                        return Err(PgError::Unreachable {
                            attempts,
                            waited: start.elapsed(),
                            source: e,
                        });
                    }
                    tracing::debug!(attempts, error = ?e, "queue database: connection lost; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    }
}
