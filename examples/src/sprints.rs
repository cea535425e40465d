//! Sprint planning: a **policy** keeps two consistency boundaries in step after commit.
//!
//! Committing a backlog item to a sprint is one decision, on the item alone
//! ([`CommitItem`]); the sprint records the item in a decision of its own
//! ([`RecordSprintItem`]), which checks the sprint's capacity. No decision spans both:
//! the [`SprintPolicy`] listens for [`BacklogItemCommitted`]
//! and takes the sprint's decision, with an idempotency key derived from the event
//! ([`factum::listen::policy::reaction_key`]), so handling the event again after a crash
//! records nothing twice. When the sprint refuses (it is full, or was never planned),
//! the policy compensates: [`ReturnItem`] puts the item back in the backlog.
//!
//! ```
//! use factum::listen::Subscription;
//! use factum::prelude::*;
//! use factum_examples::sprints::{CommitItem, PlanSprint, SprintPolicy};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let engine = Engine::new(store.clone());
//! engine.decide(&PlanSprint { sprint: "s1".into(), capacity: 1 }).await.unwrap();
//! for item in ["login", "search"] {
//!     engine.decide(&CommitItem { item: item.into(), sprint: "s1".into() }).await.unwrap();
//! }
//! let mut policy = Subscription::listener(store.clone(), SprintPolicy::new(engine.clone()));
//! let progress = policy.catch_up().await.unwrap();
//! // `login` is recorded; `search` found the sprint full and went back to the backlog.
//! assert_eq!((progress.handled, progress.given_up), (1, 1));
//! # });
//! ```

use factum::listen::policy::{caused_by, decide_error, decision_error, reaction_key};
use factum::listen::{HandlerError, Listener};
use factum::prelude::*;

/// The events of sprint planning.
#[factum::events]
pub mod planning {
    /// A sprint was planned with room for a number of items.
    pub struct SprintPlanned {
        /// The sprint id.
        #[tag]
        pub sprint: String,
        /// How many items it takes.
        pub capacity: u32,
    }

    /// A backlog item was committed to a sprint (the item's decision). An integration
    /// event: the team's board shows it.
    #[event(public)]
    pub struct BacklogItemCommitted {
        /// The item id.
        #[tag]
        pub item: String,
        /// The sprint it is committed to (a tag, so the policy could filter by sprint).
        #[tag]
        pub sprint: String,
    }

    /// The sprint recorded an item (the sprint's decision, taken by the policy).
    pub struct SprintItemRecorded {
        /// The sprint id.
        #[tag]
        pub sprint: String,
        /// The item id.
        #[tag]
        pub item: String,
    }

    /// A committed item went back to the backlog: the sprint refused it.
    pub struct BacklogItemReturned {
        /// The item id.
        #[tag]
        pub item: String,
        /// The sprint that refused it.
        pub sprint: String,
        /// Why.
        pub reason: String,
    }
}

use planning::{BacklogItemCommitted, BacklogItemReturned, SprintItemRecorded, SprintPlanned};

/// Why a planning decision said no.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanningError {
    /// [`PlanSprint`] for a sprint that exists.
    #[error("sprint {0} is already planned")]
    AlreadyPlanned(String),
    /// [`RecordSprintItem`] for a sprint that was never planned.
    #[error("sprint {0} is not planned")]
    NoSuchSprint(String),
    /// [`RecordSprintItem`] for a full sprint.
    #[error("sprint {sprint} is full ({capacity} items)")]
    SprintFull {
        /// The sprint.
        sprint: String,
        /// Its capacity.
        capacity: u32,
    },
    /// [`CommitItem`] for an item already committed and not returned.
    #[error("item {item} is already committed to sprint {sprint}")]
    AlreadyCommitted {
        /// The item.
        item: String,
        /// Where it is committed.
        sprint: String,
    },
}

