use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::PartitionLock;

/// Locks by key within one process: what an embedded store offers for
/// [`PartitionLocks::lock_partition`](super::PartitionLocks::lock_partition) when it is the only
/// process writing its log. Entries disappear when nobody holds or awaits them, so
/// the table stays as small as the set of keys in use.
#[derive(Clone, Debug, Default)]
pub struct KeyedLocks {
    table: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl KeyedLocks {
    /// An empty table.
    pub fn new() -> Self {
        KeyedLocks::default()
    }

    /// Waits for the lock on `key`, in the order callers asked for it (tokio's mutex is
    /// fair), and returns it held.
    pub async fn lock(&self, key: &str) -> PartitionLock {
        let entry = {
            let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
            table.entry(key.to_owned()).or_default().clone()
        };
        let guard = entry.lock_owned().await;
        let table = Arc::clone(&self.table);
        let key = key.to_owned();
        PartitionLock::new(move || {
            drop(guard);
            let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
            // Only the table's own reference left: no holder, no waiter (waiters clone
            // the entry under this same mutex).
            if table.get(&key).is_some_and(|e| Arc::strong_count(e) == 1) {
                table.remove(&key);
            }
            std::future::ready(())
        })
    }

    /// How many keys are held or awaited right now.
    pub fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no key is held or awaited.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_holder_per_key_and_the_table_empties() {
        let locks = KeyedLocks::new();
        let inside = Arc::new(AtomicU32::new(0));
        let most = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (locks, inside, most) = (locks.clone(), inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..20 {
                    let lock = locks.lock("hot").await;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    lock.release().await;
                }
            }));
        }
        // Another key is never held up by the hot one.
        let other = locks.lock("cold").await;
        other.release().await;
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(locks.is_empty(), "{} keys left", locks.len());
    }
}
