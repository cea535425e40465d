//! The store handle: its pool, its schema and statements, and its [`EventStore`]
//! implementation, which delegates to the modules doing each job.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use factum::store::{KeyedLocks, PartitionLock, PartitionLocks, SnapshotStore};
use factum::{
    AppendCondition, AppendError, AppendRequest, Appended, EventStore, NewEvent, Position, Query,
    ReadOptions, Snapshot, StoreError, StoredEvent,
};
use futures::{Stream, TryStreamExt};

use crate::error::{self, PostgresError};
use crate::locks::{self, LockKey, lock_keys, partition_lock_key};
use crate::options::BeforeCommit;
use crate::{notify, ownership, plans};

/// An [`EventStore`] on PostgreSQL: a handle on a connection pool and a schema.
///
/// Cloning it is cheap and gives another handle on the same pool.
#[derive(Clone)]
pub struct PostgresStore {
    pub(crate) pool: Pool,
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The connections holding partition locks (see [`PostgresOptions::lock_pool_size`]);
    /// `None` when partition locks are off.
    pub(crate) lock_pool: Option<Pool>,
    /// How the store's own connections negotiate TLS (the lock pool's cancel requests).
    pub(crate) tls: crate::tls::Tls,
    /// The partition keys this store holds or waits for on the server: callers wanting a
    /// key another caller of this store has wait here, without a connection.
    pub(crate) partition_locks: KeyedLocks,
    pub(crate) schema: String,
    pub(crate) quoted: String,
    /// The `global` advisory lock key every appender of this schema holds: how reads
    /// find the appenders still running.
    pub(crate) global_key: i64,
    pub(crate) visibility_wait: Duration,
    /// See [`PostgresOptions::pipeline_above`].
    pub(crate) pipeline_above: usize,
    pub(crate) before_commit: Option<BeforeCommit>,
    pub(crate) sql: Statements,
    /// The commit signal, fed by this store's appends and by notifications.
    pub(crate) head: notify::Head,
    /// The reads planned for their values (see [`plans`]).
    pub(crate) large_reads: Arc<plans::LargeReads>,
}

/// Fixed statements, with the schema filled in.
pub(crate) struct Statements {
    pub(crate) batch: String,
    pub(crate) lock: String,
    pub(crate) allocate: String,
    pub(crate) insert: String,
    pub(crate) recorded_key: String,
    pub(crate) find_keys: String,
}

impl Statements {
    pub(crate) fn new(quoted: &str) -> Self {
        Statements {
            batch: format!(
                "SELECT request, status, first_position, conflict_type, duplicate_key, \
                 duplicate_positions, dependency FROM {quoted}.append_batch(\
                 $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)"
            ),
            lock: format!("SELECT {quoted}.lock_keys($1, $2)"),
            allocate: format!("SELECT {quoted}.allocate_positions($1)"),
            insert: format!(
                "SELECT {quoted}.insert_events(\
                 $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
            ),
            recorded_key: format!(
                "SELECT key, positions FROM {quoted}.idempotency WHERE key = ANY($1::text[]) \
                 ORDER BY key COLLATE \"C\" LIMIT 1"
            ),
            find_keys: format!(
                "SELECT asked.i, known.positions \
                 FROM unnest($1::text[], $2::int4[]) AS asked(key, i) \
                 JOIN {quoted}.idempotency AS known ON known.key = asked.key"
            ),
        }
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.inner.schema)
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// The schema holding the store's tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The advisory locks an append of `events` on `condition` takes in this store, in
    /// the order it takes them; see [`lock_keys`]. Holding the same keys exclusively in
    /// another transaction makes exactly the appends that would contend with this one
    /// wait.
    pub fn lock_keys(
        &self,
        events: &[NewEvent],
        condition: Option<&AppendCondition>,
    ) -> Vec<LockKey> {
        lock_keys(&self.inner.schema, events, condition)
    }

    /// The two keys of the session-level advisory lock
    /// [`lock_partition`](PartitionLocks::lock_partition) takes for the partition key `key`
    /// in this store; see [`partition_lock_key`].
    pub fn partition_lock_key(&self, key: &str) -> (i32, i32) {
        partition_lock_key(&self.inner.schema, key)
    }

    /// Drops the store's schema and everything in it (read models kept there included).
    /// For tests and tools: the store is unusable afterwards.
    ///
    /// Only a schema that still holds a factum store is dropped, checked in the same
    /// transaction: if the schema was dropped and another application made one of the
    /// same name meanwhile, or it lost its `factum_migrations` table, this fails with
    /// [`PostgresError::ForeignSchema`] and drops nothing. A schema already gone is fine.
    pub async fn drop_schema(&self) -> Result<(), PostgresError> {
        let mut client = self.pool.get().await.map_err(|e| PostgresError::Connect {
            url: "the store's pool".to_owned(),
            source: Box::new(e),
        })?;
        let schema = &self.inner.schema;
        let tx = client.transaction().await?;
        // The migrators' lock: no migration creates the schema between the look and the
        // drop.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&locks::migrate_key(schema)],
        )
        .await?;
        match ownership::contents(&*tx, schema).await? {
            ownership::Contents::Missing => return Ok(()),
            ownership::Contents::Store => {}
            ownership::Contents::Empty => {
                return Err(PostgresError::ForeignSchema {
                    schema: schema.clone(),
                    found: "nothing, not even a factum store's migrations table".to_owned(),
                });
            }
            ownership::Contents::Foreign(found) => {
                return Err(PostgresError::ForeignSchema {
                    schema: schema.clone(),
                    found,
                });
            }
        }
        tx.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.inner.quoted))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => error::db(e),
            other => StoreError::backend(other),
        })
    }
}

impl EventStore for PostgresStore {
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a {
        futures::stream::once(self.open_read(query, options)).try_flatten()
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended, AppendError> {
        let appended = self.append_events(events, condition).await?;
        self.inner.head.advance(appended.last());
        Ok(appended)
    }

    async fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        let results = self.append_requests(batch).await?;
        let newest = results
            .iter()
            .filter_map(|r| r.as_ref().ok().and_then(Appended::last))
            .max();
        self.inner.head.advance(newest);
        Ok(results)
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        self.read_head().await
    }

    /// One statement for all the keys.
    async fn find_idempotency_keys(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<Position>>>, StoreError> {
        self.find_keys(keys).await
    }
}

impl PartitionLocks for PostgresStore {
    /// A session-level advisory lock, held on a connection of its own; see
    /// [the crate documentation](crate#partition-locks).
    async fn lock_partition(&self, key: &str) -> Result<Option<PartitionLock>, StoreError> {
        self.lock_partition_key(key).await
    }
}

impl SnapshotStore for PostgresStore {
    async fn load_snapshot(&self, key: &str) -> Result<Option<Snapshot>, StoreError> {
        self.load(key).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.save(snapshot).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PostgresOptions;

    #[test]
    fn the_store_is_a_cheap_shareable_handle() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<PostgresStore>();
        shareable::<PostgresOptions>();
    }
}
