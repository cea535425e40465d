//! What a decision reads: one state, several, or none.

use super::StateInfo;
use super::member::{Member, MemberKey};
use super::state::{Exclusions, SnapshotSlot, State};
use crate::model::{DecodeError, Position, Query, StoredEvent};

/// What a decision reads: one state, a tuple of states, or a `Vec` of states whose
/// length is known only from the command.
pub trait StateSet: Send + Sync + 'static {
    /// The event types of each state kind's query, for compile-time checks; an empty
    /// list for a kind that reads every type (see [`State::ANY_TYPE`]).
    const TYPES_READ: &'static [&'static [&'static str]];
    /// The name of each state kind in the set, for compile-time checks.
    const STATES_READ: &'static [&'static str];

    /// The union of the states' queries: what one read fetches.
    fn read_query(&self) -> Query;

    /// The union of the states' queries, each without the types `exclusions` remove from
    /// it: what the append is guarded by.
    fn validation_query(&self, exclusions: &Exclusions) -> Query;

    /// Folds `event` into every state whose query it matches.
    fn fold(&mut self, event: &StoredEvent) -> Result<(), DecodeError>;

    /// Catalog entries of the state kinds in the set.
    fn infos() -> Vec<StateInfo>;

    /// The state kinds of which the set holds more than one state (a `Vec`, or a kind
    /// named twice in a tuple): one partition key cannot cover all of them.
    fn several() -> Vec<&'static str> {
        Vec::new()
    }

    /// Whether any state kind in the set keeps snapshots.
    const SNAPSHOTS: bool;

    /// Calls `visit` on each state of the set, in a fixed order (the order of
    /// [`StateSet::fold_after`]'s `restored`). The engine's; not for applications.
    #[doc(hidden)]
    fn visit_states(&mut self, visit: &mut dyn FnMut(&mut dyn SnapshotSlot));

    /// Like [`StateSet::fold`], but the n-th state (in the order of its snapshot slots)
    /// only takes events after `restored[n]`, the position of the snapshot it was
    /// restored from (`Position(0)`: none).
    fn fold_after(
        &mut self,
        event: &StoredEvent,
        restored: &mut std::slice::Iter<'_, Position>,
    ) -> Result<(), DecodeError>;

    /// Calls `visit` on each state of the set, in the order of `into_members`: how a
    /// serial lane swaps warm states in. The lanes'; not for applications.
    #[doc(hidden)]
    fn visit_members(&mut self, visit: &mut dyn FnMut(&mut dyn Member));

    /// Hands each state of the set, boxed, to `keep` with its key: how a serial lane
    /// keeps the states warm after a decision. The lanes'; not for applications.
    #[doc(hidden)]
    fn into_members(self, keep: &mut dyn FnMut(MemberKey, Box<dyn Member>))
    where
        Self: Sized;
}

impl<S: State> StateSet for S {
    const TYPES_READ: &'static [&'static [&'static str]] =
        &[crate::decide::foldable::query_types(S::TYPES, S::ANY_TYPE)];
    const STATES_READ: &'static [&'static str] = &[S::NAME];
    const SNAPSHOTS: bool = S::SNAPSHOT.is_some();

    fn visit_members(&mut self, visit: &mut dyn FnMut(&mut dyn Member)) {
        visit(self);
    }

    fn into_members(self, keep: &mut dyn FnMut(MemberKey, Box<dyn Member>)) {
        keep(self.member_key(), Box::new(self));
    }

    fn visit_states(&mut self, visit: &mut dyn FnMut(&mut dyn SnapshotSlot)) {
        visit(self);
    }

    fn fold_after(
        &mut self,
        event: &StoredEvent,
        restored: &mut std::slice::Iter<'_, Position>,
    ) -> Result<(), DecodeError> {
        let after = restored.next().copied().unwrap_or(Position(0));
        if event.position > after && self.matches(event) {
            self.apply(event)?;
        }
        Ok(())
    }

    fn read_query(&self) -> Query {
        State::query(self)
    }

    fn validation_query(&self, exclusions: &Exclusions) -> Query {
        let query = State::query(self);
        if exclusions.applies_to(S::NAME) {
            query.excluding(exclusions.types)
        } else {
            query
        }
    }

    fn fold(&mut self, event: &StoredEvent) -> Result<(), DecodeError> {
        if self.matches(event) {
            self.apply(event)?;
        }
        Ok(())
    }

    fn infos() -> Vec<StateInfo> {
        vec![S::info()]
    }
}

impl<S: State> StateSet for Vec<S> {
    const TYPES_READ: &'static [&'static [&'static str]] =
        &[crate::decide::foldable::query_types(S::TYPES, S::ANY_TYPE)];
    const STATES_READ: &'static [&'static str] = &[S::NAME];
    const SNAPSHOTS: bool = S::SNAPSHOT.is_some();

    fn visit_members(&mut self, visit: &mut dyn FnMut(&mut dyn Member)) {
        for state in self.iter_mut() {
            visit(state);
        }
    }

    fn into_members(self, keep: &mut dyn FnMut(MemberKey, Box<dyn Member>)) {
        for state in self {
            keep(state.member_key(), Box::new(state));
        }
    }

    fn visit_states(&mut self, visit: &mut dyn FnMut(&mut dyn SnapshotSlot)) {
        for state in self.iter_mut() {
            visit(state);
        }
    }

    fn fold_after(
        &mut self,
        event: &StoredEvent,
        restored: &mut std::slice::Iter<'_, Position>,
    ) -> Result<(), DecodeError> {
        for state in self.iter_mut() {
            state.fold_after(event, restored)?;
        }
        Ok(())
    }

