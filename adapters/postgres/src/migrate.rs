//! The embedded, versioned schema migrations.
//!
//! Each step is a SQL file under `src/migrations/`, applied once, in order, in its own
//! transaction that also records its version in the schema's `factum_migrations` table.
//! Every step's transaction first takes a transaction-level advisory lock keyed on the
//! schema, then reads the current version: so concurrent migrators of one schema apply
//! each step exactly once, and a failed step leaves the schema at the version before it.
//! A schema at a version newer than this crate knows is
//! [`PostgresError::SchemaTooNew`]: this code would not know what the tables mean.

use tokio_postgres::Client;

use crate::PostgresError;
use crate::locks::{allocate_key, migrate_key};
use crate::notify::notify_channel;
use crate::ownership::{self, Contents};

/// The migration steps; step `i` brings the schema to version `i + 1`.
const STEPS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_append_batch.sql"),
    include_str!("migrations/0003_listeners.sql"),
    include_str!("migrations/0004_recorded_at.sql"),
    include_str!("migrations/0005_notify_after_commit.sql"),
    include_str!("migrations/0006_type_statistics.sql"),
    include_str!("migrations/0007_tag_index.sql"),
    include_str!("migrations/0008_tag_lists.sql"),
];

/// The newest schema version this crate knows.
pub const SCHEMA_VERSION: i32 = STEPS.len() as i32;

/// Checks, without changing anything, that `schema` holds a store at [`SCHEMA_VERSION`]:
/// what opening a store with
/// [`PostgresOptions::migrate_on_connect`](crate::PostgresOptions::migrate_on_connect) off
/// requires.
pub(crate) async fn check(
    client: &Client,
    schema: &str,
    quoted: &str,
) -> Result<(), PostgresError> {
    match ownership::contents(client, schema).await? {
        Contents::Missing | Contents::Empty => Err(PostgresError::SchemaMissing {
            schema: schema.to_owned(),
        }),
        Contents::Foreign(found) => Err(PostgresError::ForeignSchema {
            schema: schema.to_owned(),
            found,
        }),
        Contents::Store => {
            let found: i32 = client
                .query_one(
                    &format!("SELECT coalesce(max(version), 0) FROM {quoted}.factum_migrations"),
                    &[],
                )
                .await?
                .try_get(0)?;
            match found.cmp(&SCHEMA_VERSION) {
                std::cmp::Ordering::Equal => Ok(()),
                std::cmp::Ordering::Less => Err(PostgresError::SchemaTooOld {
                    schema: schema.to_owned(),
                    found,
                    needed: SCHEMA_VERSION,
                }),
                std::cmp::Ordering::Greater => Err(PostgresError::SchemaTooNew {
                    schema: schema.to_owned(),
                    found,
                    known: SCHEMA_VERSION,
                }),
            }
        }
    }
}

/// Brings `schema` (validated, `quoted` for SQL) to [`SCHEMA_VERSION`], creating it if
/// needed. Safe to run from several processes at once.
pub(crate) async fn migrate(
    client: &mut Client,
    schema: &str,
    quoted: &str,
) -> Result<(), PostgresError> {
    loop {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&migrate_key(schema)])
            .await?;
        // Before the first change: another application's schema is not ours to add to.
        ownership::check_takeable(&tx, schema).await?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {quoted};
             CREATE TABLE IF NOT EXISTS {quoted}.factum_migrations (
                 version    integer     PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );"
        ))
        .await?;
        let current: i32 = tx
            .query_one(
                &format!("SELECT coalesce(max(version), 0) FROM {quoted}.factum_migrations"),
                &[],
            )
            .await?
            .try_get(0)?;
        if current > SCHEMA_VERSION {
            return Err(PostgresError::SchemaTooNew {
                schema: schema.to_owned(),
                found: current,
                known: SCHEMA_VERSION,
            });
        }
        let Some(step) = usize::try_from(current).ok().and_then(|c| STEPS.get(c)) else {
            tx.commit().await?;
            return Ok(());
        };
        let version = current + 1;
        let sql = step
            .replace("{schema}", quoted)
            .replace("{allocate_lock}", &allocate_key(schema).to_string())
            .replace("{notify_channel}", &notify_channel(schema));
        let failed = |source| PostgresError::Migration {
            schema: schema.to_owned(),
            version,
            source,
        };
        tx.batch_execute(&sql).await.map_err(failed)?;
        tx.execute(
            &format!("INSERT INTO {quoted}.factum_migrations (version) VALUES ($1)"),
            &[&version],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        tracing::info!(schema, version, "migrated the factum schema");
    }
}
