//! One way for a store that wraps another to forward what it does not change.

use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::watch;

use super::{
    AppendError, AppendRequest, Appended, DeadLetter, EventStore, ListenerStore, NewDeadLetter,
    PartitionLock, PartitionLocks, ReadOptions, Snapshot, SnapshotStore, StoreError,
};
use crate::model::{AppendCondition, NewEvent, Position, Query, StoredEvent};

/// A store that wraps another ([`StoreLayer::inner`]) and changes part of what it does:
/// every method forwards to the inner store unless the layer overrides it, and every
/// layer is an [`EventStore`], a [`SnapshotStore`] and a [`PartitionLocks`] (and a
/// [`ListenerStore`] when its inner store is one), as tower's layers are services.
///
/// Each write forwards on its own: a layer that intercepts every write overrides both
/// [`StoreLayer::append`] and [`StoreLayer::append_batch`] (the engine appends one
/// request at a time, serial lanes in batches). Reads all go through
/// [`StoreLayer::read`] unless the layer says it leaves them alone
/// ([`StoreLayer::READS_UNCHANGED`]).
///
/// ```
/// mod counted {
///     use factum::MemoryStore;
///     use factum::store::{AppendError, AppendRequest, Appended, EventStore, StoreError, StoreLayer};
///     use std::sync::atomic::{AtomicU64, Ordering};
///
///     /// Counts the requests appended through it in batches.
///     pub struct Counted {
///         pub inner: MemoryStore,
///         pub requests: AtomicU64,
///     }
///
///     impl StoreLayer for Counted {
///         type Inner = MemoryStore;
///
///         fn inner(&self) -> &MemoryStore {
///             &self.inner
///         }
///
///         async fn append_batch(
///             &self,
///             batch: Vec<AppendRequest>,
///         ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
///             self.requests.fetch_add(batch.len() as u64, Ordering::Relaxed);
///             self.inner.append_batch(batch).await
///         }
///     }
/// }
///
/// // Where it is used, it is a store like any other.
/// use factum::{AppendRequest, Codec, EventStore, Metadata, MemoryStore, NewEvent};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = counted::Counted { inner: MemoryStore::new(), requests: AtomicU64::new(0) };
/// let event = NewEvent {
///     event_type: "Happened".into(),
///     version: 1,
///     tags: Vec::new(),
///     payload: factum::model::Payload { codec: Codec::Json, bytes: b"{}".to_vec() },
///     metadata: Metadata::new(),
///     recorded_at: None,
/// };
/// let batch = vec![AppendRequest::new(vec![event.clone()], None), AppendRequest::new(vec![event], None)];
/// store.append_batch(batch).await.unwrap();
/// assert_eq!(store.requests.load(Ordering::Relaxed), 2);
/// # }
/// ```
pub trait StoreLayer: Send + Sync {
    /// The store it wraps.
    type Inner: EventStore;

    /// The store it forwards to.
    fn inner(&self) -> &Self::Inner;

    /// Whether the layer leaves reads alone, so the inner store may serve them in place
    /// (the in-memory store's shortcut, [`EventStore::visit_in_place`]). `false` by
    /// default: every read then goes through [`StoreLayer::read`], which a layer that
    /// watches or changes reads overrides.
    const READS_UNCHANGED: bool = false;

    /// See [`EventStore::read`].
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a {
        self.inner().read(query, options)
    }

    /// See [`EventStore::visit_in_place`]: the inner store's when the layer leaves reads
    /// alone ([`StoreLayer::READS_UNCHANGED`]), none otherwise.
    fn visit_in_place(
        &self,
        query: &Query,
        options: ReadOptions,
        visit: &mut dyn FnMut(&StoredEvent) -> ControlFlow<()>,
    ) -> bool {
        Self::READS_UNCHANGED && self.inner().visit_in_place(query, options, visit)
    }

    /// See [`EventStore::append`].
    fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> impl Future<Output = Result<Appended, AppendError>> + Send {
        self.inner().append(events, condition)
    }

    /// See [`EventStore::append_batch`].
    fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> impl Future<Output = Result<Vec<Result<Appended, AppendError>>, StoreError>> + Send {
        self.inner().append_batch(batch)
    }

