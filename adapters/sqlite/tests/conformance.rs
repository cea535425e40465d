//! The factum store conformance suite, each case against a fresh store in a new file.

use std::sync::Arc;

use factum::{
    AppendCondition, AppendError, AppendRequest, Appended, EventStore, NewEvent, Position, Query,
    ReadOptions, Snapshot, StoreError, StoredEvent,
};
use factum_sqlite::{SqliteOptions, SqliteStore};
use futures::Stream;
use tempfile::TempDir;

/// A store together with the temporary directory of its file, removed when the last
/// clone is dropped (after the store's own handle, so the file outlives its use).
#[derive(Clone)]
struct TempStore {
    store: SqliteStore,
    _dir: Arc<TempDir>,
}

impl EventStore for TempStore {
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a {
        self.store.read(query, options)
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended, AppendError> {
        self.store.append(events, condition).await
    }

    async fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        self.store.append_batch(batch).await
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        self.store.head().await
    }

    async fn load_snapshot(&self, key: &str) -> Result<Option<Snapshot>, StoreError> {
        self.store.load_snapshot(key).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.store.save_snapshot(snapshot).await
    }
}

async fn make_with(options: SqliteOptions) -> TempStore {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = factum_sqlite::open_with(dir.path().join("events.db"), options)
        .await
        .expect("a fresh SQLite store");
    TempStore {
        store,
        _dir: Arc::new(dir),
    }
}

/// The default options.
async fn make() -> TempStore {
    make_with(SqliteOptions::default()).await
}

factum::conformance_tests!(make);

/// Small pages, groups and pools: reads of more than a few events page, every queue is
/// a contention point. (Pages of 16: the contention case reads its course thousands of
/// times; `tests/reads.rs` compares reads with pages of 1 and 7 against the memory
/// store.)
mod tiny {
    use super::*;

    async fn make_tiny() -> TempStore {
        make_with(SqliteOptions {
            readers: 1,
            read_page_size: 16,
            max_group: 2,
            ..SqliteOptions::default()
        })
        .await
    }

    factum::conformance_tests!(make_tiny);
}
