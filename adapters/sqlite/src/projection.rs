//! Exactly-once projections: a read model in the store's own file, written in the same
//! transaction as the projection's checkpoint.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

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
/// Blocking work runs on tokio's blocking pool (`spawn_blocking`), the connection and the
/// projection behind a mutex: a call whose future is dropped still finishes (or fails)
/// as a whole, never leaving a savepoint half done. The transaction is `BEGIN IMMEDIATE`,
/// begun at the first event of a batch: while a batch runs, the store's writer (and any
/// other writer of the file) waits for the write lock, up to the store's busy timeout. So
/// keep batches short ([`SubscriptionOptions::batch`](factum::listen::SubscriptionOptions::batch),
/// and few retries with short delays), and never append to the store from `apply`: that
/// append would wait for this very transaction.
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
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::backend(SqliteError::Sqlite(e))
}

fn transient(e: impl std::error::Error + Send + Sync + 'static) -> HandlerError {
    HandlerError::transient(e)
}

impl<P: SqliteProjection> SqliteProjectionSink<P> {
    /// A sink for `projection` on `store`'s file, with a connection of its own (the
    /// store's busy timeout and durability).
    pub async fn new(store: &SqliteStore, projection: P) -> Result<Self, SqliteError> {
        let path = store.path().to_owned();
        let options = store.options().clone();
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
        Ok(SqliteProjectionSink {
            unit: Arc::new(Mutex::new(Unit {
                conn,
                projection,
                name: name.clone(),
                committed: None,
                lettered: BTreeSet::new(),
                touched: None,
            })),
            name,
            query,
        })
    }

    /// Runs `work` on the unit, on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Unit<P>) -> T + Send + 'static,
    ) -> Result<T, SqliteError> {
        let unit = self.unit.clone();
        tokio::task::spawn_blocking(move || {
            let mut unit = unit.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut unit)
        })
        .await
        .map_err(|_| SqliteError::WorkerGone("projection"))
    }
}

impl<P: SqliteProjection> Unit<P> {
    fn begin(&mut self) -> rusqlite::Result<()> {
        if self.conn.is_autocommit() {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.touched = None;
        }
        Ok(())
    }

    /// Drops the open transaction, if any.
    fn abandon(&mut self) {
        if !self.conn.is_autocommit()
            && let Err(error) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(projection = %self.name, %error, "rolling back a projection batch failed");
        }
        self.touched = None;
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
        if !self.conn.is_autocommit() && self.touched.is_some_and(|t| event.position <= t) {
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
        self.conn
            .execute_batch("SAVEPOINT factum_event")
            .map_err(transient)?;
        let result = self.apply_in_savepoint(event, replay, lettered);
        let end = match &result {
            Ok(_) => self.conn.execute_batch("RELEASE factum_event"),
            Err(_) if self.conn.is_autocommit() => Ok(()),
            Err(_) => self
                .conn
                .execute_batch("ROLLBACK TO factum_event; RELEASE factum_event"),
        };
        if self.conn.is_autocommit() {
            self.touched = None;
            return Err(HandlerError::permanent(SqliteError::TransactionLost(
                "the projection's transaction ended while it applied an event".to_owned(),
            )));
        }
        end.map_err(transient)?;
        if result? {
            self.touched = self.touched.max(Some(event.position));
            if lettered {
                self.lettered.remove(&event.position);
            }
        }
        Ok(())
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
        self.begin().map_err(backend)?;
        listening::record_dead_letter(&self.conn, letter)?;
        if self.committed.is_none_or(|c| letter.position > c) {
            self.lettered.insert(letter.position);
        }
        self.touched = self.touched.max(Some(letter.position));
        Ok(())
    }

    fn commit(&mut self, position: Position) -> Result<(), StoreError> {
        let result = (|| {
            self.begin().map_err(backend)?;
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
                self.touched = None;
                self.committed = stored;
                if let Some(c) = stored {
                    self.lettered = self.lettered.split_off(&Position(c.0.saturating_add(1)));
                }
                Ok(())
            }
            Err(e) => {
                self.abandon();
                self.committed = None;
                Err(e)
            }
        }
    }

    fn reset(&mut self) -> Result<(), HandlerError> {
        self.abandon();
        let result = (|| {
            self.begin().map_err(transient)?;
            let conn = &self.conn;
            let projection = &mut self.projection;
            std::panic::catch_unwind(AssertUnwindSafe(|| projection.reset(conn))).map_err(
                |_| HandlerError::permanent(SqliteError::WorkerGone("projection (it panicked)")),
            )??;
            listening::save_checkpoint(&self.conn, &self.name, Position(0)).map_err(transient)?;
            self.conn.execute_batch("COMMIT").map_err(transient)
        })();
        if result.is_err() {
            self.abandon();
        }
        // Reloaded before the next event, with the dead letters above it.
        self.committed = None;
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
