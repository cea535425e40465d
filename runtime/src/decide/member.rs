use std::any::{Any, TypeId};

use super::State;
use crate::model::{DecodeError, Query, StoredEvent, Tag};

/// Which state a warm cache holds: its kind and its ids.
pub type MemberKey = (TypeId, Vec<Tag>);

/// One state of a [`StateSet`](super::StateSet) seen by a serial lane, which keeps states
/// warm between decisions: object safe, so a set of any shape hands out its members one
/// by one.
pub trait Member: Send + Sync {
    /// The key it is cached under.
    fn member_key(&self) -> MemberKey;
    /// Its query.
    fn member_query(&self) -> Query;
    /// Whether `event` matches its query.
    fn member_matches(&self, event: &StoredEvent) -> bool;
    /// Folds `event` if it matches its query.
    fn fold_member(&mut self, event: &StoredEvent) -> Result<(), DecodeError>;
    /// Whether its handler for `event_type` reads the stored event (position, time,
    /// metadata), not only the payload.
    fn reads_stored(&self, event_type: &str) -> bool;
    /// Swaps this state with `cached` when that holds a state of the same kind; `false`,
    /// leaving both untouched, otherwise.
    fn swap_with(&mut self, cached: &mut dyn Member) -> bool;
    /// Whether this state, as `Decide::state` built it, starts from the same value as
    /// `start` (see [`StateId::same_start`](crate::StateId::same_start)): only then may
    /// a state folded from `start` stand in for it.
    fn same_start(&self, start: &dyn Member) -> bool;
    /// The state itself, for [`Member::swap_with`].
    fn as_any_mut(&mut self) -> &mut (dyn Any + Send);
    /// The state itself, for [`Member::same_start`].
    fn as_any(&self) -> &(dyn Any + Send);
}

impl<S: State> Member for S {
    fn member_key(&self) -> MemberKey {
        (TypeId::of::<S>(), self.ids())
    }

    fn member_query(&self) -> Query {
        State::query(self)
    }

    fn member_matches(&self, event: &StoredEvent) -> bool {
        self.matches(event)
    }

    fn fold_member(&mut self, event: &StoredEvent) -> Result<(), DecodeError> {
        if self.matches(event) {
            self.apply(event)?;
        }
        Ok(())
    }

    fn reads_stored(&self, event_type: &str) -> bool {
        // An `#[any]` handler takes every type no typed handler takes, as a stored event.
        S::READS_STORED.contains(&event_type) || (S::ANY_TYPE && !S::TYPES.contains(&event_type))
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send) {
        self
    }

    fn as_any(&self) -> &(dyn Any + Send) {
        self
    }

    fn same_start(&self, start: &dyn Member) -> bool {
        start
            .as_any()
            .downcast_ref::<S>()
            .is_some_and(|start| self.same_start(start))
    }

    fn swap_with(&mut self, cached: &mut dyn Member) -> bool {
        match cached.as_any_mut().downcast_mut::<S>() {
            Some(state) => {
                std::mem::swap(self, state);
                true
            }
            None => false,
        }
    }
}
