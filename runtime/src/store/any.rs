//! A store chosen at run time: any store behind one type.

use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::watch;

use super::{
    AppendError, AppendRequest, Appended, DeadLetter, EventStore, ListenerStore, NewDeadLetter,
    PartitionLock, PartitionLocks, ReadOptions, Snapshot, SnapshotStore, StoreError,
};
use crate::model::{AppendCondition, NewEvent, Position, Query, StoredEvent};

/// Any store, chosen at run time: what an application holds when its configuration
/// picks SQLite or PostgreSQL. Engines, dispatchers and listeners run on it as on the
/// store inside; each call costs one allocation more (its future is boxed).
///
/// ```
/// use factum::store::AnyStore;
/// use factum::{Engine, MemoryStore};
///
/// fn store_from(config: &str) -> AnyStore {
///     match config {
///         // e.g. "postgres" => AnyStore::new(PostgresStore::connect(..).await?),
///         _ => AnyStore::new(MemoryStore::new()),
///     }
/// }
/// let engine = Engine::new(store_from("memory"));
/// # drop(engine);
/// ```
#[derive(Clone)]
pub struct AnyStore(Arc<dyn DynStore>);

impl AnyStore {
    /// `store`, behind the one type.
    pub fn new<S: ListenerStore + 'static>(store: S) -> Self {
        AnyStore(Arc::new(store))
    }
}

impl std::fmt::Debug for AnyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnyStore")
    }
}

/// The object-safe form of a store's traits: each future and stream boxed.
trait DynStore: Send + Sync {
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> BoxStream<'a, Result<StoredEvent, StoreError>>;
    fn visit_in_place(
        &self,
        query: &Query,
        options: ReadOptions,
        visit: &mut dyn FnMut(&StoredEvent) -> ControlFlow<()>,
    ) -> bool;
    fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> BoxFuture<'_, Result<Appended, AppendError>>;
    fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> BoxFuture<'_, Result<Vec<Result<Appended, AppendError>>, StoreError>>;
    fn head(&self) -> BoxFuture<'_, Result<Option<Position>, StoreError>>;
    fn find_idempotency_keys<'a>(
        &'a self,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Option<Vec<Position>>>, StoreError>>;
    fn lock_partition<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<PartitionLock>, StoreError>>;
    fn load_snapshot<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Snapshot>, StoreError>>;
    fn save_snapshot(&self, snapshot: Snapshot) -> BoxFuture<'_, Result<(), StoreError>>;
    fn load_checkpoint<'a>(
        &'a self,
        listener: &'a str,
    ) -> BoxFuture<'a, Result<Option<Position>, StoreError>>;
    fn save_checkpoint<'a>(
        &'a self,
        listener: &'a str,
        position: Position,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn record_dead_letter(&self, letter: NewDeadLetter) -> BoxFuture<'_, Result<u64, StoreError>>;
    fn dead_letters<'a>(
        &'a self,
        listener: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<DeadLetter>, StoreError>>;
    fn remove_dead_letter(&self, id: u64) -> BoxFuture<'_, Result<bool, StoreError>>;
    fn watch_head(&self) -> watch::Receiver<Option<Position>>;
}

