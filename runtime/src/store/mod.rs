//! The [`EventStore`] trait, the in-memory store, and the conformance suite every store
//! must pass.

mod api;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod memory;

pub use api::{AppendRequest, Appended, EventStore, ReadOptions, Snapshot};
pub use error::{AppendError, StoreError};
pub use memory::MemoryStore;
