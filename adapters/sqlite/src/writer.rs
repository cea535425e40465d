//! The writer thread and group commit.
//!
//! One thread owns the write connection. Appends, batches and snapshot saves reach it
//! over a channel and get their answers over oneshot channels. Each time it wakes, it
//! takes every request already queued (up to [`SqliteOptions::max_group`]) and commits
//! them in **one** transaction, so one disk sync serves them all. Inside it, each append
//! is checked on its own, in arrival order, exactly as if appended alone: idempotency keys
//! first, then its condition against everything stored before it (including the requests
//! ahead of it in the group), then its events are inserted under a savepoint, so a request
//! that fails undoes only its own work. A request of a batch that builds on earlier
//! requests of it ([`AppendRequest::builds_on`]) fails with [`AppendError::Dependency`]
//! when one of them failed; otherwise its condition check skips the positions they wrote
//! (each a contiguous range). Answers go out only after the commit; if the commit fails,
//! every request of the group gets the error and nothing was written.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::SystemTime;

use factum::model::idempotency::recorded_key;
use factum::{AppendError, AppendRequest, Appended, Position, Snapshot, StoreError};
use rusqlite::types::ValueRef;
use rusqlite::{CachedStatement, Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::SqliteOptions;
use crate::error::SqliteError;
use crate::head::{self, HeadSender};
use crate::row::{self, position_from_sql, position_to_sql};
use crate::schema;
use crate::sql::{CompiledQuery, Direction};

/// The answer to a batch of appends.
type BatchResult = Result<Vec<Result<Appended, AppendError>>, StoreError>;

/// One append, its condition's query compiled by the caller (off the writer thread).
pub(crate) struct Prepared {
    request: AppendRequest,
    query: Option<CompiledQuery>,
}

impl Prepared {
    /// Prepares `request` for the writer.
    pub(crate) fn new(request: AppendRequest) -> Self {
        let query = request
            .condition
            .as_ref()
            .map(|c| CompiledQuery::new(&c.query));
        Prepared { request, query }
    }
}

/// Work run by the writer inside a group's transaction, under a savepoint of its own
/// (an error undoes it alone), answered with a number after the commit.
pub(crate) type Execute = Box<dyn FnOnce(&Connection) -> Result<i64, StoreError> + Send>;

enum Command {
    Execute {
        work: Execute,
        reply: oneshot::Sender<Result<i64, StoreError>>,
    },
    Append {
        batch: Vec<Prepared>,
        reply: oneshot::Sender<BatchResult>,
    },
    SaveSnapshot {
        snapshot: Snapshot,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// The handle on the writer thread. Dropping it closes the queue and waits for the
/// thread to finish the group it is committing, so the file is closed afterwards.
#[derive(Debug)]
pub(crate) struct Writer {
    commands: Sender<Command>,
    thread: Option<JoinHandle<()>>,
    /// The commit signal of the file, advanced after each group that appended.
    pub(crate) head: Arc<HeadSender>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Close the queue: the thread ends its loop once the queued requests are done.
        drop(std::mem::replace(&mut self.commands, mpsc::channel().0));
        if let Some(thread) = self.thread.take() {
            join("writer", thread);
        }
    }
}

/// Waits for a worker thread to end, unless this is that thread.
pub(crate) fn join(what: &str, thread: JoinHandle<()>) {
    if thread.thread().id() == std::thread::current().id() {
        return;
    }
    if thread.join().is_err() {
        tracing::error!(thread = what, "a store thread panicked");
    }
}

fn gone() -> StoreError {
    StoreError::backend(SqliteError::WorkerGone("writer"))
}

impl Writer {
    /// Starts the writer thread: it opens the file, sets WAL mode and durability, and
    /// migrates the schema before this returns.
    pub(crate) async fn start(path: &Path, options: &SqliteOptions) -> Result<Writer, SqliteError> {
        let (commands, queue) = mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let path: PathBuf = path.to_owned();
        let options = options.clone();
        let name = "factum-sqlite-writer".to_owned();
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let conn = schema::connect(&path, &options);
                let conn = conn.and_then(|conn| {
                    schema::prepare_writer(&conn, &path, &options)?;
                    Ok(conn)
                });
                let conn = conn.and_then(|conn| {
                    let newest =
                        crate::reader::head(&conn).map_err(|source| SqliteError::Open {
                            path: path.clone(),
                            source,
                        })?;
                    let signal = head::shared(&path, newest.and_then(position_from_sql));
                    Ok((conn, signal))
                });
                match conn {
                    Ok((conn, signal)) => {
                        let _ = ready_tx.send(Ok(signal.clone()));
                        serve(&conn, &queue, options.max_group, &signal);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|source| SqliteError::Spawn {
                thread: name,
                source,
            })?;
        let mut writer = Writer {
            commands,
            thread: Some(thread),
            head: Arc::new(tokio::sync::watch::channel(None).0),
        };
        writer.head = ready_rx
            .await
            .map_err(|_| SqliteError::WorkerGone("writer"))??;
        Ok(writer)
    }

    /// Appends the batch through the next group commit.
    pub(crate) async fn append_batch(&self, batch: Vec<Prepared>) -> BatchResult {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::Append { batch, reply })
            .map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }

    /// Runs `work` in the next group commit, under a savepoint of its own, and returns its
    /// answer once the group committed.
    pub(crate) async fn execute(&self, work: Execute) -> Result<i64, StoreError> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::Execute { work, reply })
            .map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }

    /// Saves a snapshot through the next group commit.
    pub(crate) async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::SaveSnapshot { snapshot, reply })
            .map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }
}

