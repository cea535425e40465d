//! One group's transaction: its statements and position counter, and the checks and
//! writes of each request in it, each under a savepoint of its own.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::time::SystemTime;

use factum::model::idempotency::recorded_key;
use factum::{AppendError, Appended, Position, Snapshot, StoreError};
use rusqlite::{CachedStatement, Connection, OptionalExtension, params};

use super::check::{first_after, recorded_positions};
use super::{Execute, Prepared};
use crate::error::SqliteError;
use crate::row::{self, position_from_sql, position_to_sql};

/// The statements and the position counter of one group's transaction.
pub(super) struct Group<'c> {
    conn: &'c Connection,
    /// The position the next event gets.
    next: i64,
    /// The time every event of the group is recorded at, unless it carries its own
    /// ([`NewEvent::recorded_at`](factum::NewEvent::recorded_at)).
    recorded_at: i64,
    insert_event: CachedStatement<'c>,
    insert_tag: CachedStatement<'c>,
    insert_key: CachedStatement<'c>,
    find_key: CachedStatement<'c>,
    upsert_snapshot: CachedStatement<'c>,
}

impl<'c> Group<'c> {
    pub(super) fn new(conn: &'c Connection) -> Result<Self, SqliteError> {
        let head: i64 =
            conn.query_row("SELECT coalesce(max(position), 0) FROM events", [], |row| {
                row.get(0)
            })?;
        Ok(Group {
            conn,
            next: head + 1,
            recorded_at: row::to_micros(SystemTime::now()),
            insert_event: conn.prepare_cached(
                "INSERT INTO events (position, type, version, codec, payload, tags, event_id, \
                 correlation_id, causation_id, idempotency_key, recorded_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?,
            insert_tag: conn.prepare_cached(
                "INSERT OR IGNORE INTO event_tags (tag_key, tag_value, position) \
                 VALUES (?1, ?2, ?3)",
            )?,
            insert_key: conn.prepare_cached(
                "INSERT INTO idempotency_keys (key, first_position, last_position) \
                 VALUES (?1, ?2, ?3)",
            )?,
            find_key: conn.prepare_cached(
                "SELECT first_position, last_position FROM idempotency_keys WHERE key = ?1",
            )?,
            upsert_snapshot: conn.prepare_cached(
                "INSERT INTO snapshots (key, query, position, codec, payload) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (key) DO UPDATE SET query = excluded.query, \
                 position = excluded.position, codec = excluded.codec, payload = excluded.payload",
            )?,
        })
    }

    /// Fails the group when SQLite dropped its transaction after an error (it does on
    /// I/O errors, a full disk, ...): what follows would otherwise commit on its own.
    fn still_open(&self, error: &dyn std::fmt::Display) -> Result<(), SqliteError> {
        if self.conn.is_autocommit() {
            return Err(SqliteError::TransactionLost(error.to_string()));
        }
        Ok(())
    }

    /// Checks and writes one append, whose condition no event at the positions of
    /// `exempt` violates; the outer error fails the whole group.
    pub(super) fn append(
        &mut self,
        prepared: Prepared,
        exempt: &[(i64, i64)],
    ) -> Result<Result<Appended, AppendError>, SqliteError> {
        let result = self.try_append(prepared, exempt)?;
        if let Err(AppendError::Store(e)) = &result {
            self.still_open(e)?;
        }
        Ok(result)
    }

    fn try_append(
        &mut self,
        prepared: Prepared,
        exempt: &[(i64, i64)],
    ) -> Result<Result<Appended, AppendError>, SqliteError> {
        let Prepared { request, query } = prepared;
        let mut events = request.events;
        if let Err(refused) = factum::store::prepare_append(&mut events, request.condition.as_ref())
        {
            return Ok(Err(refused));
        }
        let keys: BTreeSet<&str> = events
            .iter()
            .filter_map(|e| e.metadata.idempotency_key.as_deref())
            .map(recorded_key)
            .collect();
        for key in &keys {
            match self.recorded(key) {
                Ok(None) => {}
                Ok(Some(positions)) => {
                    return Ok(Err(AppendError::Duplicate {
                        key: (*key).to_owned(),
                        positions,
                    }));
                }
                Err(e) => return Ok(Err(AppendError::Store(e))),
            }
        }
        if let (Some(condition), Some(query)) = (&request.condition, &query) {
            match first_after(self.conn, query, condition.after, exempt) {
                Ok(None) => {}
                Ok(Some((position, event_type))) => {
                    return Ok(Err(AppendError::Conflict {
                        position,
                        event_type,
                    }));
                }
                Err(e) => return Ok(Err(AppendError::Store(e))),
            }
        }

        if let Err(e) = self.conn.execute_batch("SAVEPOINT factum_append") {
            return Ok(Err(AppendError::Store(StoreError::backend(e))));
        }
        match self.insert(&events, &keys) {
            Ok(positions) => {
                // Failing to release leaves the transaction in doubt: fail the group.
                self.conn.execute_batch("RELEASE factum_append")?;
                self.next += i64::try_from(positions.len()).unwrap_or(i64::MAX);
                Ok(Ok(Appended { positions }))
            }
            Err(e) => {
                self.still_open(&e)?;
                self.conn
                    .execute_batch("ROLLBACK TO factum_append; RELEASE factum_append")?;
                Ok(Err(AppendError::Store(e)))
            }
        }
    }

    /// The positions of the append that recorded `key`, if one did.
    fn recorded(&mut self, key: &str) -> Result<Option<Vec<Position>>, StoreError> {
        let found: Option<(i64, i64)> = self
            .find_key
            .query_row([key], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .map_err(StoreError::backend)?;
        let Some((first, last)) = found else {
            return Ok(None);
        };
        recorded_positions(key, first, last).map(Some)
    }

    /// Inserts the events at the next positions, their tags and their keys.
    fn insert(
        &mut self,
        events: &[factum::NewEvent],
        keys: &BTreeSet<&str>,
    ) -> Result<Vec<Position>, StoreError> {
        let mut positions = Vec::with_capacity(events.len());
        let mut position = self.next;
        for event in events {
            let tags = row::tags_to_text(&event.tags).map_err(StoreError::backend)?;
            // A caller-set time (an import), else the group's clock.
            let recorded_at = match event.recorded_at {
                None => self.recorded_at,
                Some(time) => row::checked_micros(time)
                    .ok_or_else(|| StoreError::backend(SqliteError::TimeOutOfRange(time)))?,
            };
            let id = |u: Option<uuid::Uuid>| u.map(|u| u.as_bytes().to_vec());
            self.insert_event
                .execute(params![
                    position,
                    event.event_type,
                    i64::from(event.version),
                    event.payload.codec.name(),
                    event.payload.bytes,
                    tags,
                    event.metadata.id.as_bytes().as_slice(),
                    id(event.metadata.correlation_id),
                    id(event.metadata.causation_id),
                    event.metadata.idempotency_key,
                    recorded_at,
                ])
                .map_err(StoreError::backend)?;
            for tag in &event.tags {
                self.insert_tag
                    .execute(params![tag.key, tag.value, position])
                    .map_err(StoreError::backend)?;
            }
            positions.push(position_from_sql(position).ok_or_else(|| {
                StoreError::backend(SqliteError::OutOfRange {
                    what: "position",
                    value: position.unsigned_abs(),
                })
            })?);
            position = position.checked_add(1).ok_or_else(|| {
                StoreError::backend(SqliteError::OutOfRange {
                    what: "position",
                    value: u64::MAX,
                })
            })?;
        }
        if let (Some(first), Some(last)) = (positions.first(), positions.last()) {
            let (first, last) = (
                position_to_sql(*first).map_err(StoreError::backend)?,
                position_to_sql(*last).map_err(StoreError::backend)?,
            );
            for key in keys {
                self.insert_key
                    .execute(params![key, first, last])
                    .map_err(StoreError::backend)?;
            }
        }
        Ok(positions)
    }

    /// Runs `work` under a savepoint, undone if it fails; the outer error fails the whole
    /// group.
    pub(super) fn execute(
        &mut self,
        work: Execute,
    ) -> Result<Result<i64, StoreError>, SqliteError> {
        if let Err(e) = self.conn.execute_batch("SAVEPOINT factum_execute") {
            self.still_open(&e)?;
            return Ok(Err(StoreError::backend(e)));
        }
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(self.conn)))
            .unwrap_or_else(|_| Err(StoreError::backend(SqliteError::WorkerGone("writer job"))));
        match &result {
            Ok(_) => self.conn.execute_batch("RELEASE factum_execute")?,
            Err(e) => {
                self.still_open(e)?;
                self.conn
                    .execute_batch("ROLLBACK TO factum_execute; RELEASE factum_execute")?;
            }
        }
        Ok(result)
    }

    /// Saves (or replaces) a snapshot; the outer error fails the whole group.
    pub(super) fn save_snapshot(
        &mut self,
        snapshot: &Snapshot,
    ) -> Result<Result<(), StoreError>, SqliteError> {
        let position = match position_to_sql(snapshot.position) {
            Ok(position) => position,
            Err(e) => return Ok(Err(StoreError::backend(e))),
        };
        let result = self.upsert_snapshot.execute(params![
            snapshot.key,
            snapshot.query,
            position,
            snapshot.payload.codec.name(),
            snapshot.payload.bytes,
        ]);
        match result {
            Ok(_) => Ok(Ok(())),
            Err(e) => {
                self.still_open(&e)?;
                Ok(Err(StoreError::backend(e)))
            }
        }
    }
}
