//! What a store keeps for listeners: checkpoints, dead letters, and a signal of new
//! commits.

use std::future::Future;
use std::time::SystemTime;

use tokio::sync::watch;

use super::{EventStore, StoreError};
use crate::model::Position;

/// An event a listener gave up on, kept until the application replays or drops it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id in the store.
    pub id: u64,
    /// The listener that failed.
    pub listener: String,
    /// The event's position in the log.
    pub position: Position,
    /// The event's type name.
    pub event_type: String,
    /// The last error, as text.
    pub error: String,
    /// How many times the listener tried.
    pub attempts: u32,
    /// When it was recorded.
    pub recorded_at: SystemTime,
}

/// A dead letter to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDeadLetter {
    /// The listener that failed.
    pub listener: String,
    /// The event's position.
    pub position: Position,
    /// The event's type name.
    pub event_type: String,
    /// The last error, as text.
    pub error: String,
    /// How many times the listener tried.
    pub attempts: u32,
}

/// A store that listeners can run against: it keeps each listener's checkpoint and dead
/// letters next to the events, and tells waiting listeners about new commits.
///
/// Every implementation must pass the listener cases of the conformance suite.
pub trait ListenerStore: EventStore {
    /// The position a listener has consumed up to (`None`: nothing yet).
    fn load_checkpoint(
        &self,
        listener: &str,
    ) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send;

    /// Records that `listener` has consumed everything up to `position`; `Position(0)`
    /// starts it over.
    fn save_checkpoint(
        &self,
        listener: &str,
        position: Position,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a dead letter and returns its id. A listener has at most one dead letter
    /// per position: recording another for the same listener and position replaces its
    /// error, attempts and time and keeps its id (an event that fails again after a
    /// restart, or in a batch read again after a failed commit, is one dead letter).
    fn record_dead_letter(
        &self,
        letter: NewDeadLetter,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The dead letters of `listener` (of every listener when `None`), oldest first.
    fn dead_letters(
        &self,
        listener: Option<&str>,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, StoreError>> + Send;

    /// Removes a dead letter; `false` when there was none with that id.
    fn remove_dead_letter(&self, id: u64) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A receiver whose value is the newest committed position the store knows of,
    /// changed after every commit, so listeners wait for news instead of polling. Stores
    /// shared between processes may learn of other processes' commits late (or, for an
    /// in-process signal, never): listeners also poll at an interval of their own.
    fn watch_head(&self) -> watch::Receiver<Option<Position>>;
}
