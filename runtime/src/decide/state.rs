use super::StateInfo;
use crate::model::{DecodeError, Query, QueryItem, StoredEvent, Tag};

/// When a state keeps snapshots: `#[state(snapshot_every = N, snapshot_version = V)]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Save a new snapshot once a load has folded at least this many events past the
    /// last one.
    pub every: u64,
    /// Part of the snapshot's key: bump it when a fold handler's logic changes, so
    /// snapshots folded by the old logic are no longer used.
    pub version: u32,
}

/// The identity half of a state, derived by `#[derive(State)]`: its name and the `#[id]`
/// fields that become its query's tags.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not derive `State`",
    label = "not a state: no `#[derive(State)]`",
    note = "add `#[derive(State)]` to the state struct, with `#[id]` on the fields that name its entity"
)]
pub trait StateId: Send + Sync + 'static {
    /// The state's name, for the catalog and errors.
    const NAME: &'static str;
    /// The tag keys of its `#[id]` fields, in declaration order.
    const ID_KEYS: &'static [&'static str];

    /// The tags its `#[id]` fields give.
    fn ids(&self) -> Vec<Tag>;

    /// Whether `tags` contain every id tag of this state (allocation-free).
    fn has_ids(&self, tags: &[Tag]) -> bool;

    /// Whether it equals `other`, field by field: whether two states built by
    /// `Decide::state` start from the same value. A warm copy (a serial lane's, a
    /// snapshot) stands in for a state only when the state it was folded from is the
    /// same start, since fields a command sets (a clock, a window, a limit) change what
    /// the fold computes. `#[derive(State)]` compares every field with `PartialEq`; the
    /// default, for a hand-written impl, says `false`, so nothing cached ever stands in.
    fn same_start(&self, other: &Self) -> bool
    where
        Self: Sized,
    {
        let _ = other;
        false
    }

    /// Whether and how often it keeps snapshots; `None` (the default) never.
    const SNAPSHOT: Option<SnapshotPolicy> = None;

    /// The state encoded for a snapshot (JSON), when it keeps snapshots.
    fn to_snapshot(&self) -> Result<Vec<u8>, String> {
        Err(format!("{} keeps no snapshots", Self::NAME))
    }

    /// The state decoded from a snapshot, when it keeps snapshots.
    fn from_snapshot(_bytes: &[u8]) -> Result<Self, String>
    where
        Self: Sized,
    {
        Err(format!("{} keeps no snapshots", Self::NAME))
    }

    /// The key its snapshots are stored under: its name, snapshot version and ids.
    fn snapshot_key(&self) -> String {
        let ids: Vec<String> = self.ids().iter().map(ToString::to_string).collect();
        let version = Self::SNAPSHOT.map_or(0, |p| p.version);
        let ids = serde_json::to_string(&ids).unwrap_or_default();
        format!("{}@{version} {ids}", Self::NAME)
    }
}

/// One state of a [`StateSet`](super::StateSet), seen through what snapshots need (object safe, so a set
/// can hand out its members one by one).
pub trait SnapshotSlot {
    /// Its policy, if it keeps snapshots.
    fn policy(&self) -> Option<SnapshotPolicy>;
    /// The key of its snapshot.
    fn key(&self) -> String;
    /// What a snapshot of it is stored with and must match on load, taken from the state
    /// as `Decide::state` built it: its query and that whole starting value, encoded, so
    /// a snapshot folded from another start (a command's clock, a limit) is never
    /// restored in its place. `None` when the start does not come back equal from its
    /// encoding (a `#[serde(skip)]` field, say): snapshots are then not used for it.
    fn query_text(&self) -> Option<String>;
    /// The state encoded.
    fn encode(&self) -> Result<Vec<u8>, String>;
    /// Replaces the state with the decoded snapshot; `false`, leaving it untouched, when
    /// the bytes do not decode (the state's shape changed).
    fn restore(&mut self, bytes: &[u8]) -> bool;
}

impl<S: State> SnapshotSlot for S {
    fn policy(&self) -> Option<SnapshotPolicy> {
        S::SNAPSHOT
    }

    fn key(&self) -> String {
        self.snapshot_key()
    }

    fn query_text(&self) -> Option<String> {
        let start = self.to_snapshot().ok()?;
        let back = S::from_snapshot(&start).ok()?;
        if !back.same_start(self) {
            return None;
        }
        let start = String::from_utf8(start).ok()?;
        Some(format!("{} start {start}", State::query(self)))
    }

    fn encode(&self) -> Result<Vec<u8>, String> {
        self.to_snapshot()
    }

    fn restore(&mut self, bytes: &[u8]) -> bool {
        match S::from_snapshot(bytes) {
            // The key holds the ids, but a snapshot is a cache: trust it only for these.
            Ok(state) if state.ids() == self.ids() => {
                *self = state;
                true
            }
            _ => false,
        }
    }
}

/// A state folded from the events that match its query, implemented by `#[factum::fold]`
/// on the state's `impl` block: one handler method per event type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a factum state",
    label = "not a state",
    note = "derive `State` on the struct and put `#[factum::fold]` on an `impl` block with one handler per event type"
)]
pub trait State: StateId {
    /// The event types it has handlers for: its query's types.
    const TYPES: &'static [&'static str];

    /// The event types whose handlers read the stored event (its position, time or
    /// metadata), not only its payload. An [`State::ANY_TYPE`] state's `#[any]` handler
    /// reads the stored event of every type outside [`State::TYPES`], without their
    /// being listed here.
    const READS_STORED: &'static [&'static str] = &[];

    /// Whether it folds every event carrying its id tags, whatever the type (a fold with
    /// an `#[any]` handler): its query then names no type, and [`State::TYPES`] lists
    /// only the types its typed handlers take.
    const ANY_TYPE: bool = false;

    /// Folds one event of its query into the state.
    fn apply(&mut self, event: &StoredEvent) -> Result<(), DecodeError>;

    /// Its query: its event types (every type, for an [`State::ANY_TYPE`] state),
    /// restricted to its id tags.
    fn query(&self) -> Query {
        let types = crate::decide::foldable::query_types(Self::TYPES, Self::ANY_TYPE);
        Query::item(QueryItem::types(types.iter().copied()).with_tags(self.ids()))
    }

    /// Whether `event` matches its query.
    fn matches(&self, event: &StoredEvent) -> bool {
        (Self::ANY_TYPE || Self::TYPES.contains(&event.event_type.as_str()))
            && self.has_ids(&event.tags)
    }

    /// Catalog entry.
    fn info() -> StateInfo {
        StateInfo {
            name: Self::NAME,
            types: Self::TYPES,
            any_type: Self::ANY_TYPE,
            id_keys: Self::ID_KEYS,
        }
    }
}

/// Which event types a decision removes from its validation query, and from which of
/// its states' queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exclusions {
    /// The excluded event types.
    pub types: &'static [&'static str],
    /// The states (by name) whose queries lose them; `None`: every state's.
    pub only_in: Option<&'static [&'static str]>,
}

impl Exclusions {
    /// No exclusion.
    pub const NONE: Exclusions = Exclusions {
        types: &[],
        only_in: None,
    };

    /// Whether the state called `state` loses the excluded types.
    pub fn applies_to(&self, state: &str) -> bool {
        !self.types.is_empty() && self.only_in.is_none_or(|only| only.contains(&state))
    }
}
