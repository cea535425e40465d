//! Partition locks: what the store-lock strategy holds around a decision.

use std::future::Future;

use super::StoreError;

/// A lock on a partition key held in the store, released by [`PartitionLock::release`]
/// (or, failing that, when dropped: the release then runs on a spawned task).
///
/// See [`PartitionLocks::lock_partition`](PartitionLocks::lock_partition).
#[must_use = "the lock is released when dropped"]
pub struct PartitionLock {
    release: Option<Release>,
}

type Release = Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()> + Send>;

impl PartitionLock {
    /// A held lock, released by running `release`.
    pub fn new<F>(release: impl FnOnce() -> F + Send + 'static) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        PartitionLock {
            release: Some(Box::new(move || Box::pin(release()))),
        }
    }

    /// Releases the lock and waits until the store has released it.
    pub async fn release(mut self) {
        if let Some(release) = self.release.take() {
            release().await;
        }
    }
}

impl Drop for PartitionLock {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(release());
                }
                Err(_) => tracing::warn!(
                    "a partition lock was dropped outside a tokio runtime; the store releases it when its connection closes"
                ),
            }
        }
    }
}

impl std::fmt::Debug for PartitionLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLock")
            .field("held", &self.release.is_some())
            .finish()
    }
}

/// Locks on partition keys that every process sharing the store respects. A store
/// without them keeps the default, and the store-lock strategy then runs decisions
/// optimistically:
///
/// ```
/// # use factum::store::PartitionLocks;
/// struct Store;
/// impl PartitionLocks for Store {}
/// ```
pub trait PartitionLocks: Send + Sync {
    /// Takes a lock on `key` that every process sharing the store respects, waiting
    /// while another holder has it: the store-lock strategy holds it around a decision's
    /// read, decide and append, so decisions on one partition key run one at a time
    /// across processes without conflicts. `Ok(None)` means the store has no such locks
    /// (the default); the caller then runs the decision optimistically.
    fn lock_partition(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<PartitionLock>, StoreError>> + Send {
        let _ = key;
        async { Ok(None) }
    }
}
