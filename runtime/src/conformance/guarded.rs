//! A store that keeps something alive for as long as any clone of it: what an adapter's
//! conformance factory returns, so the resources of a case go away when the case ends.

use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;

use futures::Stream;

use crate::model::{AppendCondition, NewEvent, Position, Query, StoredEvent};
use crate::store::{
    AppendError, AppendRequest, Appended, EventStore, PartitionLock, ReadOptions, Snapshot,
    StoreError,
};

/// `store`, together with `guard`, which is dropped when the last clone of the store is:
/// a temporary directory holding the store's file, a guard dropping a database schema.
///
/// ```
/// use factum::conformance::Guarded;
///
/// struct Cleanup; // e.g. a `tempfile::TempDir`, or a guard dropping a schema
/// let store = Guarded::new(factum::MemoryStore::new(), Cleanup);
/// let clone = store.clone(); // `Cleanup` drops with the last of them
/// # drop((store, clone));
/// ```
pub struct Guarded<S, G> {
    /// The store, to which every call goes.
    pub store: S,
    guard: Arc<G>,
}

impl<S, G> Guarded<S, G> {
    /// `store`, keeping `guard` alive as long as any clone.
    pub fn new(store: S, guard: G) -> Self {
        Guarded {
            store,
            guard: Arc::new(guard),
        }
    }
}

impl<S: Clone, G> Clone for Guarded<S, G> {
    fn clone(&self) -> Self {
        Guarded {
            store: self.store.clone(),
            guard: Arc::clone(&self.guard),
        }
    }
}

impl<S: EventStore, G: Send + Sync> EventStore for Guarded<S, G> {
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a {
        self.store.read(query, options)
    }

    fn visit_in_place(
        &self,
        query: &Query,
        options: ReadOptions,
        visit: &mut dyn FnMut(&StoredEvent) -> ControlFlow<()>,
    ) -> bool {
        self.store.visit_in_place(query, options, visit)
    }

    fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> impl Future<Output = Result<Appended, AppendError>> + Send {
        self.store.append(events, condition)
    }

    fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> impl Future<Output = Result<Vec<Result<Appended, AppendError>>, StoreError>> + Send {
        self.store.append_batch(batch)
    }

    fn head(&self) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send {
        self.store.head()
    }

    fn find_idempotency_keys(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<Option<Vec<Position>>>, StoreError>> + Send {
        self.store.find_idempotency_keys(keys)
    }

    fn lock_partition(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<PartitionLock>, StoreError>> + Send {
        self.store.lock_partition(key)
    }

    fn load_snapshot(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        self.store.load_snapshot(key)
    }

    fn save_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.store.save_snapshot(snapshot)
    }
}

impl<S: crate::listen::ListenerStore, G: Send + Sync> crate::listen::ListenerStore
    for Guarded<S, G>
{
    fn load_checkpoint(
        &self,
        listener: &str,
    ) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send {
        self.store.load_checkpoint(listener)
    }

    fn save_checkpoint(
        &self,
        listener: &str,
        position: Position,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.store.save_checkpoint(listener, position)
    }

    fn record_dead_letter(
        &self,
        letter: crate::listen::NewDeadLetter,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.store.record_dead_letter(letter)
    }

    fn dead_letters(
        &self,
        listener: Option<&str>,
    ) -> impl Future<Output = Result<Vec<crate::listen::DeadLetter>, StoreError>> + Send {
        self.store.dead_letters(listener)
    }

    fn remove_dead_letter(&self, id: u64) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.store.remove_dead_letter(id)
    }

    fn watch_head(&self) -> tokio::sync::watch::Receiver<Option<Position>> {
        self.store.watch_head()
    }
}
