//! [`SqliteStore`]: the handle, and its [`EventStore`] implementation.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use factum::model::Payload;
use factum::model::idempotency::recorded_key;
use factum::store::{KeyedLocks, PartitionLock, PartitionLocks, SnapshotStore};
use factum::{
    AppendCondition, AppendError, AppendRequest, Appended, Codec, EventStore, NewEvent, Position,
    Query, ReadOptions, Snapshot, StoreError, StoredEvent,
};
use futures::Stream;
use rusqlite::OptionalExtension;
use rusqlite::types::ValueRef;

use crate::error::SqliteError;
use crate::reader::{self, ReaderPool};
use crate::row::position_from_sql;
use crate::sql::{CompiledQuery, Direction, Page};
use crate::writer::{Prepared, Writer, recorded_positions};
use crate::{SqliteOptions, reader::head};

/// An event store in one SQLite file: durable, with one writer thread that group-commits
/// and a pool of reader threads.
///
/// Open it with [`open`](crate::open) or [`open_with`](crate::open_with). It is a handle:
/// clones share the file, the threads and their connections. Dropping the last clone
/// (or the last read stream, which holds one) stops the threads, waiting for them to
/// finish what they were doing, so the file is closed when the drop returns.
///
/// An append is queued for the writer when its future is first polled; dropping the
/// future after that does not withdraw it, so it may still commit.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) shared: Arc<Shared>,
}

/// What the clones of a store share.
pub(crate) struct Shared {
    pub(crate) path: PathBuf,
    pub(crate) options: SqliteOptions,
    pub(crate) writer: Writer,
    pub(crate) readers: ReaderPool,
    /// The partition locks of the file, shared by every store of this process open on it.
    pub(crate) locks: Arc<KeyedLocks>,
}

/// The partition locks of each file open in this process, by canonical path: every
/// store opened on one file takes its locks from one table. An entry goes when the last
/// store on its file does.
fn partition_locks(path: &Path) -> Arc<KeyedLocks> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<KeyedLocks>>>> = OnceLock::new();
    // The file exists by now (the writer created it), so it has a canonical path; should
    // that fail, the path as given still serves the stores opened with it.
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mut open = OPEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    open.retain(|_, locks| locks.strong_count() > 0);
    if let Some(locks) = open.get(&path).and_then(Weak::upgrade) {
        return locks;
    }
    let locks = Arc::new(KeyedLocks::new());
    open.insert(path, Arc::downgrade(&locks));
    locks
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.shared.path)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating and migrating as needed) the store at `path` with `options`.
    pub(crate) async fn open(path: &Path, options: SqliteOptions) -> Result<Self, SqliteError> {
        let positive = |option: &'static str, value: usize| {
            if value == 0 {
                Err(SqliteError::InvalidOption {
                    option,
                    reason: "must be at least 1",
                })
            } else {
                Ok(())
            }
        };
        positive("readers", options.readers)?;
        positive("read_page_size", options.read_page_size)?;
        positive("max_group", options.max_group)?;
        // The writer creates and migrates the file before any reader connects.
        let writer = Writer::start(path, &options).await?;
        let readers = ReaderPool::start(path, &options).await?;
        let locks = partition_locks(path);
        tracing::debug!(path = %path.display(), ?options, "opened the SQLite event store");
        Ok(SqliteStore {
            shared: Arc::new(Shared {
                path: path.to_owned(),
                options,
                writer,
                readers,
                locks,
            }),
        })
    }

    /// The file the store lives in.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The options it was opened with.
    pub fn options(&self) -> &SqliteOptions {
        &self.shared.options
    }

    /// SQLite's plan (`EXPLAIN QUERY PLAN`) for the statements that find the events
    /// matching `query`, as a read with `options` runs them for one page and as an append
    /// condition does: one line per step, such as
    /// `SEARCH t0 USING PRIMARY KEY (tag_key=? AND tag_value=? AND position>? AND position<?)`.
    ///
    /// For checking that a query is answered from the indexes. (A query of hundreds of
    /// items runs as several statements of positions, whose events are then looked up by
    /// position; the plan shows those statements.)
    pub async fn query_plan(
        &self,
        query: &Query,
        options: ReadOptions,
    ) -> Result<Vec<String>, StoreError> {
        let compiled = CompiledQuery::new(query);
        let direction = if options.backwards {
            Direction::Backward
        } else {
            Direction::Forward
        };
        let page = i64::try_from(self.shared.options.read_page_size).unwrap_or(i64::MAX);
        self.shared
            .readers
            .run(move |conn| {
                let statements = match compiled.page(direction, 1, i64::MAX, page) {
                    Page::Rows(sql, params) => vec![(sql, params)],
                    Page::Positions(statements) => statements,
                };
                let mut lines = Vec::new();
                for (sql, params) in statements {
                    let mut stmt = conn
                        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                        .map_err(StoreError::backend)?;
                    let rows = stmt
                        .query_map(rusqlite::params_from_iter(params), |row| {
                            row.get::<_, String>(3)
                        })
                        .map_err(StoreError::backend)?;
                    for line in rows {
                        lines.push(line.map_err(StoreError::backend)?);
                    }
                }
                Ok(lines)
            })
            .await
    }
}