    /// See [`EventStore::head`].
    fn head(&self) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send {
        self.inner().head()
    }

    /// See [`EventStore::find_idempotency_keys`].
    fn find_idempotency_keys(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<Option<Vec<Position>>>, StoreError>> + Send {
        self.inner().find_idempotency_keys(keys)
    }

    /// See [`PartitionLocks::lock_partition`].
    fn lock_partition(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<PartitionLock>, StoreError>> + Send {
        self.inner().lock_partition(key)
    }

    /// See [`SnapshotStore::load_snapshot`].
    fn load_snapshot(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        self.inner().load_snapshot(key)
    }

    /// See [`SnapshotStore::save_snapshot`].
    fn save_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner().save_snapshot(snapshot)
    }
}

impl<L: StoreLayer> EventStore for L {
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a {
        StoreLayer::read(self, query, options)
    }

    fn visit_in_place(
        &self,
        query: &Query,
        options: ReadOptions,
        visit: &mut dyn FnMut(&StoredEvent) -> ControlFlow<()>,
    ) -> bool {
        StoreLayer::visit_in_place(self, query, options, visit)
    }

    fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> impl Future<Output = Result<Appended, AppendError>> + Send {
        StoreLayer::append(self, events, condition)
    }

    fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> impl Future<Output = Result<Vec<Result<Appended, AppendError>>, StoreError>> + Send {
        StoreLayer::append_batch(self, batch)
    }

    fn head(&self) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send {
        StoreLayer::head(self)
    }

    fn find_idempotency_keys(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<Option<Vec<Position>>>, StoreError>> + Send {
        StoreLayer::find_idempotency_keys(self, keys)
    }
}

impl<L: StoreLayer> SnapshotStore for L {
    fn load_snapshot(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        StoreLayer::load_snapshot(self, key)
    }

    fn save_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        StoreLayer::save_snapshot(self, snapshot)
    }
}

impl<L: StoreLayer> PartitionLocks for L {
    fn lock_partition(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<PartitionLock>, StoreError>> + Send {
        StoreLayer::lock_partition(self, key)
    }
}

/// What a layer keeps for listeners is what its inner store keeps.
impl<L: StoreLayer> ListenerStore for L
where
    L::Inner: ListenerStore,
{
    fn load_checkpoint(
        &self,
        listener: &str,
    ) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send {
        self.inner().load_checkpoint(listener)
    }

    fn save_checkpoint(
        &self,
        listener: &str,
        position: Position,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner().save_checkpoint(listener, position)
    }

    fn record_dead_letter(
        &self,
        letter: NewDeadLetter,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.inner().record_dead_letter(letter)
    }

    fn dead_letters(
        &self,
        listener: Option<&str>,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, StoreError>> + Send {
        self.inner().dead_letters(listener)
    }

    fn remove_dead_letter(&self, id: u64) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.inner().remove_dead_letter(id)
    }

    fn watch_head(&self) -> watch::Receiver<Option<Position>> {
        self.inner().watch_head()
    }
}

/// A shared store is the store.
impl<S: EventStore> StoreLayer for Arc<S> {
    type Inner = S;

    const READS_UNCHANGED: bool = true;

    fn inner(&self) -> &S {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    /// Watches reads: its inner store must not serve them in place behind its back.
    struct Watched(MemoryStore);

    impl StoreLayer for Watched {
        type Inner = MemoryStore;

        fn inner(&self) -> &MemoryStore {
            &self.0
        }
    }

    #[test]
    fn only_a_layer_that_leaves_reads_alone_reads_in_place() {
        let mut seen = 0;
        let mut visit = |_: &StoredEvent| {
            seen += 1;
            ControlFlow::Continue(())
        };
        let (all, options) = (Query::all(), ReadOptions::forward());
        let shared = Arc::new(MemoryStore::new());
        assert!(EventStore::visit_in_place(
            &shared, &all, options, &mut visit
        ));
        let watched = Watched(MemoryStore::new());
        assert!(!EventStore::visit_in_place(
            &watched, &all, options, &mut visit
        ));
        assert_eq!(seen, 0, "both stores are empty");
    }
}
