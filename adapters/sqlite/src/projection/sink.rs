//! The sink a subscription drives: each call runs on the blocking pool, on the unit
//! behind its mutex.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use factum::listen::{HandlerError, NewDeadLetter, Sink};
use factum::{Position, Query, StoreError, StoredEvent};

use super::SqliteProjection;
use super::unit::Unit;
use super::watchdog::watchdog;
use crate::error::SqliteError;
use crate::listening::load_checkpoint;
use crate::{SqliteStore, schema};

/// A [`Sink`] applying a [`SqliteProjection`] **exactly once**: each batch of a
/// subscription runs in one transaction on a connection of the sink's own (on the store's
/// file), each event under a savepoint, so an event that fails leaves no trace and its
/// retry starts clean; the batch's dead letters are recorded in that transaction, and the
/// commit writes the checkpoint and commits — the read model and the checkpoint move
/// together. A crash, a failed commit or a sink dropped mid-batch loses the whole batch,
/// which the subscription then reads again from the stored checkpoint.
///
/// It also guards against events delivered again: one at or below the stored checkpoint
/// is applied only if it is a dead letter of this projection (a replay), and then its
/// dead letter is removed in the same transaction; otherwise it is skipped. The
/// checkpoint only moves forward, except on [`reset`](Sink::reset).
///
/// **A lost transaction.** SQLite itself may end the batch's transaction midway (it rolls
/// back on a full disk, an I/O error, a lost lock), and so does a projection that runs
/// `COMMIT` or `ROLLBACK` against the rules, or the idle limit below. If work of the
/// batch was in it, the batch is lost: the sink then refuses the rest of the batch —
/// `apply` fails permanently, and the dead letter and the commit that follow fail with
/// [`SqliteError::TransactionLost`] — so the subscription stops with an error and, run
/// again, reads the batch again from the stored checkpoint (nothing is skipped, nothing
/// applied twice). If nothing of the batch was in it yet, `apply` fails transiently and
/// its retry starts a new transaction.
///
/// Blocking work runs on tokio's blocking pool (`spawn_blocking`), the connection and the
/// projection behind a mutex: a call whose future is dropped still finishes (or fails)
/// as a whole, never leaving a savepoint half done. The transaction is `BEGIN IMMEDIATE`,
/// begun at the first event of a batch: while a batch runs, the store's writer (and any
/// other writer of the file) waits for the write lock, up to the store's busy timeout. So
/// keep batches short ([`SubscriptionOptions::batch`](factum::listen::SubscriptionOptions::batch),
/// and few retries with short delays), and never append to the store from `apply`: that
/// append would wait for this very transaction.
///
/// **The idle limit.** A transaction left open between the sink's calls for longer than
/// the idle limit ([`with_idle_limit`](Self::with_idle_limit); half the store's busy
/// timeout by default, so 2.5 s) is rolled back by a watchdog task of the sink (the batch
/// is then lost as above). So a batch abandoned midway — its subscription's future
/// dropped while the caller keeps the sink — holds the write lock for at most about that
/// long, and the store's appends, waiting up to the busy timeout, go through. Keep the
/// subscription's retry delays well below the limit: a batch idle for longer between two
/// attempts is lost and read again. What the limit does not bound is a call still running
/// (a slow `apply`): the lock is held as long as it runs.
pub struct SqliteProjectionSink<P> {
    name: String,
    query: Query,
    unit: Arc<Mutex<Unit<P>>>,
}

impl<P: SqliteProjection> SqliteProjectionSink<P> {
    /// A sink for `projection` on `store`'s file, with a connection of its own (the
    /// store's busy timeout and durability), and a watchdog task rolling back a batch
    /// left idle for longer than half the busy timeout (see
    /// [`with_idle_limit`](Self::with_idle_limit)). Call it inside a tokio runtime.
    pub async fn new(store: &SqliteStore, projection: P) -> Result<Self, SqliteError> {
        let path = store.path().to_owned();
        let options = store.options().clone();
        let idle_limit = options.busy_timeout / 2;
        let conn = tokio::task::spawn_blocking(move || {
            let conn = schema::connect(&path, &options)?;
            conn.execute_batch(&format!(
                "PRAGMA synchronous = {};",
                options.synchronous.pragma()
            ))
            .map_err(|source| SqliteError::Open {
                path: path.clone(),
                source,
            })?;
            Ok::<_, SqliteError>(conn)
        })
        .await
        .map_err(|_| SqliteError::WorkerGone("projection"))??;
        let name = projection.name().to_owned();
        let query = projection.query();
        let unit = Arc::new(Mutex::new(Unit {
            conn,
            projection,
            name: name.clone(),
            committed: None,
            lettered: BTreeSet::new(),
            touched: None,
            in_tx: false,
            poisoned: false,
            idle_since: Instant::now(),
            idle_limit,
        }));
        tokio::spawn(watchdog(Arc::downgrade(&unit)));
        Ok(SqliteProjectionSink { unit, name, query })
    }

    /// Sets how long the batch's transaction may stay open between two calls of the sink
    /// before the watchdog rolls it back (the batch is then lost, and read again). Keep it
    /// below the store's busy timeout, so that appends waiting for a batch abandoned
    /// midway go through, and above the subscription's retry delays.
    pub fn with_idle_limit(self, limit: Duration) -> Self {
        self.unit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .idle_limit = limit;
        self
    }

    /// Runs `work` on the unit, on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Unit<P>) -> T + Send + 'static,
    ) -> Result<T, SqliteError> {
        let unit = self.unit.clone();
        tokio::task::spawn_blocking(move || {
            let mut unit = unit.lock().unwrap_or_else(PoisonError::into_inner);
            let result = work(&mut unit);
            unit.idle_since = Instant::now();
            result
        })
        .await
        .map_err(|_| SqliteError::WorkerGone("projection"))
    }
}

impl<P: SqliteProjection> Sink for SqliteProjectionSink<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn query(&self) -> Query {
        self.query.clone()
    }

    /// Drops any open batch (the subscription starts over from the stored checkpoint).
    async fn checkpoint(&mut self) -> Result<Option<Position>, StoreError> {
        self.run(|unit| {
            unit.abandon();
            unit.poisoned = false;
            unit.load()?;
            load_checkpoint(&unit.conn, &unit.name)
        })
        .await
        .map_err(StoreError::backend)?
    }

    async fn apply(&mut self, event: &StoredEvent) -> Result<(), HandlerError> {
        let event = event.clone();
        self.run(move |unit| unit.apply(&event))
            .await
            .map_err(HandlerError::transient)?
    }

    async fn give_up(&mut self, _: &StoredEvent, _: &HandlerError) -> Result<bool, HandlerError> {
        Ok(false)
    }

    async fn dead_letter(&mut self, letter: NewDeadLetter) -> Result<(), StoreError> {
        self.run(move |unit| unit.dead_letter(&letter))
            .await
            .map_err(StoreError::backend)?
    }

    async fn commit(&mut self, position: Position) -> Result<(), StoreError> {
        self.run(move |unit| unit.commit(position))
            .await
            .map_err(StoreError::backend)?
    }

    /// The checkpoint only moves forward (`max`), so committing at 0 commits the work
    /// without moving it.
    async fn flush(&mut self) -> Result<(), StoreError> {
        self.commit(Position(0)).await
    }

    async fn reset(&mut self) -> Result<(), HandlerError> {
        self.run(|unit| unit.reset())
            .await
            .map_err(HandlerError::transient)?
    }
}
