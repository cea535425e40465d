//! The [`EventStore`] trait, the in-memory store, and the conformance suite every store
//! must pass.

mod api;
mod batch;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
pub mod limits;
mod memory;
mod prepare;

mod keyed_locks;

pub use api::{AppendRequest, Appended, EventStore, PartitionLock, ReadOptions, Snapshot};
pub use batch::exempt_positions;
pub use error::{AppendError, StoreError};
// The in-process partition locks of this workspace's embedded stores; not a stable API.
#[doc(hidden)]
pub use keyed_locks::KeyedLocks;
pub use limits::Unstorable;
pub use memory::MemoryStore;
pub use prepare::prepare_append;
