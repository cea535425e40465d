//! The connection, the projection and the state of the batch's transaction: what one
//! call of the sink does, under a savepoint per event.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use factum::listen::{HandlerError, NewDeadLetter};
use factum::{Position, StoreError, StoredEvent};
use rusqlite::{Connection, params};

use super::SqliteProjection;
use crate::error::SqliteError;
use crate::listening::{self, load_checkpoint};
use crate::row::position_to_sql;

/// The connection, the projection, and what the sink knows of its transaction.
pub(super) struct Unit<P> {
    pub(super) conn: Connection,
    pub(super) projection: P,
    pub(super) name: String,
    /// The stored checkpoint (`None`: not known, load it before applying).
    pub(super) committed: Option<Position>,
    /// Positions above the checkpoint with a dead letter of this projection.
    pub(super) lettered: BTreeSet<Position>,
    /// The highest position applied or dead-lettered in the open transaction.
    pub(super) touched: Option<Position>,
    /// The sink began the batch's transaction and has not ended it.
    pub(super) in_tx: bool,
    /// The batch's transaction was lost with work in it: refuse the rest of the batch
    /// until the subscription starts over (a failed commit, or a new checkpoint load).
    pub(super) poisoned: bool,
    /// When the last call ended: a transaction idle for longer than `idle_limit` is
    /// rolled back by the watchdog.
    pub(super) idle_since: Instant,
    pub(super) idle_limit: Duration,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::backend(SqliteError::Sqlite(e))
}

fn transient(e: impl std::error::Error + Send + Sync + 'static) -> HandlerError {
    HandlerError::transient(e)
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
    pub(super) fn abandon(&mut self) {
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
    pub(super) fn lose(&mut self) {
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
    pub(super) fn load(&mut self) -> Result<Position, StoreError> {
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

    pub(super) fn apply(&mut self, event: &StoredEvent) -> Result<(), HandlerError> {
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

    pub(super) fn dead_letter(&mut self, letter: &NewDeadLetter) -> Result<(), StoreError> {
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

    pub(super) fn commit(&mut self, position: Position) -> Result<(), StoreError> {
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

    pub(super) fn reset(&mut self) -> Result<(), HandlerError> {
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
