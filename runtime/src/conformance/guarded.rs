//! A store that keeps something alive for as long as any clone of it: what an adapter's
//! conformance factory returns, so the resources of a case go away when the case ends.

use std::sync::Arc;

use crate::store::{EventStore, StoreLayer};

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

/// Every call goes to the store; its listener storage too, when it has one.
impl<S: EventStore, G: Send + Sync> StoreLayer for Guarded<S, G> {
    type Inner = S;

    const READS_UNCHANGED: bool = true;

    fn inner(&self) -> &S {
        &self.store
    }
}
