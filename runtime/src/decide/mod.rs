//! States and folding, the decision traits, the engine and its retries.

pub(crate) mod const_lists;
mod decision;
mod engine;
mod error;
pub(crate) mod foldable;
mod info;
mod member;
mod outcome;
mod prepare;
mod state;
mod state_set;
mod strategy;

pub use decision::{Decide, Decision, DecisionMeta, RetryPolicy};
pub(crate) use engine::Counters;
pub use engine::{Engine, EngineStats};
pub use error::{DecideError, LoadError};
pub use foldable::Foldable;
pub use info::{DecisionInfo, StateInfo};
pub(crate) use outcome::answered;
pub use outcome::{Context, Outcome};
pub(crate) use prepare::prepare_events;
// The engine's and the lanes' view of a state set's members: public only because
// `StateSet`'s hidden methods name them, not for applications.
#[doc(hidden)]
pub use member::{Member, MemberKey};
#[doc(hidden)]
pub use state::SnapshotSlot;
pub use state::{Exclusions, SnapshotPolicy, State, StateId};
pub use state_set::StateSet;
#[doc(hidden)]
pub use state_set::StateSlot;
pub use strategy::Strategy;
