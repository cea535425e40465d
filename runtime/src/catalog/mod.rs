//! The registry of every event type, state and decision, with their metadata.
//!
//! Two paths fill it: `inventory` collects what the macros registered in every linked
//! crate (`Catalog::from_inventory`, feature `inventory`), and the explicit builder
//! ([`Catalog::new`] with [`Catalog::events`], [`Catalog::state`], [`Catalog::decision`])
//! names them by type. The runtime relies on the explicit path, because a linker may
//! drop the registrations of a crate nothing references; the inventory path is the
//! convenient cross-check.
//!
//! What the catalog knows is enough to review a model before it runs: [`Catalog::analyze`]
//! finds which decisions can invalidate which ([`Conflict`]) and warns where that will
//! cost retries or allow overbooking ([`Warning`]); [`Catalog::mermaid`] draws it as a
//! graph, and with the feature `describe`, `Catalog::describe` prints it all as Markdown
//! tables and `cli::run` mounts both as a `describe` command in an application's binary.
//!
//! The rules of the analysis: a decision's append is refused when an event matching its
//! validation query was committed after it read, so decision `W` can invalidate
//! decision `R` when `W` may emit a type that one of `R`'s states folds (any type, for a
//! state with an `#[any]` handler; and `R` does not exclude, unless `R` runs in serial
//! lanes, where exclusions do not apply),
//! carrying that state's id tags: the two meet on those tags. Two decisions partitioned
//! by the same one of those tags go to the same serial lane for any instance they
//! share, unless one of them reads several states of the kind; otherwise each commit of
//! one can fail the other's append. The macros cannot see which tag a field's value ends
//! up in, so a partition key is taken to be a value of the tag named like its field, or
//! of the tag `partition_tag = ".."` names.

use std::collections::BTreeMap;

use crate::decide::{Decide, State};
pub use crate::decide::{DecisionInfo, StateInfo};
pub use crate::model::EventInfo;
use crate::model::EventSet;

mod conflicts;
#[cfg(feature = "describe")]
mod describe;
mod mermaid;
mod report;

#[cfg(feature = "describe")]
pub mod cli;

pub use conflicts::{Analysis, Conflict, Warning};

// What the macros register (through `factum::__submit!`, which is empty without the
// feature).
#[cfg(feature = "inventory")]
#[doc(hidden)]
pub struct EventEntry(pub fn() -> Vec<EventInfo>);
#[cfg(feature = "inventory")]
#[doc(hidden)]
pub struct StateEntry(pub fn() -> StateInfo);
#[cfg(feature = "inventory")]
#[doc(hidden)]
pub struct DecisionEntry(pub fn() -> DecisionInfo);

#[cfg(feature = "inventory")]
inventory::collect!(EventEntry);
#[cfg(feature = "inventory")]
inventory::collect!(StateEntry);
#[cfg(feature = "inventory")]
inventory::collect!(DecisionEntry);

/// A problem with the catalog as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// Two event types, in different modules, share one stored name.
    #[error(
        "event type name `{name}` is declared twice, in `{first}` and `{second}`: rename one with #[event(name = \"...\")]"
    )]
    DuplicateEventName {
        /// The shared name.
        name: &'static str,
        /// One declaring module.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
    /// Two different state kinds share one name (exclusions and the catalog name states).
    #[error("two different states are named `{name}`: rename one with #[state(name = \"...\")]")]
    DuplicateStateName {
        /// The shared name.
        name: &'static str,
    },
    /// Two different decisions share one name.
    #[error(
        "two different decisions are named `{name}`: rename one with #[decision(name = \"...\")]"
    )]
    DuplicateDecisionName {
        /// The shared name.
        name: &'static str,
    },
}

/// Every event type, state and decision of an application, keyed by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    events: BTreeMap<&'static str, EventInfo>,
    states: BTreeMap<&'static str, StateInfo>,
    decisions: BTreeMap<&'static str, DecisionInfo>,
    errors: Vec<CatalogError>,
}