impl EventStore for SqliteStore {
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a {
        reader::read(self.shared.clone(), CompiledQuery::new(query), options)
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended, AppendError> {
        if events.is_empty() {
            return Err(AppendError::Empty);
        }
        let request = Prepared::new(AppendRequest::new(events, condition));
        let mut results = self.shared.writer.append_batch(vec![request]).await?;
        match results.pop() {
            Some(result) if results.is_empty() => result,
            _ => Err(AppendError::Store(StoreError::backend(
                SqliteError::WorkerGone("writer"),
            ))),
        }
    }

    async fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        let batch = batch.into_iter().map(Prepared::new).collect();
        self.shared.writer.append_batch(batch).await
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        self.shared
            .readers
            .run(|conn| {
                let head = head(conn).map_err(StoreError::backend)?;
                Ok(head.and_then(position_from_sql))
            })
            .await
    }

    /// One statement on a reader: the keys, as a JSON array, joined with the key table.
    async fn find_idempotency_keys(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<Position>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let recorded: Vec<&str> = keys.iter().map(|k| recorded_key(k)).collect();
        let array = serde_json::to_string(&recorded).map_err(StoreError::backend)?;
        let count = keys.len();
        let found = self
            .shared
            .readers
            .run(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT asked.key, known.key, known.first_position, known.last_position \
                         FROM json_each(?1) AS asked \
                         JOIN idempotency_keys AS known ON known.key = asked.value",
                    )
                    .map_err(StoreError::backend)?;
                let rows = stmt
                    .query_map([array], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, i64>(2)?,
                            row.get::<_, i64>(3)?,
                        ))
                    })
                    .map_err(StoreError::backend)?;
                let mut found: Vec<Option<Vec<Position>>> = vec![None; count];
                for row in rows {
                    let (index, key, first, last) = row.map_err(StoreError::backend)?;
                    let slot = usize::try_from(index)
                        .ok()
                        .and_then(|i| found.get_mut(i))
                        .ok_or_else(|| {
                            StoreError::backend(SqliteError::OutOfRange {
                                what: "key index",
                                value: index.unsigned_abs(),
                            })
                        })?;
                    *slot = Some(recorded_positions(&key, first, last)?);
                }
                Ok(found)
            })
            .await?;
        Ok(found)
    }
}

impl PartitionLocks for SqliteStore {
    /// In-process locks (see the [crate documentation](crate#partition-locks)): they
    /// serialize the holders of a key among the stores this process opened on the file,
    /// not across processes.
    async fn lock_partition(&self, key: &str) -> Result<Option<PartitionLock>, StoreError> {
        Ok(Some(self.shared.locks.lock(key).await))
    }
}

impl SnapshotStore for SqliteStore {
    async fn load_snapshot(&self, key: &str) -> Result<Option<Snapshot>, StoreError> {
        let key = key.to_owned();
        self.shared
            .readers
            .run(move |conn| load_snapshot(conn, key))
            .await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.shared.writer.save_snapshot(snapshot).await
    }
}

fn load_snapshot(conn: &rusqlite::Connection, key: String) -> Result<Option<Snapshot>, StoreError> {
    let row = conn
        .query_row(
            "SELECT query, position, codec, payload FROM snapshots WHERE key = ?1",
            [&key],
            |row| {
                let text = |i: usize| -> rusqlite::Result<Option<String>> {
                    Ok(match row.get_ref(i)? {
                        ValueRef::Text(bytes) => std::str::from_utf8(bytes).ok().map(str::to_owned),
                        _ => None,
                    })
                };
                let payload = match row.get_ref(3)? {
                    ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Some(bytes.to_vec()),
                    _ => None,
                };
                let position = match row.get_ref(1)? {
                    ValueRef::Integer(p) => u64::try_from(p).ok().map(Position),
                    _ => None,
                };
                Ok((text(0)?, position, text(2)?, payload))
            },
        )
        .optional()
        .map_err(StoreError::backend)?;
    let Some((query, position, codec, payload)) = row else {
        return Ok(None);
    };
    let corrupt = |reason: &str| {
        StoreError::backend(SqliteError::CorruptRecord {
            what: "snapshots",
            key: key.clone(),
            reason: reason.to_owned(),
        })
    };
    let query = query.ok_or_else(|| corrupt("the query is not UTF-8 text"))?;
    let position = position.ok_or_else(|| corrupt("the position is not a non-negative integer"))?;
    let codec = codec
        .as_deref()
        .and_then(Codec::from_name)
        .ok_or_else(|| corrupt("unknown payload codec"))?;
    let bytes = payload.ok_or_else(|| corrupt("the payload is not bytes"))?;
    Ok(Some(Snapshot {
        key,
        query,
        position,
        payload: Payload { codec, bytes },
    }))
}
