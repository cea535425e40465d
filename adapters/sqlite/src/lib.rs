//! # factum-sqlite
//!
//! The embedded, durable [`EventStore`](factum::EventStore) of factum: one SQLite file is
//! one store.
//!
//! ```
//! use factum::prelude::*;
//! use factum::{AppendCondition, AppendError};
//! use futures::TryStreamExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let store = factum_sqlite::open(dir.path().join("events.db")).await.unwrap();
//!
//! // Book seat 1A, on the condition that nobody booked it before.
//! let seat = Query::item(QueryItem::types(["SeatBooked"]).with_tags([Tag::new("seat", "1A")]));
//! let booked = |guest: &str| NewEvent {
//!     event_type: "SeatBooked".into(),
//!     version: 1,
//!     tags: vec![Tag::new("seat", "1A")],
//!     payload: Codec::Json.encode("SeatBooked", &serde_json::json!({ "guest": guest })).unwrap(),
//!     metadata: Default::default(),
//!     recorded_at: None,
//! };
//! let first = store
//!     .append(vec![booked("ada")], Some(AppendCondition::new(seat.clone(), None)))
//!     .await
//!     .unwrap();
//! assert_eq!(first.positions, vec![Position(1)]);
//!
//! // A second booking on the same condition conflicts with the first, and writes nothing.
//! let second = store
//!     .append(vec![booked("bob")], Some(AppendCondition::new(seat.clone(), None)))
//!     .await;
//! assert!(matches!(second, Err(AppendError::Conflict { position: Position(1), .. })));
//!
//! // Read it back.
//! let events: Vec<StoredEvent> =
//!     store.read(&seat, ReadOptions::forward()).try_collect().await.unwrap();
//! assert_eq!(events.len(), 1);
//! assert_eq!(events[0].payload.decode::<serde_json::Value>().unwrap()["guest"], "ada");
//! # });
//! ```
//!
//! An [`Engine`](factum::Engine) runs decisions on it like on any store:
//! `Engine::new(factum_sqlite::open(path).await?)`.
//!
//! ## How it works
//!
//! - **Schema** (migrated with `PRAGMA user_version`, one transaction per step; a file of
//!   a newer version is refused with [`SqliteError::SchemaTooNew`]; a store is marked by
//!   `PRAGMA application_id`, and a file that is neither a store nor empty is refused
//!   unchanged, see [`open`]): `events` (the log;
//!   `position` is the rowid, gap-free and assigned by the single writer, so positions
//!   are in commit order), `events_by_type` (type, position), `event_tags` (tag key, tag
//!   value, position; `WITHOUT ROWID`), `idempotency_keys` (key → the positions of the
//!   append that recorded it), `snapshots` (key → query, position, payload), and for
//!   listeners `listener_checkpoints` and `dead_letters`.
//! - **Queries** are answered from the indexes: each item of a query is an ordered range
//!   of the tag index or of the type index, and the ranges are merged in position order
//!   ([`SqliteStore::query_plan`] shows the plan).
//! - **Writes** go to one writer thread, which commits every request queued meanwhile in
//!   one transaction (group commit: one disk sync for many appends). Each append is still
//!   checked on its own, in order — idempotency keys, then its condition — under a
//!   savepoint, so a failing one writes nothing and does not stop the others.
//! - **Reads** run on a pool of reader threads beside the writer (WAL mode), page by page,
//!   so a read of many events neither blocks the async runtime nor loads everything at
//!   once.
//! - **Durability**: WAL with `synchronous=FULL`: an acknowledged append survives a power
//!   loss. [`Synchronous::Normal`] trades that for speed (see there what it risks).
//! - **Batches** whose requests build on earlier ones of the batch
//!   ([`AppendRequest::builds_on`](factum::AppendRequest::builds_on)): a request whose
//!   dependency failed writes nothing and fails with
//!   [`AppendError::Dependency`](factum::AppendError::Dependency); otherwise its condition
//!   check skips the positions its dependencies wrote, still on the indexes (one look-up
//!   more per range skipped).
//! - **Times**: `recorded_at` is microseconds since 1970 (negative before), the writer's
//!   clock at the group's transaction, or the event's own
//!   ([`NewEvent::recorded_at`](factum::NewEvent::recorded_at), an import) rounded down
//!   to the microsecond; one too far out for 64 bits (about 292,000 years) fails its
//!   append with [`SqliteError::TimeOutOfRange`].
//! - **Idempotency look-ups**
//!   ([`find_idempotency_keys`](factum::EventStore::find_idempotency_keys)) are one
//!   statement on a reader for all the keys asked (passed as a JSON array).
//! - **Errors**: opening fails with a [`SqliteError`]; at run time, failures of SQLite
//!   are [`StoreError::Backend`](factum::StoreError::Backend) (wrapping a `SqliteError`),
//!   and a stored row that cannot be an event (an unknown codec, text that is not UTF-8)
//!   is [`StoreError::Corrupt`](factum::StoreError::Corrupt) naming its position and type.
//!
//! ## Listeners and projections
//!
//! [`SqliteStore`] is a [`ListenerStore`](factum::listen::ListenerStore): checkpoints
//! (`listener_checkpoints`) and dead letters (`dead_letters`) live in the file, written
//! through the writer thread. Its commit signal
//! ([`watch_head`](factum::listen::ListenerStore::watch_head)) is **in-process**: the
//! writer advances it after each group commit, for every store this process opened on the
//! file; commits by other processes on the same file are found by a subscription's
//! polling only ([`SubscriptionOptions::poll_interval`](factum::listen::SubscriptionOptions::poll_interval)).
//!
//! A read model kept in the same file is updated **exactly once** with a
//! [`SqliteProjectionSink`]: each batch of events, its dead letters and the checkpoint
//! that passes them commit in one transaction. A batch whose transaction SQLite ends
//! midway (a full disk, an I/O error) is refused to its end and read again from the
//! checkpoint, and a batch left idle (its subscription dropped midway) is rolled back
//! after the sink's idle limit, so it never holds the file's write lock for long.
//!
//! ```
//! use factum::listen::{HandlerError, Subscription};
//! use factum::prelude::*;
//! use factum_sqlite::{SqliteProjection, SqliteProjectionSink};
//! use rusqlite::Connection;
//!
//! /// Counts the events of each type in a table of the store's file.
//! struct CountByType;
//!
//! impl SqliteProjection for CountByType {
//!     fn name(&self) -> &str { "count_by_type" }
//!     fn query(&self) -> Query { Query::all() }
//!     fn apply(&mut self, conn: &Connection, event: &StoredEvent) -> Result<(), HandlerError> {
//!         conn.execute(
//!             "INSERT INTO counts (type, n) VALUES (?1, 1) \
//!              ON CONFLICT (type) DO UPDATE SET n = n + 1",
//!             [&event.event_type],
//!         )
//!         .map_err(HandlerError::transient)?;
//!         Ok(())
//!     }
//!     fn reset(&mut self, conn: &Connection) -> Result<(), HandlerError> {
//!         conn.execute("DELETE FROM counts", []).map_err(HandlerError::transient)?;
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("events.db");
//! let store = factum_sqlite::open(&path).await.unwrap();
//! // The read model's table, in the same file.
//! Connection::open(&path)
//!     .unwrap()
//!     .execute_batch("CREATE TABLE counts (type TEXT PRIMARY KEY, n INTEGER NOT NULL)")
//!     .unwrap();
//! let event = NewEvent {
//!     event_type: "Opened".into(),
//!     version: 1,
//!     tags: vec![],
//!     payload: Codec::Json.encode("Opened", &serde_json::json!({})).unwrap(),
//!     metadata: Default::default(),
//!     recorded_at: None,
//! };
//! store.append(vec![event.clone(), event], None).await.unwrap();
//!
//! let sink = SqliteProjectionSink::new(&store, CountByType).await.unwrap();
//! let mut subscription = Subscription::new(store.clone(), sink);
//! let progress = subscription.catch_up().await.unwrap();
//! assert_eq!(progress.handled, 2);
//! let n: i64 = Connection::open(&path)
//!     .unwrap()
//!     .query_row("SELECT n FROM counts WHERE type = 'Opened'", [], |row| row.get(0))
//!     .unwrap();
//! assert_eq!(n, 2);
//! # });
//! ```
//!
//! ## Partition locks
//!
//! [`PartitionLocks::lock_partition`](factum::PartitionLocks::lock_partition) takes an
//! **in-process** lock (factum's `KeyedLocks`): it serializes the holders of a key
//! within the process that opened the file — across every store this process opened on
//! that file (and their clones), which share one table of locks — but not across
//! processes. Another process writing the same file takes its own locks, so decisions
//! there are not held back by them; their appends stay correct all the same, since every
//! append is checked against its condition. Waiters are served in the order they asked,
//! and a lock dropped without [`PartitionLock::release`](factum::store::PartitionLock::release)
//! is released all the same.

