//! Snapshots: folded states saved next to the log, so a long state need not be folded
//! from its first event.

use std::future::Future;

use super::StoreError;
use crate::model::{Payload, Position};

/// A state folded up to a position, kept so that a later load reads only what follows.
///
/// A snapshot is a cache, never the truth: the engine ignores one whose query differs
/// from the state's current query or whose payload no longer decodes, and rebuilds it
/// from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Which state it holds: the state's name and ids (see `StateId::snapshot_key`).
    pub key: String,
    /// The query the state answers, as text; a snapshot for another query is stale.
    pub query: String,
    /// The position the folded state reflects: every matching event up to it, and no
    /// later one.
    pub position: Position,
    /// The encoded state.
    pub payload: Payload,
}

/// Where a store keeps snapshots. A snapshot is a cache: a store may keep none (the
/// default methods: nothing is found, saving does nothing), and states are then folded
/// from the log every time:
///
/// ```
/// # use factum::store::SnapshotStore;
/// struct Store;
/// impl SnapshotStore for Store {}
/// ```
pub trait SnapshotStore: Send + Sync {
    /// The snapshot saved under `key`, if any.
    fn load_snapshot(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        let _ = key;
        async { Ok(None) }
    }

    /// Saves `snapshot` under its key, replacing any earlier one (last writer wins: an
    /// older snapshot is still correct, only less useful).
    fn save_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = snapshot;
        async { Ok(()) }
    }
}