impl Catalog {
    /// An empty catalog, to fill with the explicit builder methods.
    pub fn new() -> Self {
        Catalog::default()
    }

    /// Everything the macros registered through `inventory` in the linked crates
    /// (feature `inventory`).
    #[cfg(feature = "inventory")]
    pub fn from_inventory() -> Self {
        let mut catalog = Catalog::new();
        for entry in inventory::iter::<EventEntry> {
            for info in (entry.0)() {
                catalog.add_event(info);
            }
        }
        for entry in inventory::iter::<StateEntry> {
            catalog.add_state((entry.0)());
        }
        for entry in inventory::iter::<DecisionEntry> {
            catalog.add_decision((entry.0)());
        }
        catalog
    }

    /// Adds every event type of a set (an event struct, a group or a module's enum).
    pub fn events<E: EventSet>(mut self) -> Self {
        for info in E::infos() {
            self.add_event(info);
        }
        self
    }

    /// Adds a state kind.
    pub fn state<S: State>(mut self) -> Self {
        self.add_state(S::info());
        self
    }

    /// Adds a decision, the state kinds it reads and the event types it may return.
    pub fn decision<D: Decide>(mut self) -> Self {
        self.add_decision(D::info());
        for info in <D::Event as EventSet>::infos() {
            self.add_event(info);
        }
        self
    }

    fn add_event(&mut self, info: EventInfo) {
        let Some(known) = self.events.get(info.name).map(|k| k.module) else {
            self.events.insert(info.name, info);
            return;
        };
        if known == info.module {
            return;
        }
        // Name the modules, and keep the entry, in a fixed order, so the catalog does not
        // depend on registration order.
        self.error(CatalogError::DuplicateEventName {
            name: info.name,
            first: known.min(info.module),
            second: known.max(info.module),
        });
        if info.module < known {
            self.events.insert(info.name, info);
        }
    }

    fn add_state(&mut self, info: StateInfo) {
        match self.states.get(info.name) {
            Some(known) if *known != info => {
                self.error(CatalogError::DuplicateStateName { name: info.name });
            }
            Some(_) => {}
            None => {
                self.states.insert(info.name, info);
            }
        }
    }

    fn add_decision(&mut self, info: DecisionInfo) {
        for state in &info.states {
            self.add_state(state.clone());
        }
        match self.decisions.get(info.meta.name) {
            Some(known) if *known != info => {
                self.error(CatalogError::DuplicateDecisionName {
                    name: info.meta.name,
                });
            }
            Some(_) => {}
            None => {
                self.decisions.insert(info.meta.name, info);
            }
        }
    }

    /// Records `error` once, keeping the list in a fixed order.
    fn error(&mut self, error: CatalogError) {
        if !self.errors.contains(&error) {
            self.errors.push(error);
            self.errors.sort_by_key(ToString::to_string);
        }
    }

    /// Problems found while filling the catalog, such as duplicate event names.
    pub fn check(&self) -> Result<(), Vec<CatalogError>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors.clone())
        }
    }

    /// Event types, by name.
    pub fn event_types(&self) -> impl Iterator<Item = &EventInfo> {
        self.events.values()
    }

    /// State kinds, by name.
    pub fn states(&self) -> impl Iterator<Item = &StateInfo> {
        self.states.values()
    }

    /// Decisions, by name.
    pub fn decisions(&self) -> impl Iterator<Item = &DecisionInfo> {
        self.decisions.values()
    }

    /// The event type called `name`.
    pub fn event_info(&self, name: &str) -> Option<&EventInfo> {
        self.events.get(name)
    }

    /// The state kind called `name`.
    pub fn state_info(&self, name: &str) -> Option<&StateInfo> {
        self.states.get(name)
    }

    /// The decision called `name`.
    pub fn decision_info(&self, name: &str) -> Option<&DecisionInfo> {
        self.decisions.get(name)
    }
}
