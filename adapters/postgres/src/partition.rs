//! Partition locks: session-level advisory locks, each held on a connection of the lock
//! pool until released; and the look-up of idempotency keys.
//!
//! A lock is taken in two steps: first in process (factum's `KeyedLocks`),
//! so that callers of one store wanting the same key queue without a connection each;
//! then on the server, with `pg_advisory_lock(integer, integer)` on
//! [`partition_lock_key`](crate::partition_lock_key), on a connection of the lock pool that
//! stays checked out while the lock is held. Release runs `pg_advisory_unlock` and returns
//! the connection to the pool.
//!
//! A connection that might hold a lock it should not — the unlock failed or found nothing
//! to unlock, or the caller stopped waiting while `pg_advisory_lock` was running on the
//! server — is never returned to the pool: it is detached and closed, and its running
//! statement cancelled, which ends the session and with it every lock it holds or would
//! have been granted.

use deadpool_postgres::Object;
use factum::store::PartitionLock;
use factum::{Position, StoreError};

use crate::PostgresStore;
use crate::append::{Unstorable, stored_position};
use crate::error::db;

const LOCK: &str = "SELECT pg_advisory_lock($1, $2)";
const UNLOCK: &str = "SELECT pg_advisory_unlock($1, $2)";

/// A connection of the lock pool that goes back to the pool only through
/// [`LockSession::keep`]: dropped otherwise (an error, a cancelled future), it is closed.
struct LockSession {
    client: Option<Object>,
    /// How the cancel request connects: like the session did.
    tls: crate::tls::Tls,
}

impl LockSession {
    fn client(&self) -> Result<&Object, StoreError> {
        self.client.as_ref().ok_or_else(|| {
            StoreError::backend(std::io::Error::other(
                "the partition lock's connection is gone",
            ))
        })
    }

    /// Returns the connection to the pool: it holds no lock.
    fn keep(mut self) {
        drop(self.client.take());
    }

    /// Runs `sql` with the lock's keys and returns its one boolean (or void) column.
    async fn run(&self, sql: &str, key: (i32, i32)) -> Result<Option<bool>, StoreError> {
        let client = self.client()?;
        let statement = client.prepare_cached(sql).await.map_err(db)?;
        let row = client
            .query_one(&statement, &[&key.0, &key.1])
            .await
            .map_err(db)?;
        Ok(row.try_get::<_, Option<bool>>(0).ok().flatten())
    }
}

impl Drop for LockSession {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let cancel = client.cancel_token();
        let tls = self.tls.clone();
        // Out of the pool, and closed: the server ends the session, releasing its locks.
        drop(Object::take(client));
        // A session still waiting in `pg_advisory_lock` notices the closed connection
        // only once granted; the cancel ends the wait now.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = cancel.cancel_query(tls.connector()).await;
            });
        }
    }
}

impl PostgresStore {
    /// [`PartitionLocks::lock_partition`](factum::PartitionLocks::lock_partition).
    pub(crate) async fn lock_partition_key(
        &self,
        key: &str,
    ) -> Result<Option<PartitionLock>, StoreError> {
        let Some(pool) = &self.inner.lock_pool else {
            return Ok(None);
        };
        let local = self.inner.partition_locks.lock(key).await;
        let lock_key = self.partition_lock_key(key);
        let session = match pool.get().await {
            Ok(client) => LockSession {
                client: Some(client),
                tls: self.inner.tls.clone(),
            },
            Err(e) => {
                local.release().await;
                return Err(StoreError::backend(e));
            }
        };
        if let Err(e) = session.run(LOCK, lock_key).await {
            // Maybe granted after all: the session goes.
            drop(session);
            local.release().await;
            return Err(e);
        }
        let schema = self.inner.schema.clone();
        let key = key.to_owned();
        Ok(Some(PartitionLock::new(move || async move {
            match session.run(UNLOCK, lock_key).await {
                Ok(Some(true)) => session.keep(),
                Ok(_) => {
                    tracing::warn!(
                        %schema,
                        %key,
                        "the partition lock was no longer held when released; closing its connection"
                    );
                    drop(session);
                }
                Err(error) => {
                    // The connection died (and the server released the lock with the
                    // session), or the unlock failed: never pool a session that may still
                    // hold the lock.
                    tracing::warn!(
                        %schema,
                        %key,
                        %error,
                        "releasing a partition lock failed; closing its connection"
                    );
                    drop(session);
                }
            }
            local.release().await;
        })))
    }

    /// [`EventStore::find_idempotency_keys`](factum::EventStore::find_idempotency_keys):
    /// one statement joining the keys asked with the table of recorded keys.
    pub(crate) async fn find_keys(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<Position>>>, StoreError> {
        let mut found: Vec<Option<Vec<Position>>> = vec![None; keys.len()];
        // PostgreSQL text cannot hold NUL, so no append recorded a key containing one.
        let mut asked: Vec<&str> = Vec::with_capacity(keys.len());
        let mut indexes: Vec<i32> = Vec::with_capacity(keys.len());
        for (index, key) in keys.iter().enumerate() {
            if key.contains('\0') {
                continue;
            }
            let index = i32::try_from(index).map_err(|_| {
                StoreError::backend(Unstorable(format!(
                    "{} idempotency keys in one look-up, more than an integer array indexes",
                    keys.len()
                )))
            })?;
            asked.push(factum::model::idempotency::recorded_key(key));
            indexes.push(index);
        }
        if asked.is_empty() {
            return Ok(found);
        }
        let rows = self
            .on_live_client("key look-up", |client| async {
                let rows = async {
                    let statement = client
                        .prepare_cached(&self.inner.sql.find_keys)
                        .await
                        .map_err(db)?;
                    client
                        .query(&statement, &[&asked, &indexes])
                        .await
                        .map_err(db)
                }
                .await;
                (client, rows)
            })
            .await?;
        for row in rows {
            let index: i32 = row.try_get(0).map_err(db)?;
            let positions: Vec<i64> = row.try_get(1).map_err(db)?;
            let positions = positions
                .into_iter()
                .map(stored_position)
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(slot) = usize::try_from(index).ok().and_then(|i| found.get_mut(i)) {
                *slot = Some(positions);
            }
        }
        Ok(found)
    }
}
