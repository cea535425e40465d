//! Concurrency strategies: serial lanes with group commit, the store lock, and the
//! dispatcher that picks one per decision.
//!
//! A serial lane takes the decisions queued on it (routed by partition key), decides
//! them one after another on states it keeps warm, and commits them in one store
//! transaction ([`EventStore::append_batch`](crate::store::EventStore::append_batch)).
//! Each decision is decided on the states including the events of the decisions before
//! it in the batch, and its append is still guarded by its own condition, which
//! ignores those events ([`AppendRequest::builds_on`](crate::store::AppendRequest)):
//! a decision that would break the rule is refused alone, with its domain error, and
//! never reaches the store.

mod dispatcher;
mod job;
mod lane;
mod options;
mod strategy;
mod warm;

pub use dispatcher::{Dispatcher, Drain};
pub use options::LaneOptions;
pub use strategy::Strategy;