/// A sprint: whether it was planned, its capacity and how many items it recorded.
#[derive(State, Clone, Debug, Default, PartialEq, Eq)]
pub struct Sprint {
    /// The sprint id.
    #[id]
    pub sprint: String,
    /// Its capacity, once planned.
    pub capacity: Option<u32>,
    /// Items recorded.
    pub items: u32,
}

#[factum::fold]
impl Sprint {
    fn planned(&mut self, e: &SprintPlanned) {
        self.capacity = Some(e.capacity);
    }
    fn recorded(&mut self, _: &SprintItemRecorded) {
        self.items += 1;
    }
}

/// A backlog item: the sprint it is committed to, if any.
#[derive(State, Clone, Debug, Default, PartialEq, Eq)]
pub struct BacklogItem {
    /// The item id.
    #[id]
    pub item: String,
    /// The sprint it is committed to, until returned.
    pub sprint: Option<String>,
}

#[factum::fold]
impl BacklogItem {
    fn committed(&mut self, e: &BacklogItemCommitted) {
        self.sprint = Some(e.sprint.clone());
    }
    fn returned(&mut self, _: &BacklogItemReturned) {
        self.sprint = None;
    }
}

/// Plans a sprint.
#[derive(Decision, Clone, Debug)]
#[decision(partition = sprint, emits = [SprintPlanned])]
pub struct PlanSprint {
    /// The sprint id.
    pub sprint: String,
    /// How many items it takes.
    pub capacity: u32,
}

impl Decide for PlanSprint {
    type State = Sprint;
    type Event = planning::Event;
    type Error = PlanningError;

    fn state(&self) -> Sprint {
        Sprint::new(&self.sprint)
    }

    fn decide(&self, sprint: &Sprint) -> Result<Vec<planning::Event>, PlanningError> {
        if sprint.capacity.is_some() {
            return Err(PlanningError::AlreadyPlanned(self.sprint.clone()));
        }
        Ok(vec![
            SprintPlanned {
                sprint: self.sprint.clone(),
                capacity: self.capacity,
            }
            .into(),
        ])
    }
}

/// Commits a backlog item to a sprint: the item's decision alone; the sprint learns of
/// it through the [`SprintPolicy`].
#[derive(Decision, Clone, Debug)]
#[decision(partition = item, emits = [BacklogItemCommitted])]
pub struct CommitItem {
    /// The item id.
    pub item: String,
    /// The sprint.
    pub sprint: String,
}

impl Decide for CommitItem {
    type State = BacklogItem;
    type Event = planning::Event;
    type Error = PlanningError;

    fn state(&self) -> BacklogItem {
        BacklogItem::new(&self.item)
    }

    fn decide(&self, item: &BacklogItem) -> Result<Vec<planning::Event>, PlanningError> {
        if let Some(sprint) = &item.sprint {
            return Err(PlanningError::AlreadyCommitted {
                item: self.item.clone(),
                sprint: sprint.clone(),
            });
        }
        Ok(vec![
            BacklogItemCommitted {
                item: self.item.clone(),
                sprint: self.sprint.clone(),
            }
            .into(),
        ])
    }
}

/// The sprint records a committed item, if it is planned and has room.
#[derive(Decision, Clone, Debug, serde::Serialize)]
#[decision(partition = sprint, idempotency = request, emits = [SprintItemRecorded])]
pub struct RecordSprintItem {
    /// The sprint id.
    pub sprint: String,
    /// The item id.
    pub item: String,
    /// The idempotency key: the policy's reaction key for the commit event.
    pub request: String,
}

impl Decide for RecordSprintItem {
    type State = Sprint;
    type Event = planning::Event;
    type Error = PlanningError;

    fn state(&self) -> Sprint {
        Sprint::new(&self.sprint)
    }

