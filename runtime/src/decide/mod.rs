//! States and folding, the decision traits, the engine and its retries.

mod decision;
mod engine;
mod error;
pub(crate) mod foldable;
mod member;
mod state;

pub use decision::{Decide, Decision, DecisionMeta, RetryPolicy};
pub(crate) use engine::Counters;
pub use engine::{Context, Engine, EngineStats, Outcome};
pub use error::{DecideError, LoadError};
pub use foldable::Foldable;
pub use member::{Member, MemberKey};
pub use state::{Exclusions, SnapshotPolicy, SnapshotSlot, State, StateId, StateSet, StateSlot};
