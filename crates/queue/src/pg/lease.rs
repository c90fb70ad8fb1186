//! Delivery leases: claiming a message, renewing this node's leases,
//! releasing them, and the periodic maintenance (orphan chunks).

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Inner, ORPHAN_AGE_SECS, lock};
use crate::id::QueueId;
use crate::store::Hold;

/// How often maintenance (orphan chunks) runs, at most; renewal runs
/// every third of the lease.
const MAINTAIN_EVERY: Duration = Duration::from_secs(600);

/// Claims `id`: a local hold first (two passes of this node), then the
/// lease in the database. One attempt, no retry: a message not claimed
/// now is claimed at the next scan.
pub(super) fn claim(inner: &Arc<Inner>, id: &QueueId) -> Option<Hold> {
    let local = inner.holds.hold(id)?;
    let token: i64 = rand::random();
    let key = id.as_str().to_owned();
    let node = inner.config.node.clone();
    let secs = inner.lease_secs();
    let this = inner.clone();
    let claimed = inner.block(async move {
        this.pool
            .run_for(Duration::ZERO, |c| {
                let (key, node) = (key.clone(), node.clone());
                async move {
                    // SKIP LOCKED: a row another node is claiming right now
                    // is skipped, not waited for. A retried claim whose
                    // first try committed finds its own token.
                    c.execute(
                        &c.prep(
                            "UPDATE postern_messages SET lease_owner = $2, lease_token = $3, \
                         lease_until = now() + make_interval(secs => $4) \
                         WHERE id = (SELECT id FROM postern_messages WHERE id = $1 \
                           AND (lease_until IS NULL OR lease_until < now() OR lease_token = $3) \
                           FOR UPDATE SKIP LOCKED)",
                        )
                        .await?,
                        &[&key, &node, &token, &secs],
                    )
                    .await
                }
            })
            .await
    });
    match claimed {
        Ok(1) => {
            lock(&inner.leases).insert(id.clone(), token);
            Some(guarded(inner, id.clone(), token, local))
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(queue_id = %id, error = %e, "queue database: cannot claim a message");
            None
        }
    }
}

/// The [`Hold`] of a lease this node has in the database.
pub(super) fn guarded(inner: &Arc<Inner>, id: QueueId, token: i64, local: Hold) -> Hold {
    let guard = LeaseGuard {
        inner: Arc::downgrade(inner),
        id: id.clone(),
        token,
        local: Some(local),
    };
    Hold::with_guard(id, Box::new(guard))
}

/// Dropping it releases the lease (fenced by its token, so a lease taken
/// over meanwhile is left alone) and the local hold.
struct LeaseGuard {
    inner: Weak<Inner>,
    id: QueueId,
    token: i64,
    local: Option<Hold>,
}

impl fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseGuard")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        {
            let mut leases = lock(&inner.leases);
            if leases.get(&self.id) == Some(&self.token) {
                leases.remove(&self.id);
            }
        }
        let key = self.id.as_str().to_owned();
        let token = self.token;
        let local = self.local.take();
        let this = inner.clone();
        // Not waited for: a release that never arrives (the database is
        // down) expires instead. The local hold goes when it is done, so
        // this node does not try to claim the message before then.
        inner.handle.spawn(async move {
            let released = this
                .pool
                .run(|c| {
                    let key = key.clone();
                    async move {
                        c.execute(&c.prep("UPDATE postern_messages SET lease_owner = NULL, lease_token = NULL, \
                             lease_until = NULL WHERE id = $1 AND lease_token = $2").await?,
                            &[&key, &token],
                        )
                        .await
                    }
                })
                .await;
            if let Err(e) = released {
                tracing::debug!(error = %e, "queue database: lease not released; it expires");
            }
            drop(local);
        });
    }
}

/// While the database is marked unreachable, tries it every half second
/// so the store (and [`Store::writer`](crate::Store::writer)) comes back
/// by itself, until the store is gone.
pub(super) async fn probe_loop(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(this) = inner.upgrade() else {
            return;
        };
        if this.down.load(std::sync::atomic::Ordering::Relaxed) {
            let probed = this
                .pool
                .run_for(Duration::ZERO, |c| async move {
                    c.batch_execute("SELECT 1").await
                })
                .await;
            this.note(&probed);
        }
    }
}

/// Renews this node's leases every third of the lease, and runs
/// maintenance every [`MAINTAIN_EVERY`], until the store is gone.
pub(super) async fn renew_loop(inner: Weak<Inner>) {
    let mut since_maintenance = Duration::ZERO;
    loop {
        let Some(every) = inner.upgrade().map(|i| i.config.lease / 3) else {
            return;
        };
        tokio::time::sleep(every).await;
        let Some(this) = inner.upgrade() else {
            return;
        };
        renew(&this).await;
        since_maintenance += every;
        if since_maintenance >= MAINTAIN_EVERY {
            since_maintenance = Duration::ZERO;
            maintain(&this).await;
        }
    }
}

async fn renew(inner: &Arc<Inner>) {
    let held: Vec<(QueueId, i64)> = lock(&inner.leases)
        .iter()
        .map(|(id, t)| (id.clone(), *t))
        .collect();
    if held.is_empty() {
        return;
    }
    let tokens: Vec<i64> = held.iter().map(|(_, t)| *t).collect();
    let node = inner.config.node.clone();
    let secs = inner.lease_secs();
    let renewed = inner
        .pool
        .run(|c| {
            let (node, tokens) = (node.clone(), tokens.clone());
            async move {
                c.query(&c.prep("UPDATE postern_messages SET lease_until = now() + make_interval(secs => $3) \
                     WHERE lease_owner = $1 AND lease_token = ANY($2) RETURNING lease_token").await?,
                    &[&node, &tokens, &secs],
                )
                .await
            }
        })
        .await;
    inner.note(&renewed);
    match renewed {
        Ok(rows) => {
            let kept: std::collections::HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
            for (id, t) in &held {
                // Released meanwhile, or removed: only a lease still in
                // the map and not renewed was lost.
                if !kept.contains(t) && lock(&inner.leases).get(id) == Some(t) {
                    tracing::warn!(queue_id = %id, "queue database: lease lost (expired and taken, or removed)");
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, leases = held.len(), "queue database: leases not renewed");
        }
    }
}

/// Deletes body chunks that no message owns and that are older than any
/// DATA phase.
pub(super) async fn maintain(inner: &Arc<Inner>) {
    let swept = inner
        .pool
        .run(|c| async move {
            c.execute(&c.prep("DELETE FROM postern_bodies b WHERE b.written < now() - make_interval(secs => $1) \
                 AND NOT EXISTS (SELECT 1 FROM postern_messages m WHERE m.id = b.id)").await?,
                &[&ORPHAN_AGE_SECS],
            )
            .await
        })
        .await;
    match swept {
        Ok(0) => {}
        Ok(n) => tracing::info!(chunks = n, "queue database: orphan body chunks deleted"),
        Err(e) => tracing::warn!(error = %e, "queue database: maintenance failed"),
    }
}