    fn read_query(&self) -> Query {
        self.iter()
            .fold(Query::none(), |q, s| q.union(State::query(s)))
    }

    fn validation_query(&self, exclusions: &Exclusions) -> Query {
        self.iter().fold(Query::none(), |q, s| {
            q.union(s.validation_query(exclusions))
        })
    }

    fn fold(&mut self, event: &StoredEvent) -> Result<(), DecodeError> {
        for state in self.iter_mut() {
            StateSet::fold(state, event)?;
        }
        Ok(())
    }

    fn infos() -> Vec<StateInfo> {
        vec![S::info()]
    }

    fn several() -> Vec<&'static str> {
        vec![S::NAME]
    }
}

/// A decision that needs no state: it reads nothing, and its append is unconditional.
impl StateSet for () {
    const TYPES_READ: &'static [&'static [&'static str]] = &[];
    const STATES_READ: &'static [&'static str] = &[];
    const SNAPSHOTS: bool = false;

    fn visit_states(&mut self, _: &mut dyn FnMut(&mut dyn SnapshotSlot)) {}

    fn visit_members(&mut self, _: &mut dyn FnMut(&mut dyn Member)) {}

    fn into_members(self, _: &mut dyn FnMut(MemberKey, Box<dyn Member>)) {}

    fn fold_after(
        &mut self,
        _: &StoredEvent,
        _: &mut std::slice::Iter<'_, Position>,
    ) -> Result<(), DecodeError> {
        Ok(())
    }

    fn read_query(&self) -> Query {
        Query::none()
    }

    fn validation_query(&self, _: &Exclusions) -> Query {
        Query::none()
    }

    fn fold(&mut self, _: &StoredEvent) -> Result<(), DecodeError> {
        Ok(())
    }

    fn infos() -> Vec<StateInfo> {
        Vec::new()
    }
}

/// One member of a tuple of states: a state, or a `Vec` of states of one kind.
pub trait StateSlot: StateSet {
    /// The event types of the member's state kind's query (empty: every type).
    const KIND_TYPES: &'static [&'static str];
    /// The name of the member's state kind.
    const KIND_NAME: &'static str;
}

impl<S: State> StateSlot for S {
    const KIND_TYPES: &'static [&'static str] =
        crate::decide::foldable::query_types(S::TYPES, S::ANY_TYPE);
    const KIND_NAME: &'static str = S::NAME;
}

impl<S: State> StateSlot for Vec<S> {
    const KIND_TYPES: &'static [&'static str] =
        crate::decide::foldable::query_types(S::TYPES, S::ANY_TYPE);
    const KIND_NAME: &'static str = S::NAME;
}

macro_rules! tuple_state_set {
    ($($name:ident : $idx:tt),+) => {
        impl<$($name: StateSlot),+> StateSet for ($($name,)+) {
            const TYPES_READ: &'static [&'static [&'static str]] =
                &[$($name::KIND_TYPES),+];
            const STATES_READ: &'static [&'static str] = &[$($name::KIND_NAME),+];
            const SNAPSHOTS: bool = false $(|| $name::SNAPSHOTS)+;

            fn visit_states(&mut self, visit: &mut dyn FnMut(&mut dyn SnapshotSlot)) {
                $(self.$idx.visit_states(visit);)+
            }

            fn visit_members(&mut self, visit: &mut dyn FnMut(&mut dyn Member)) {
                $(self.$idx.visit_members(visit);)+
            }

            fn into_members(self, keep: &mut dyn FnMut(MemberKey, Box<dyn Member>)) {
                $(self.$idx.into_members(keep);)+
            }

            fn fold_after(
                &mut self,
                event: &StoredEvent,
                restored: &mut std::slice::Iter<'_, Position>,
            ) -> Result<(), DecodeError> {
                $(self.$idx.fold_after(event, restored)?;)+
                Ok(())
            }

            fn read_query(&self) -> Query {
                Query::none()$(.union(self.$idx.read_query()))+
            }

            fn validation_query(&self, exclusions: &Exclusions) -> Query {
                Query::none()$(.union(self.$idx.validation_query(exclusions)))+
            }

            fn fold(&mut self, event: &StoredEvent) -> Result<(), DecodeError> {
                $(self.$idx.fold(event)?;)+
                Ok(())
            }

            fn infos() -> Vec<StateInfo> {
                let mut infos = Vec::new();
                $(infos.extend($name::infos());)+
                infos
            }

            fn several() -> Vec<&'static str> {
                let mut several = Vec::new();
                $(several.extend($name::several());)+
                let names = Self::STATES_READ;
                for (i, name) in names.iter().enumerate() {
                    if names[..i].contains(name) {
                        several.push(*name);
                    }
                }
                several.sort_unstable();
                several.dedup();
                several
            }
        }
    };
}

tuple_state_set!(A: 0);
tuple_state_set!(A: 0, B: 1);
tuple_state_set!(A: 0, B: 1, C: 2);
tuple_state_set!(A: 0, B: 1, C: 2, D: 3);
tuple_state_set!(A: 0, B: 1, C: 2, D: 3, E: 4);
tuple_state_set!(A: 0, B: 1, C: 2, D: 3, E: 4, F: 5);
tuple_state_set!(A: 0, B: 1, C: 2, D: 3, E: 4, F: 5, G: 6);
tuple_state_set!(A: 0, B: 1, C: 2, D: 3, E: 4, F: 5, G: 6, H: 7);
