//! [`ListenerStore`] for [`SqliteStore`]: checkpoints and dead letters in the file
//! (written through the writer thread, in its group commits; read on the readers), and
//! the in-process commit signal.

use factum::listen::{DeadLetter, ListenerStore, NewDeadLetter};
use factum::{Position, StoreError};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::watch;

use crate::SqliteStore;
use crate::error::SqliteError;
use crate::row::{self, position_to_sql};

/// Upserts a checkpoint.
pub(crate) const SAVE_CHECKPOINT: &str = "INSERT INTO listener_checkpoints (listener, position) \
     VALUES (?1, ?2) ON CONFLICT (listener) DO UPDATE SET position = excluded.position";

/// Loads a checkpoint.
pub(crate) const LOAD_CHECKPOINT: &str =
    "SELECT position FROM listener_checkpoints WHERE listener = ?1";

/// Records a dead letter.
pub(crate) const RECORD_DEAD_LETTER: &str = "INSERT INTO dead_letters \
     (listener, position, event_type, error, attempts, recorded_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
     ON CONFLICT (listener, position) DO UPDATE SET event_type = excluded.event_type, \
     error = excluded.error, attempts = excluded.attempts, recorded_at = excluded.recorded_at \
     RETURNING id";

/// A checkpoint or dead letter position read back (0 is a valid checkpoint).
pub(crate) fn stored_position(position: i64) -> Option<Position> {
    u64::try_from(position).ok().map(Position)
}

fn corrupt(what: &'static str, key: impl Into<String>, reason: &str) -> StoreError {
    StoreError::backend(SqliteError::CorruptRecord {
        what,
        key: key.into(),
        reason: reason.to_owned(),
    })
}

/// The checkpoint of `listener`, as `conn` sees it.
pub(crate) fn load_checkpoint(
    conn: &Connection,
    listener: &str,
) -> Result<Option<Position>, StoreError> {
    let stored: Option<i64> = conn
        .prepare_cached(LOAD_CHECKPOINT)
        .and_then(|mut stmt| stmt.query_row([listener], |row| row.get(0)).optional())
        .map_err(StoreError::backend)?;
    stored
        .map(|p| {
            stored_position(p)
                .ok_or_else(|| corrupt("listener_checkpoints", listener, "a negative position"))
        })
        .transpose()
}

/// Saves the checkpoint of `listener` on `conn`.
pub(crate) fn save_checkpoint(
    conn: &Connection,
    listener: &str,
    position: Position,
) -> Result<(), StoreError> {
    let position = position_to_sql(position).map_err(StoreError::backend)?;
    conn.prepare_cached(SAVE_CHECKPOINT)
        .and_then(|mut stmt| stmt.execute(params![listener, position]))
        .map_err(StoreError::backend)?;
    Ok(())
}

/// Records `letter` on `conn` and returns its id.
pub(crate) fn record_dead_letter(
    conn: &Connection,
    letter: &NewDeadLetter,
) -> Result<i64, StoreError> {
    let position = position_to_sql(letter.position).map_err(StoreError::backend)?;
    // An upsert: `last_insert_rowid` would not name the row it updated.
    conn.prepare_cached(RECORD_DEAD_LETTER)
        .and_then(|mut stmt| {
            stmt.query_row(
                params![
                    letter.listener,
                    position,
                    letter.event_type,
                    letter.error,
                    i64::from(letter.attempts),
                    row::to_micros(std::time::SystemTime::now()),
                ],
                |row| row.get(0),
            )
        })
        .map_err(StoreError::backend)
}

fn text(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<String>> {
    Ok(match row.get_ref(i)? {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes).ok().map(str::to_owned),
        _ => None,
    })
}

fn dead_letter(row: &Row<'_>) -> rusqlite::Result<Result<DeadLetter, StoreError>> {
    let id: i64 = row.get(0)?;
    let (listener, event_type, error) = (text(row, 1)?, text(row, 3)?, text(row, 4)?);
    let (position, attempts, recorded_at): (i64, i64, i64) =
        (row.get(2)?, row.get(5)?, row.get(6)?);
    let bad = |reason: &str| corrupt("dead_letters", id.to_string(), reason);
    Ok((|| {
        Ok(DeadLetter {
            id: u64::try_from(id).map_err(|_| bad("a negative id"))?,
            listener: listener.ok_or_else(|| bad("the listener is not UTF-8 text"))?,
            position: stored_position(position).ok_or_else(|| bad("a negative position"))?,
            event_type: event_type.ok_or_else(|| bad("the event type is not UTF-8 text"))?,
            error: error.ok_or_else(|| bad("the error is not UTF-8 text"))?,
            attempts: u32::try_from(attempts).map_err(|_| bad("attempts out of range"))?,
            recorded_at: row::from_micros(recorded_at)
                .ok_or_else(|| bad("the time is out of range"))?,
        })
    })())
}

fn dead_letters(conn: &Connection, listener: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, listener, position, event_type, error, attempts, recorded_at \
             FROM dead_letters WHERE ?1 IS NULL OR listener = ?1 ORDER BY id",
        )
        .map_err(StoreError::backend)?;
    let rows = stmt
        .query_map([listener], dead_letter)
        .map_err(StoreError::backend)?;
    let mut letters = Vec::new();
    for row in rows {
        letters.push(row.map_err(StoreError::backend)??);
    }
    Ok(letters)
}

/// Checkpoints and dead letters are written through the writer thread (in the next group
/// commit) and read on a reader thread. The commit signal is **in-process**: it follows
/// the appends of the stores this process opened on the file (which share it); commits by
/// other processes on the same file are found only by a subscription's polling
/// ([`SubscriptionOptions::poll_interval`](factum::listen::SubscriptionOptions::poll_interval)).
impl ListenerStore for SqliteStore {
    async fn load_checkpoint(&self, listener: &str) -> Result<Option<Position>, StoreError> {
        let listener = listener.to_owned();
        self.shared
            .readers
            .run(move |conn| load_checkpoint(conn, &listener))
            .await
    }

    async fn save_checkpoint(&self, listener: &str, position: Position) -> Result<(), StoreError> {
        let listener = listener.to_owned();
        self.shared
            .writer
            .execute(Box::new(move |conn| {
                save_checkpoint(conn, &listener, position).map(|()| 0)
            }))
            .await
            .map(|_| ())
    }

    async fn record_dead_letter(&self, letter: NewDeadLetter) -> Result<u64, StoreError> {
        let id = self
            .shared
            .writer
            .execute(Box::new(move |conn| record_dead_letter(conn, &letter)))
            .await?;
        u64::try_from(id).map_err(|_| corrupt("dead_letters", id.to_string(), "a negative id"))
    }

    async fn dead_letters(&self, listener: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        let listener = listener.map(str::to_owned);
        self.shared
            .readers
            .run(move |conn| dead_letters(conn, listener.as_deref()))
            .await
    }

    async fn remove_dead_letter(&self, id: u64) -> Result<bool, StoreError> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(false);
        };
        let removed = self
            .shared
            .writer
            .execute(Box::new(move |conn| {
                conn.prepare_cached("DELETE FROM dead_letters WHERE id = ?1")
                    .and_then(|mut stmt| stmt.execute([id]))
                    .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
                    .map_err(StoreError::backend)
            }))
            .await?;
        Ok(removed > 0)
    }

    fn watch_head(&self) -> watch::Receiver<Option<Position>> {
        self.shared.writer.head.subscribe()
    }
}
