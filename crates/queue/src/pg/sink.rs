//! One message being written into the database: full chunks are sent
//! while the client still sends (not waited for), the last chunk and the
//! message row go in one synchronous transaction at commit.

use std::io;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::error::PgError;
use super::{Inner, lease, lock};
use crate::BODY_CHUNK;
use crate::envelope::Envelope;
use crate::id::QueueId;
use crate::store::{BodySink, Commit};

pub(super) struct PgSink {
    inner: Arc<Inner>,
    id: QueueId,
    buf: Vec<u8>,
    seq: i32,
    /// Chunk inserts in flight.
    sent: Vec<JoinHandle<Result<(), PgError>>>,
    committed: bool,
}

impl PgSink {
    pub(super) fn new(inner: Arc<Inner>, id: QueueId) -> PgSink {
        PgSink {
            inner,
            id,
            buf: Vec::new(),
            seq: 0,
            sent: Vec::new(),
            committed: false,
        }
    }

    fn send_chunk(&mut self, chunk: Vec<u8>) {
        let data = Arc::new(chunk);
        let seq = self.seq;
        self.seq += 1;
        let key = self.id.as_str().to_owned();
        let inner = self.inner.clone();
        self.sent.push(self.inner.handle.spawn(async move {
            inner
                .pool
                .run(|c| {
                    let (key, data) = (key.clone(), data.clone());
                    async move {
                        // Asynchronous commit: the message's synchronous
                        // commit, later in the WAL, makes it durable.
                        c.batch_execute("BEGIN; SET LOCAL synchronous_commit = off")
                            .await?;
                        c.execute(
                            &c.prep(
                                "INSERT INTO postern_bodies (id, seq, data) VALUES ($1, $2, $3) \
                             ON CONFLICT (id, seq) DO NOTHING",
                            )
                            .await?,
                            &[&key, &seq, &data.as_slice()],
                        )
                        .await?;
                        c.batch_execute("COMMIT").await
                    }
                })
                .await
        }));
    }
}

impl BodySink for PgSink {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        crate::fill_chunks(&mut buf, data, BODY_CHUNK, |chunk| self.send_chunk(chunk));
        self.buf = buf;
        Ok(())
    }

    fn commit(mut self: Box<Self>, envelope: &Envelope) -> Commit {
        self.committed = true;
        let text = match envelope.to_toml() {
            Ok(t) => Arc::new(t),
            Err(e) => return Commit::ready(Err(e)),
        };
        let Some(local) = self.inner.holds.hold(&self.id) else {
            let e = io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("queue id {} is already held", self.id),
            );
            return Commit::ready(Err(e));
        };
        let open = !envelope.is_finished();
        let next = i64::try_from(envelope.next_attempt).unwrap_or(i64::MAX);
        let size = i64::from(self.seq) * BODY_CHUNK as i64 + self.buf.len() as i64;
        let last = Arc::new(std::mem::take(&mut self.buf));
        let seq = self.seq;
        let sent = std::mem::take(&mut self.sent);
        let inner = self.inner.clone();
        let id = self.id.clone();
        let token: i64 = rand::random();
        // The whole commit runs on the store's runtime: a session that
        // goes away mid-commit does not cancel it, and the hold made at
        // the end is dropped (released) with the unread result.
        let task = self.inner.handle.spawn(async move {
            let outcome = async {
                for chunk in sent {
                    chunk.await.map_err(|_| PgError::Closed)??;
                }
                let key = id.as_str().to_owned();
                let node = inner.config.node.clone();
                let secs = inner.lease_secs();
                let found: i64 =
                    inner
                        .pool
                        .run(|c| {
                            let (key, node, text, last) =
                                (key.clone(), node.clone(), text.clone(), last.clone());
                            async move {
                                // One statement, so one transaction and one
                                // round trip: the last chunk and the message
                                // row commit together (synchronously).
                                let sql = "WITH body AS (INSERT INTO postern_bodies (id, seq, data) \
                                    VALUES ($1, $9, $10) ON CONFLICT (id, seq) DO NOTHING) \
                                    INSERT INTO postern_messages (id, envelope, open, next_attempt, \
                                    size, commit_token, lease_owner, lease_token, lease_until) \
                                    VALUES ($1, $2, $3, $4, $5, $6, $7, $6, \
                                    now() + make_interval(secs => $8)) ON CONFLICT (id) DO NOTHING \
                                    RETURNING commit_token";
                                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
                                    &key, &text.as_str(), &open, &next, &size, &token, &node,
                                    &secs, &seq, &last.as_slice(),
                                ];
                                if let Some(row) = c.query_opt(&c.prep(sql).await?, &params).await? {
                                    return Ok(row.get(0));
                                }
                                // The row exists: a retry after a lost COMMIT
                                // finds its own by the token; another is an
                                // id collision.
                                let row = c
                                    .query_one(
                                        &c.prep("SELECT commit_token FROM postern_messages WHERE id = $1")
                                            .await?,
                                        &[&key],
                                    )
                                    .await?;
                                Ok(row.get(0))
                            }
                        })
                        .await?;
                if found != token {
                    return Err(PgError::IdTaken(id.clone()));
                }
                Ok(())
            }
            .await;
            inner.note(&outcome);
            match outcome {
                Ok(()) => {
                    lock(&inner.leases).insert(id.clone(), token);
                    Ok(lease::guarded(&inner, id, token, local))
                }
                Err(e) => Err(io::Error::from(e)),
            }
        });
        Commit::new(async move {
            task.await
                .unwrap_or_else(|_| Err(io::Error::from(PgError::Closed)))
        })
    }
}

impl Drop for PgSink {
    fn drop(&mut self) {
        if self.committed || self.sent.is_empty() {
            return;
        }
        // An abandoned writer's chunks: deleted once they are in (best
        // effort; maintenance sweeps what this misses).
        let sent = std::mem::take(&mut self.sent);
        let key = self.id.as_str().to_owned();
        let inner = self.inner.clone();
        self.inner.handle.spawn(async move {
            for chunk in sent {
                let _ = chunk.await;
            }
            let _ = inner
                .pool
                .run(|c| {
                    let key = key.clone();
                    async move {
                        c.execute(
                            &c.prep("DELETE FROM postern_bodies WHERE id = $1").await?,
                            &[&key],
                        )
                        .await
                    }
                })
                .await;
        });
    }
}