    fn decide(&self, sprint: &Sprint) -> Result<Vec<planning::Event>, PlanningError> {
        let Some(capacity) = sprint.capacity else {
            return Err(PlanningError::NoSuchSprint(self.sprint.clone()));
        };
        if sprint.items >= capacity {
            return Err(PlanningError::SprintFull {
                sprint: self.sprint.clone(),
                capacity,
            });
        }
        Ok(vec![
            SprintItemRecorded {
                sprint: self.sprint.clone(),
                item: self.item.clone(),
            }
            .into(),
        ])
    }
}

/// Returns a committed item to the backlog: the compensation when its sprint refuses it.
#[derive(Decision, Clone, Debug, serde::Serialize)]
#[decision(partition = item, idempotency = request, emits = [BacklogItemReturned])]
pub struct ReturnItem {
    /// The item id.
    pub item: String,
    /// The sprint that refused it.
    pub sprint: String,
    /// Why.
    pub reason: String,
    /// The idempotency key: the policy's compensation key for the commit event.
    pub request: String,
}

impl Decide for ReturnItem {
    type State = BacklogItem;
    type Event = planning::Event;
    type Error = PlanningError;

    fn state(&self) -> BacklogItem {
        BacklogItem::new(&self.item)
    }

    fn decide(&self, item: &BacklogItem) -> Result<Vec<planning::Event>, PlanningError> {
        // Already back (or committed elsewhere since): nothing to undo.
        if item.sprint.as_deref() != Some(self.sprint.as_str()) {
            return Ok(Vec::new());
        }
        Ok(vec![
            BacklogItemReturned {
                item: self.item.clone(),
                sprint: self.sprint.clone(),
                reason: self.reason.clone(),
            }
            .into(),
        ])
    }
}

/// The policy: when an item is committed to a sprint, the sprint records it; when the
/// sprint refuses, the item goes back to the backlog.
pub struct SprintPolicy<S> {
    engine: Engine<S>,
}

impl<S> SprintPolicy<S> {
    /// The policy's name: the key of its checkpoint and of its decisions' idempotency keys.
    pub const NAME: &'static str = "sprint-records";

    /// The policy, deciding through `engine`.
    pub fn new(engine: Engine<S>) -> Self {
        SprintPolicy { engine }
    }
}

impl<S: EventStore + Send + Sync + 'static> Listener for SprintPolicy<S> {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn query(&self) -> Query {
        Query::of::<BacklogItemCommitted>()
    }

    async fn handle(&mut self, stored: &StoredEvent) -> Result<(), HandlerError> {
        let committed: BacklogItemCommitted = stored.decode()?;
        let record = RecordSprintItem {
            sprint: committed.sprint,
            item: committed.item,
            request: reaction_key(Self::NAME, stored),
        };
        self.engine
            .decide_with(&record, &caused_by(stored))
            .await
            .map(|_| ())
            .map_err(decide_error)
    }

    /// A refusal by the sprint is final: compensate by returning the item. Anything
    /// else (the store down beyond the retries, a bug) is left to the dead letters.
    async fn give_up(
        &mut self,
        stored: &StoredEvent,
        error: &HandlerError,
    ) -> Result<bool, HandlerError> {
        let Some(DecideError::Domain(_)) = decision_error::<PlanningError>(error) else {
            return Ok(false);
        };
        let committed: BacklogItemCommitted = stored.decode()?;
        let back = ReturnItem {
            item: committed.item,
            sprint: committed.sprint,
            reason: error.to_string(),
            request: reaction_key(&format!("{}/return", Self::NAME), stored),
        };
        self.engine
            .decide_with(&back, &caused_by(stored))
            .await
            .map_err(decide_error)?;
        Ok(true)
    }
}

/// Every event type, state and decision of sprint planning.
pub fn catalog() -> factum::Catalog {
    factum::Catalog::new()
        .events::<planning::Event>()
        .state::<Sprint>()
        .state::<BacklogItem>()
        .decision::<PlanSprint>()
        .decision::<CommitItem>()
        .decision::<RecordSprintItem>()
        .decision::<ReturnItem>()
}
