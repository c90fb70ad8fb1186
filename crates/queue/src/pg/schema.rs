//! The database schema, versioned: `postern_schema` holds the version,
//! and [`migrate`] brings an older database up to [`VERSION`] at open,
//! under an advisory lock so nodes starting together migrate once.

use tokio_postgres::Client;

use super::error::PgError;

/// The schema version this code reads and writes.
pub(crate) const VERSION: i32 = 1;

/// Any fixed number: the advisory lock key of migrations.
const MIGRATION_LOCK: i64 = 0x706f_7374_6572_6e31; // "postern1"

/// Migration `n` takes the schema from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: messages, their body chunks, the guard's entries.
    "CREATE TABLE postern_messages (
        id           text PRIMARY KEY,
        envelope     text NOT NULL,
        open         boolean NOT NULL,
        next_attempt bigint NOT NULL,
        size         bigint NOT NULL,
        commit_token bigint NOT NULL,
        lease_owner  text,
        lease_token  bigint,
        lease_until  timestamptz,
        committed    timestamptz NOT NULL DEFAULT now()
     );
     CREATE INDEX postern_messages_due ON postern_messages (next_attempt) WHERE open;
     CREATE INDEX postern_messages_owner ON postern_messages (lease_owner)
        WHERE lease_owner IS NOT NULL;
     CREATE TABLE postern_bodies (
        id      text NOT NULL,
        seq     integer NOT NULL,
        data    bytea NOT NULL,
        written timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (id, seq)
     );
     CREATE TABLE postern_guard (
        key        text NOT NULL,
        node       text NOT NULL,
        entry      text NOT NULL,
        keep_until bigint NOT NULL,
        updated    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (key, node)
     );
     CREATE INDEX postern_guard_updated ON postern_guard (updated);
     CREATE INDEX postern_guard_keep ON postern_guard (keep_until);",
];

/// Creates or migrates the schema to [`VERSION`]; fails on a newer one.
pub(crate) async fn migrate(client: &Client) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("BEGIN").await?;
    let result = async {
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS postern_schema (version integer NOT NULL)")
            .await?;
        let row = client
            .query_opt("SELECT version FROM postern_schema", &[])
            .await?;
        let found: i32 = match row {
            Some(r) => r.get(0),
            None => {
                client
                    .execute("INSERT INTO postern_schema (version) VALUES (0)", &[])
                    .await?;
                0
            }
        };
        Ok::<i32, tokio_postgres::Error>(found)
    }
    .await;
    let found = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
    };
    let steps = async {
        for (n, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
            client.batch_execute(sql).await?;
            let to = n as i32 + 1;
            client
                .execute("UPDATE postern_schema SET version = $1", &[&to])
                .await?;
            tracing::info!(version = to, "queue database: schema migrated");
        }
        client.batch_execute("COMMIT").await
    }
    .await;
    if steps.is_err() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    steps
}

/// The version found, for the error when it is newer than ours.
pub(crate) async fn check(client: &Client) -> Result<Result<(), PgError>, tokio_postgres::Error> {
    let found: i32 = client
        .query_one("SELECT version FROM postern_schema", &[])
        .await?
        .get(0);
    Ok(if found > VERSION {
        Err(PgError::SchemaTooNew {
            found,
            known: VERSION,
        })
    } else {
        Ok(())
    })
}