/// The writer's loop: wait for a request, take all queued ones, commit them as one group.
fn serve(conn: &Connection, queue: &Receiver<Command>, max_group: usize, signal: &HeadSender) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < max_group {
            match queue.try_recv() {
                Ok(command) => group.push(command),
                Err(_) => break,
            }
        }
        if std::panic::catch_unwind(AssertUnwindSafe(|| commit_group(conn, group, signal))).is_err()
        {
            // The group's callers got errors when their replies were dropped.
            tracing::error!("the writer panicked during a group commit; the group is lost");
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
    }
    tracing::debug!("the store was dropped; the writer thread stops");
}

enum Work {
    Execute(Execute),
    Append(Vec<Prepared>),
    Snapshot(Snapshot),
}

enum Reply {
    Execute(oneshot::Sender<Result<i64, StoreError>>),
    Append(oneshot::Sender<BatchResult>),
    Snapshot(oneshot::Sender<Result<(), StoreError>>),
}

enum Done {
    Execute(Result<i64, StoreError>),
    Append(Vec<Result<Appended, AppendError>>),
    Snapshot(Result<(), StoreError>),
}

fn commit_group(conn: &Connection, group: Vec<Command>, signal: &HeadSender) {
    let mut works = Vec::with_capacity(group.len());
    let mut replies = Vec::with_capacity(group.len());
    for command in group {
        match command {
            Command::Execute { work, reply } => {
                works.push(Work::Execute(work));
                replies.push(Reply::Execute(reply));
            }
            Command::Append { batch, reply } => {
                works.push(Work::Append(batch));
                replies.push(Reply::Append(reply));
            }
            Command::SaveSnapshot { snapshot, reply } => {
                works.push(Work::Snapshot(snapshot));
                replies.push(Reply::Snapshot(reply));
            }
        }
    }
    let size = works.len();
    match transaction(conn, works) {
        Ok(done) => {
            tracing::trace!(requests = size, "group committed");
            let newest = done
                .iter()
                .filter_map(|done| match done {
                    Done::Append(results) => results
                        .iter()
                        .filter_map(|r| r.as_ref().ok().and_then(Appended::last))
                        .max(),
                    _ => None,
                })
                .max();
            head::advance(signal, newest);
            for (reply, done) in replies.into_iter().zip(done) {
                // A caller that stopped waiting is no reason to fail the others.
                let _ = match (reply, done) {
                    (Reply::Append(reply), Done::Append(results)) => {
                        reply.send(Ok(results)).is_ok()
                    }
                    (Reply::Snapshot(reply), Done::Snapshot(result)) => reply.send(result).is_ok(),
                    (Reply::Execute(reply), Done::Execute(result)) => reply.send(result).is_ok(),
                    // `transaction` answers each work in order with its own kind.
                    _ => false,
                };
            }
        }
        Err(error) => {
            tracing::warn!(
                requests = size,
                %error,
                "a group commit failed; nothing of it was written"
            );
            let error = Arc::new(error);
            let store_error = || StoreError::backend(SqliteError::GroupCommit(error.clone()));
            for reply in replies {
                let _ = match reply {
                    Reply::Execute(reply) => reply.send(Err(store_error())).is_ok(),
                    Reply::Append(reply) => reply.send(Err(store_error())).is_ok(),
                    Reply::Snapshot(reply) => reply.send(Err(store_error())).is_ok(),
                };
            }
        }
    }
}

