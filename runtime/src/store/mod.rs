//! The [`EventStore`] trait, the in-memory store, and the conformance suite every store
//! must pass.

mod api;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
pub mod limits;
mod listening;
mod memory;
mod memory_listening;
mod prepare;

mod keyed_locks;

pub use api::{AppendRequest, Appended, EventStore, PartitionLock, ReadOptions, Snapshot};
pub use error::{AppendError, StoreError};
// The in-process partition locks of this workspace's embedded stores; not a stable API.
#[doc(hidden)]
pub use keyed_locks::KeyedLocks;
pub use limits::Unstorable;
pub use listening::{DeadLetter, ListenerStore, NewDeadLetter};
pub use memory::MemoryStore;
pub(crate) use memory_listening::MemoryListening;
pub use prepare::prepare_append;
