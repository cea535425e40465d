//! Exactly-once projections: a read model in the store's own file, written in the same
//! transaction as the projection's checkpoint.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError, TryLockError, Weak};
use std::time::{Duration, Instant};

use factum::listen::{HandlerError, NewDeadLetter, Sink};
use factum::{Position, Query, StoreError, StoredEvent};
use rusqlite::{Connection, params};

use crate::error::SqliteError;
use crate::listening::{self, load_checkpoint};
use crate::row::position_to_sql;
use crate::{SqliteStore, schema};

/// A projection whose read model lives in the store's SQLite file: its tables are written
/// on the connection it is given, inside the transaction that also moves its checkpoint.
///
/// Run it with a [`SqliteProjectionSink`] in a
/// [`Subscription`](factum::listen::Subscription).
pub trait SqliteProjection: Send + 'static {
    /// Its stable name: the key of its checkpoint and of its dead letters.
    fn name(&self) -> &str;

    /// The events it consumes.
    fn query(&self) -> Query;

    /// Applies one event to the read model through `conn`, which is inside an open
    /// transaction (and a savepoint for this event): an error undoes everything this call
    /// wrote. Never begin, commit or roll back a transaction here.
    fn apply(&mut self, conn: &Connection, event: &StoredEvent) -> Result<(), HandlerError>;

    /// Drops the read model (a rebuild follows), inside the transaction that sets the
    /// checkpoint back to the start.
    fn reset(&mut self, conn: &Connection) -> Result<(), HandlerError>;
}

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

/// The connection, the projection, and what the sink knows of its transaction.
struct Unit<P> {
    conn: Connection,
    projection: P,
    name: String,
    /// The stored checkpoint (`None`: not known, load it before applying).
    committed: Option<Position>,
    /// Positions above the checkpoint with a dead letter of this projection.
    lettered: BTreeSet<Position>,
    /// The highest position applied or dead-lettered in the open transaction.
    touched: Option<Position>,
    /// The sink began the batch's transaction and has not ended it.
    in_tx: bool,
    /// The batch's transaction was lost with work in it: refuse the rest of the batch
    /// until the subscription starts over (a failed commit, or a new checkpoint load).
    poisoned: bool,
    /// When the last call ended: a transaction idle for longer than `idle_limit` is
    /// rolled back by the watchdog.
    idle_since: Instant,
    idle_limit: Duration,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::backend(SqliteError::Sqlite(e))
}

fn transient(e: impl std::error::Error + Send + Sync + 'static) -> HandlerError {
    HandlerError::transient(e)
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

/// Rolls back the transaction of a sink left idle for longer than its idle limit (a
/// batch abandoned midway), so that it does not hold the file's write lock; ends with
/// the sink.
async fn watchdog<P>(unit: Weak<Mutex<Unit<P>>>) {
    loop {
        let Some(tick) = unit.upgrade().map(|unit| watch(&unit)) else {
            return;
        };
        tokio::time::sleep(tick).await;
    }
}

/// One look of the watchdog; returns when to look again.
fn watch<P>(unit: &Mutex<Unit<P>>) -> Duration {
    let mut unit = match unit.try_lock() {
        Ok(unit) => unit,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        // Held: a call is running, the batch is not idle.
        Err(TryLockError::WouldBlock) => return Duration::from_millis(10),
    };
    let limit = unit.idle_limit;
    if unit.in_tx && unit.idle_since.elapsed() >= limit {
        tracing::warn!(projection = %unit.name, ?limit, "a projection batch was idle past its limit: rolling it back");
        unit.lose();
    }
    (limit / 4).clamp(Duration::from_millis(5), Duration::from_millis(500))
}

impl<P> Unit<P> {
    fn lost(&self) -> SqliteError {
        SqliteError::TransactionLost(format!(
            "the projection `{}` lost its batch's transaction; the batch starts over from the \
             stored checkpoint",
            self.name
        ))
    }

    /// Drops the open transaction, if any, and what the sink cached of the stored state
    /// (a dead letter removed in it is back: reload before the next event).
    fn abandon(&mut self) {
        if !self.conn.is_autocommit()
            && let Err(error) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(projection = %self.name, error = %factum::ErrorChain(&error), "rolling back a projection batch failed");
        }
        self.in_tx = false;
        self.touched = None;
        self.committed = None;
    }

    /// Drops the open transaction; if work of the batch was in it, the batch is lost.
    fn lose(&mut self) {
        if self.touched.is_some() {
            self.poisoned = true;
        }
        self.abandon();
    }

    /// Notices a transaction that ended behind the sink's back (SQLite rolled it back, or
    /// the projection ended it).
    fn check(&mut self) {
        if self.in_tx && self.conn.is_autocommit() {
            tracing::warn!(projection = %self.name, "the projection's transaction ended midway");
            self.lose();
        }
    }
}

