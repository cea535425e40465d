use std::sync::atomic::{AtomicU64, Ordering};

use super::Engine;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) committed: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) conflicts: AtomicU64,
    pub(crate) events_read: AtomicU64,
    pub(crate) snapshots_restored: AtomicU64,
    pub(crate) snapshots_saved: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) batches: AtomicU64,
}

/// What an engine (and its clones) did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Decisions that committed (including those that decided nothing needs to happen).
    pub committed: u64,
    /// Decisions the domain rejected.
    pub rejected: u64,
    /// Appends refused by their condition, each followed by a retry or a
    /// [`DecideError::Conflict`](crate::decide::DecideError::Conflict). Rejected decisions may have had conflicts too.
    pub conflicts: u64,
    /// Events read from the store to fold states (by decisions and [`Engine::load`]).
    pub events_read: u64,
    /// States restored from a snapshot instead of folded from the start.
    pub snapshots_restored: u64,
    /// Snapshots saved.
    pub snapshots_saved: u64,
    /// Decisions answered with the first outcome of their idempotency key.
    pub replayed: u64,
    /// Store transactions serial lanes committed (each holding one or more decisions).
    pub batches: u64,
}

impl EngineStats {
    /// What happened between `earlier` (an older reading of the same engine) and this
    /// reading.
    pub fn since(&self, earlier: &EngineStats) -> EngineStats {
        EngineStats {
            committed: self.committed.saturating_sub(earlier.committed),
            rejected: self.rejected.saturating_sub(earlier.rejected),
            conflicts: self.conflicts.saturating_sub(earlier.conflicts),
            events_read: self.events_read.saturating_sub(earlier.events_read),
            snapshots_restored: self
                .snapshots_restored
                .saturating_sub(earlier.snapshots_restored),
            snapshots_saved: self.snapshots_saved.saturating_sub(earlier.snapshots_saved),
            replayed: self.replayed.saturating_sub(earlier.replayed),
            batches: self.batches.saturating_sub(earlier.batches),
        }
    }
}

impl<S> Engine<S> {
    /// Counts of committed and rejected decisions and of conflicts so far.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            committed: self.stats.committed.load(Ordering::Relaxed),
            rejected: self.stats.rejected.load(Ordering::Relaxed),
            conflicts: self.stats.conflicts.load(Ordering::Relaxed),
            events_read: self.stats.events_read.load(Ordering::Relaxed),
            snapshots_restored: self.stats.snapshots_restored.load(Ordering::Relaxed),
            snapshots_saved: self.stats.snapshots_saved.load(Ordering::Relaxed),
            replayed: self.stats.replayed.load(Ordering::Relaxed),
            batches: self.stats.batches.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.stats
    }
}