impl<S: ListenerStore> DynStore for S {
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> BoxStream<'a, Result<StoredEvent, StoreError>> {
        EventStore::read(self, query, options).boxed()
    }

    fn visit_in_place(
        &self,
        query: &Query,
        options: ReadOptions,
        visit: &mut dyn FnMut(&StoredEvent) -> ControlFlow<()>,
    ) -> bool {
        EventStore::visit_in_place(self, query, options, visit)
    }

    fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> BoxFuture<'_, Result<Appended, AppendError>> {
        EventStore::append(self, events, condition).boxed()
    }

    fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> BoxFuture<'_, Result<Vec<Result<Appended, AppendError>>, StoreError>> {
        EventStore::append_batch(self, batch).boxed()
    }

    fn head(&self) -> BoxFuture<'_, Result<Option<Position>, StoreError>> {
        EventStore::head(self).boxed()
    }

    fn find_idempotency_keys<'a>(
        &'a self,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Option<Vec<Position>>>, StoreError>> {
        EventStore::find_idempotency_keys(self, keys).boxed()
    }

    fn lock_partition<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<PartitionLock>, StoreError>> {
        PartitionLocks::lock_partition(self, key).boxed()
    }

    fn load_snapshot<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Snapshot>, StoreError>> {
        SnapshotStore::load_snapshot(self, key).boxed()
    }

    fn save_snapshot(&self, snapshot: Snapshot) -> BoxFuture<'_, Result<(), StoreError>> {
        SnapshotStore::save_snapshot(self, snapshot).boxed()
    }

    fn load_checkpoint<'a>(
        &'a self,
        listener: &'a str,
    ) -> BoxFuture<'a, Result<Option<Position>, StoreError>> {
        ListenerStore::load_checkpoint(self, listener).boxed()
    }

    fn save_checkpoint<'a>(
        &'a self,
        listener: &'a str,
        position: Position,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        ListenerStore::save_checkpoint(self, listener, position).boxed()
    }

    fn record_dead_letter(&self, letter: NewDeadLetter) -> BoxFuture<'_, Result<u64, StoreError>> {
        ListenerStore::record_dead_letter(self, letter).boxed()
    }

    fn dead_letters<'a>(
        &'a self,
        listener: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<DeadLetter>, StoreError>> {
        ListenerStore::dead_letters(self, listener).boxed()
    }

    fn remove_dead_letter(&self, id: u64) -> BoxFuture<'_, Result<bool, StoreError>> {
        ListenerStore::remove_dead_letter(self, id).boxed()
    }

    fn watch_head(&self) -> watch::Receiver<Option<Position>> {
        ListenerStore::watch_head(self)
    }
}

impl EventStore for AnyStore {
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a {
        self.0.read(query, options)
    }

    fn visit_in_place(
        &self,
        query: &Query,
        options: ReadOptions,
        visit: &mut dyn FnMut(&StoredEvent) -> ControlFlow<()>,
    ) -> bool {
        self.0.visit_in_place(query, options, visit)
    }

    fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> impl Future<Output = Result<Appended, AppendError>> + Send {
        self.0.append(events, condition)
    }

    fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> impl Future<Output = Result<Vec<Result<Appended, AppendError>>, StoreError>> + Send {
        self.0.append_batch(batch)
    }

    fn head(&self) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send {
        self.0.head()
    }

    async fn find_idempotency_keys(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<Position>>>, StoreError> {
        self.0.find_idempotency_keys(keys).await
    }
}

impl SnapshotStore for AnyStore {
    async fn load_snapshot(&self, key: &str) -> Result<Option<Snapshot>, StoreError> {
        self.0.load_snapshot(key).await
    }

    fn save_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.0.save_snapshot(snapshot)
    }
}

impl PartitionLocks for AnyStore {
    async fn lock_partition(&self, key: &str) -> Result<Option<PartitionLock>, StoreError> {
        self.0.lock_partition(key).await
    }
}

impl ListenerStore for AnyStore {
    async fn load_checkpoint(&self, listener: &str) -> Result<Option<Position>, StoreError> {
        self.0.load_checkpoint(listener).await
    }

    async fn save_checkpoint(&self, listener: &str, position: Position) -> Result<(), StoreError> {
        self.0.save_checkpoint(listener, position).await
    }

    fn record_dead_letter(
        &self,
        letter: NewDeadLetter,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.0.record_dead_letter(letter)
    }

    async fn dead_letters(&self, listener: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        self.0.dead_letters(listener).await
    }

    fn remove_dead_letter(&self, id: u64) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.0.remove_dead_letter(id)
    }

    fn watch_head(&self) -> watch::Receiver<Option<Position>> {
        self.0.watch_head()
    }
}
