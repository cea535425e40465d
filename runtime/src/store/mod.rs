//! The [`EventStore`] trait and the in-memory store. The conformance suite every store
//! must pass is `factum::conformance` (feature `conformance`), above this module: it
//! drives the engine, lanes and listeners too.

mod any;
mod api;
mod batch;
mod error;
pub mod limits;
mod listening;
mod memory;
mod memory_listening;
mod prepare;

mod keyed_locks;
mod layer;
mod locks;
mod snapshots;

pub use any::AnyStore;
pub(crate) use api::missing_result;
pub use api::{AppendRequest, Appended, EventStore, ReadOptions};
pub use batch::exempt_positions;
pub use error::{AppendError, StoreError};
// The in-process partition locks of this workspace's embedded stores; not a stable API.
#[doc(hidden)]
pub use keyed_locks::KeyedLocks;
pub use layer::StoreLayer;
pub use limits::Unstorable;
pub use listening::{DeadLetter, ListenerStore, NewDeadLetter};
pub use locks::{PartitionLock, PartitionLocks};
pub use memory::MemoryStore;
pub(crate) use memory_listening::MemoryListening;
pub use prepare::prepare_append;
pub use snapshots::{Snapshot, SnapshotStore};