mod error;
mod head;
mod listening;
mod options;
mod projection;
mod reader;
mod row;
mod schema;
mod sql;
mod store;
mod writer;

use std::path::Path;

pub use error::SqliteError;
pub use options::{SqliteOptions, Synchronous};
pub use projection::{SqliteProjection, SqliteProjectionSink};
pub use schema::SCHEMA_VERSION;
pub use store::SqliteStore;

/// Opens the store in the file at `path` with the default [`SqliteOptions`], creating the
/// file and migrating its schema as needed.
///
/// The file must be a factum store (marked by its `PRAGMA application_id`), or missing,
/// or empty: a 0-byte file, or an SQLite database with no schema objects, no schema
/// version and no application id, quietly becomes a store. Anything else — another
/// application's database, a file that is not SQLite — is refused with
/// [`SqliteError::NotAStore`] (naming the file and what it holds) before anything in it
/// changes: not its journal mode, not a pragma, not a table. Also fails if the file cannot
/// be opened, or was written by a newer factum-sqlite ([`SqliteError::SchemaTooNew`]).
pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, SqliteError> {
    open_with(path, SqliteOptions::default()).await
}

/// Opens the store in the file at `path` with `options` (see [`open`]).
pub async fn open_with(
    path: impl AsRef<Path>,
    options: SqliteOptions,
) -> Result<SqliteStore, SqliteError> {
    SqliteStore::open(path.as_ref(), options).await
}
