//! What the catalog knows of a state kind and a decision.

use super::{DecisionMeta, Strategy};

/// A state kind as the catalog knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateInfo {
    /// The state's name.
    pub name: &'static str,
    /// The event types its typed handlers fold.
    pub types: &'static [&'static str],
    /// Whether it also folds every other type carrying its ids (an `#[any]` handler):
    /// its query names no type, and no exclusion narrows it.
    pub any_type: bool,
    /// The tag keys of its ids.
    pub id_keys: &'static [&'static str],
}

/// A decision as the catalog knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionInfo {
    /// Its concurrency metadata.
    pub meta: DecisionMeta,
    /// The state kinds it reads.
    pub states: Vec<StateInfo>,
    /// The state kinds of which it reads more than one state (a `Vec`, or a kind named
    /// twice): its partition key cannot cover them all.
    pub several: Vec<&'static str>,
    /// The types of its event set (what it may return unless `emits` narrows it).
    pub event_types: &'static [&'static str],
}

impl DecisionInfo {
    /// The event types its validation query covers, after exclusions.
    pub fn validated_types(&self) -> Vec<&'static str> {
        let mut types: Vec<&'static str> = self
            .states
            .iter()
            .flat_map(|s| self.validated_types_of(s))
            .collect();
        types.sort_unstable();
        types.dedup();
        types
    }

    /// The event types it may emit.
    pub fn emitted_types(&self) -> &'static [&'static str] {
        self.meta.emits.unwrap_or(self.event_types)
    }

    /// The event types of `state`'s query that its validation query keeps: all of them
    /// unless an exclusion removes some from that state. For a state that reads every
    /// type ([`StateInfo::any_type`]) these are its typed handlers' types, and every
    /// other type carrying its ids is validated too (see [`DecisionInfo::guards`]).
    pub fn validated_types_of(&self, state: &StateInfo) -> Vec<&'static str> {
        let excluded = !state.any_type && self.meta.exclude.applies_to(state.name);
        state
            .types
            .iter()
            .copied()
            .filter(|t| !(excluded && self.meta.exclude.types.contains(t)))
            .collect()
    }

    /// The event types of `state`'s query its appends are guarded by under its default
    /// strategy: a serial lane guards with the whole read query (exclusions do not apply
    /// in a lane), the other strategies with the validation query.
    pub fn guarded_types_of(&self, state: &StateInfo) -> Vec<&'static str> {
        if self.strategy() == Strategy::SerialLanes {
            state.types.to_vec()
        } else {
            self.validated_types_of(state)
        }
    }

    /// Whether its appends, under its default strategy, are guarded by `state`'s part of
    /// the query against events of `event_type` (carrying the state's ids).
    pub fn guards(&self, state: &StateInfo, event_type: &str) -> bool {
        state.any_type || self.guarded_types_of(state).contains(&event_type)
    }

    /// The event types an exclusion removes from `state`'s part of the validation query
    /// (none from a state that reads every type: a query over every type cannot leave
    /// one out).
    pub fn excluded_types_of(&self, state: &StateInfo) -> Vec<&'static str> {
        if state.any_type || !self.meta.exclude.applies_to(state.name) {
            return Vec::new();
        }
        state
            .types
            .iter()
            .copied()
            .filter(|t| self.meta.exclude.types.contains(t))
            .collect()
    }

    /// The strategy it runs under unless the application overrides it (see
    /// [`Strategy::for_meta`]).
    pub fn strategy(&self) -> Strategy {
        Strategy::for_meta(&self.meta)
    }
}