impl<P: SqliteProjection> Unit<P> {
    /// Opens the batch's transaction if none is; fails if the batch was lost.
    fn begin(&mut self) -> Result<(), SqliteError> {
        self.check();
        if self.poisoned {
            return Err(self.lost());
        }
        if !self.in_tx {
            if !self.conn.is_autocommit() {
                // Not the sink's (a projection's stray BEGIN): nothing of it counts.
                self.abandon();
            }
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.in_tx = true;
            self.touched = None;
        }
        Ok(())
    }

    /// Loads the checkpoint and the dead letters above it.
    fn load(&mut self) -> Result<Position, StoreError> {
        let committed = load_checkpoint(&self.conn, &self.name)?.unwrap_or(Position(0));
        let after = position_to_sql(committed).map_err(StoreError::backend)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT position FROM dead_letters WHERE listener = ?1 AND position > ?2",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![self.name, after], |row| row.get::<_, i64>(0))
            .map_err(backend)?;
        let mut lettered = BTreeSet::new();
        for row in rows {
            if let Some(p) = listening::stored_position(row.map_err(backend)?) {
                lettered.insert(p);
            }
        }
        drop(stmt);
        self.lettered = lettered;
        self.committed = Some(committed);
        Ok(committed)
    }

    fn apply(&mut self, event: &StoredEvent) -> Result<(), HandlerError> {
        self.check();
        if self.poisoned {
            return Err(HandlerError::permanent(self.lost()));
        }
        if self.in_tx && self.touched.is_some_and(|t| event.position <= t) {
            // The subscription started the batch over (a call of it was dropped): start
            // the transaction over with it.
            tracing::debug!(projection = %self.name, position = %event.position, "a batch starts over");
            self.abandon();
        }
        let committed = match self.committed {
            Some(c) => c,
            None => self.load().map_err(transient)?,
        };
        let replay = event.position <= committed;
        let lettered = replay || self.lettered.contains(&event.position);
        self.begin().map_err(transient)?;
        if let Err(error) = self.conn.execute_batch("SAVEPOINT factum_event") {
            self.check();
            return Err(self.failed(transient(error)));
        }
        let result = self.apply_in_savepoint(event, replay, lettered);
        let end = if self.conn.is_autocommit() {
            Ok(())
        } else if result.is_ok() {
            self.conn.execute_batch("RELEASE factum_event")
        } else {
            self.conn
                .execute_batch("ROLLBACK TO factum_event; RELEASE factum_event")
        };
        if self.conn.is_autocommit() {
            // The transaction is gone, and whatever the batch did before with it.
            tracing::warn!(projection = %self.name, position = %event.position, "the projection's transaction ended while it applied an event");
            self.lose();
            return Err(self.failed(transient(self.lost())));
        }
        if let Err(error) = end {
            // The event's savepoint could not be ended: its effects may be in the
            // transaction. Drop the batch rather than keep them.
            tracing::warn!(projection = %self.name, error = %factum::ErrorChain(&error), "ending an event's savepoint failed: dropping the batch");
            self.lose();
            return Err(self.failed(transient(error)));
        }
        if result? {
            self.touched = self.touched.max(Some(event.position));
            if lettered {
                self.lettered.remove(&event.position);
            }
        }
        Ok(())
    }