/// Runs the group in one transaction; an error means nothing was written.
fn transaction(conn: &Connection, works: Vec<Work>) -> Result<Vec<Done>, SqliteError> {
    if !conn.is_autocommit() {
        // Left open by a panic: start clean.
        let _ = conn.execute_batch("ROLLBACK");
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let mut group = Group::new(conn)?;
        let mut done = Vec::with_capacity(works.len());
        for work in works {
            done.push(match work {
                Work::Append(batch) => {
                    let mut results: Vec<Result<Appended, AppendError>> =
                        Vec::with_capacity(batch.len());
                    for (index, prepared) in batch.into_iter().enumerate() {
                        let result = match exempt(index, &prepared.request.builds_on, &results) {
                            Ok(exempt) => group.append(prepared, &exempt)?,
                            Err(e) => Err(e),
                        };
                        results.push(result);
                    }
                    Done::Append(results)
                }
                Work::Snapshot(snapshot) => Done::Snapshot(group.save_snapshot(&snapshot)?),
                Work::Execute(work) => Done::Execute(group.execute(work)?),
            });
        }
        drop(group);
        conn.execute_batch("COMMIT")?;
        Ok(done)
    })();
    if result.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

/// The statements and the position counter of one group's transaction.
struct Group<'c> {
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
    fn new(conn: &'c Connection) -> Result<Self, SqliteError> {
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
    fn append(
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
    fn execute(&mut self, work: Execute) -> Result<Result<i64, StoreError>, SqliteError> {
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
    fn save_snapshot(
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

/// The positions `first..=last` recorded for the idempotency key `key`.
pub(crate) fn recorded_positions(
    key: &str,
    first: i64,
    last: i64,
) -> Result<Vec<Position>, StoreError> {
    let corrupt = || {
        StoreError::backend(SqliteError::CorruptRecord {
            what: "idempotency_keys",
            key: key.to_owned(),
            reason: format!("positions {first}..={last} are not a range of positions"),
        })
    };
    if first > last {
        return Err(corrupt());
    }
    (first..=last)
        .map(|p| position_from_sql(p).ok_or_else(corrupt))
        .collect()
}

/// The positions a request of a batch is exempt from: those written by the requests
/// (at indexes below `index`) it builds on, as ranges `(first, last)` ascending and
/// merged; or the dependency error if one of them failed or is not earlier.
fn exempt(
    index: usize,
    builds_on: &[usize],
    results: &[Result<Appended, AppendError>],
) -> Result<Vec<(i64, i64)>, AppendError> {
    let mut ranges = Vec::with_capacity(builds_on.len());
    for &earlier in builds_on {
        match results.get(earlier) {
            Some(Ok(appended)) if earlier < index => {
                // The events of one append are adjacent: one range.
                if let (Some(first), Some(last)) =
                    (appended.positions.first(), appended.positions.last())
                {
                    let (Ok(first), Ok(last)) = (i64::try_from(first.0), i64::try_from(last.0))
                    else {
                        // Written here, so within SQLite's integers.
                        continue;
                    };
                    ranges.push((first, last));
                }
            }
            _ => return Err(AppendError::Dependency { index: earlier }),
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match merged.last_mut() {
            Some(previous) if first <= previous.1.saturating_add(1) => {
                previous.1 = previous.1.max(last);
            }
            _ => merged.push((first, last)),
        }
    }
    Ok(merged)
}

/// The first position above `after` matching `query` and outside the ranges of `exempt`
/// (ascending, disjoint), with its type: the event that makes a condition fail.
///
/// Each look-up runs on the indexes; one that lands in an exempt range goes on from its
/// end, so a check costs at most one look-up more than there are ranges.
pub(crate) fn first_after(
    conn: &Connection,
    query: &CompiledQuery,
    after: Option<Position>,
    exempt: &[(i64, i64)],
) -> Result<Option<(Position, String)>, StoreError> {
    let mut low = match after {
        None => 1,
        Some(after) => match i64::try_from(after.0) {
            Ok(after) => after.saturating_add(1),
            // No position can be above it.
            Err(_) => return Ok(None),
        },
    };
    let position = loop {
        let positions = query
            .positions(conn, Direction::Forward, low, i64::MAX, 1)
            .map_err(StoreError::backend)?;
        let Some(&position) = positions.first() else {
            return Ok(None);
        };
        match exempt
            .iter()
            .find(|(first, last)| (*first..=*last).contains(&position))
        {
            Some(&(_, last)) => match last.checked_add(1) {
                Some(next) => low = next,
                None => return Ok(None),
            },
            None => break position,
        }
    };
    let event_type = conn
        .prepare_cached("SELECT type FROM events WHERE position = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([position], |row| {
                Ok(match row.get_ref(0)? {
                    ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                        String::from_utf8_lossy(bytes).into_owned()
                    }
                    _ => String::new(),
                })
            })
        })
        .map_err(StoreError::backend)?;
    let position = position_from_sql(position).unwrap_or(Position(0));
    Ok(Some((position, event_type)))
}
