//! Which reads are planned for their own values.
//!
//! A read runs as a prepared statement, whose plan PostgreSQL caches per connection: after
//! a few executions one generic plan serves every state the statement reads. Planning
//! afresh costs more than most reads (a decision's read of a small state: about a fifth
//! of the decisions per second on distinct keys, measured). The cached plan walks each
//! tag's entries and fetches every event by its position, which a state's tail or a
//! small state wants; for a whole state of 100,000 events, the planner given the values
//! reads the table's pages that hold them and sorts, in a third of the server's time.
//! So a read from the start that returned many events once is planned for its values
//! from then on.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

/// A read returning at least this many events is planned for its values the next time.
pub(crate) const LARGE_READ: usize = 1_000;

/// How many large reads are remembered; past that the set starts afresh (a forgotten
/// read only runs once more on the cached plan).
const REMEMBERED: usize = 4_096;

/// The reads that returned at least [`LARGE_READ`] events, by [`LargeReads::key`].
#[derive(Default)]
pub(crate) struct LargeReads {
    seen: Mutex<HashSet<u64>>,
}

impl LargeReads {
    /// A read's identity: its statement and its query's values, not where it starts (a
    /// state read again from later on, after its snapshot, is the same read; only reads
    /// from the start are planned for their values, the others walk the tags' entries).
    pub(crate) fn key(text: &str, values: &[Vec<String>]) -> u64 {
        let mut hasher = DefaultHasher::new();
        text.hash(&mut hasher);
        values.hash(&mut hasher);
        hasher.finish()
    }

    /// Whether the read returned many events before.
    pub(crate) fn is_large(&self, key: u64) -> bool {
        self.lock().contains(&key)
    }

    /// Records that the read returned many events.
    pub(crate) fn remember(&self, key: u64) {
        let mut seen = self.lock();
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        seen.insert(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        // A set of hints: one a panicking holder left half-updated is still usable.
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_reads_are_remembered_by_statement_and_values() {
        let reads = LargeReads::default();
        let a = LargeReads::key("SELECT a", &[vec!["1:x:1".to_owned()]]);
        let b = LargeReads::key("SELECT a", &[vec!["1:x:2".to_owned()]]);
        let c = LargeReads::key("SELECT b", &[vec!["1:x:1".to_owned()]]);
        assert!(a != b && a != c);
        assert!(!reads.is_large(a));
        reads.remember(a);
        assert!(reads.is_large(a));
        assert!(!reads.is_large(b) && !reads.is_large(c));
        for k in 0..REMEMBERED as u64 {
            reads.remember(k.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        assert!(reads.lock().len() <= REMEMBERED, "bounded");
    }
}