    /// `error`, or the batch's loss if it is lost: retrying a lost batch's event is no
    /// use, while an event whose transaction held nothing else starts over cleanly.
    fn failed(&self, error: HandlerError) -> HandlerError {
        if self.poisoned {
            HandlerError::permanent(self.lost())
        } else {
            error
        }
    }

    /// Applies `event` inside its savepoint; `Ok(false)` when it was skipped.
    fn apply_in_savepoint(
        &mut self,
        event: &StoredEvent,
        replay: bool,
        lettered: bool,
    ) -> Result<bool, HandlerError> {
        if lettered {
            let position = position_to_sql(event.position).map_err(HandlerError::permanent)?;
            let removed = self
                .conn
                .prepare_cached("DELETE FROM dead_letters WHERE listener = ?1 AND position = ?2")
                .and_then(|mut stmt| stmt.execute(params![self.name, position]))
                .map_err(transient)?;
            if replay && removed == 0 {
                tracing::debug!(projection = %self.name, position = %event.position, "skipping an event consumed before");
                return Ok(false);
            }
        }
        let conn = &self.conn;
        let projection = &mut self.projection;
        match std::panic::catch_unwind(AssertUnwindSafe(|| projection.apply(conn, event))) {
            Ok(result) => result.map(|()| true),
            Err(_) => Err(HandlerError::permanent(SqliteError::WorkerGone(
                "projection (it panicked)",
            ))),
        }
    }

    fn dead_letter(&mut self, letter: &NewDeadLetter) -> Result<(), StoreError> {
        self.begin().map_err(StoreError::backend)?;
        if let Err(e) = listening::record_dead_letter(&self.conn, letter) {
            self.check();
            if self.poisoned {
                return Err(StoreError::backend(self.lost()));
            }
            return Err(e);
        }
        if self.committed.is_none_or(|c| letter.position > c) {
            self.lettered.insert(letter.position);
        }
        self.touched = self.touched.max(Some(letter.position));
        Ok(())
    }

    fn commit(&mut self, position: Position) -> Result<(), StoreError> {
        let result = (|| {
            self.begin().map_err(StoreError::backend)?;
            let position = position_to_sql(position).map_err(StoreError::backend)?;
            let stored: i64 = self
                .conn
                .prepare_cached(
                    "INSERT INTO listener_checkpoints (listener, position) VALUES (?1, ?2) \
                     ON CONFLICT (listener) DO UPDATE \
                     SET position = max(position, excluded.position) RETURNING position",
                )
                .and_then(|mut stmt| stmt.query_row(params![self.name, position], |r| r.get(0)))
                .map_err(backend)?;
            self.conn.execute_batch("COMMIT").map_err(backend)?;
            Ok(listening::stored_position(stored))
        })();
        match result {
            Ok(stored) => {
                self.in_tx = false;
                self.touched = None;
                self.committed = stored;
                if let Some(c) = stored {
                    self.lettered = self.lettered.split_off(&Position(c.0.saturating_add(1)));
                }
                Ok(())
            }
            Err(e) => {
                // Nothing of the batch is kept: the subscription reads it again.
                self.abandon();
                self.poisoned = false;
                Err(e)
            }
        }
    }

    fn reset(&mut self) -> Result<(), HandlerError> {
        self.abandon();
        self.poisoned = false;
        let result = (|| {
            self.begin().map_err(transient)?;
            let conn = &self.conn;
            let projection = &mut self.projection;
            std::panic::catch_unwind(AssertUnwindSafe(|| projection.reset(conn))).map_err(
                |_| HandlerError::permanent(SqliteError::WorkerGone("projection (it panicked)")),
            )??;
            listening::save_checkpoint(&self.conn, &self.name, Position(0)).map_err(transient)?;
            self.conn.execute_batch("COMMIT").map_err(transient)?;
            self.in_tx = false;
            Ok(())
        })();
        // Reloaded before the next event, with the dead letters above it.
        self.abandon();
        result
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
