//! A store whose batch appends wait for a permit, so a test can hold a lane mid-commit
//! while it queues more work behind it, or writes behind the lane's back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use factum::StoreError;
use factum::prelude::*;
use factum::store::StoreLayer;
use factum::store::{AppendError, AppendRequest, Appended};
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct Gate<S> {
    pub inner: S,
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    /// The size of each batch that reached the store, in order.
    pub sizes: Arc<std::sync::Mutex<Vec<usize>>>,
}

impl<S: EventStore> Gate<S> {
    pub fn new(inner: S) -> Self {
        Gate {
            inner,
            permits: Arc::new(Semaphore::new(0)),
            waiting: Arc::default(),
            sizes: Arc::default(),
        }
    }

    /// Lets `n` more batch appends through.
    pub fn open(&self, n: usize) {
        self.permits.add_permits(n);
    }

    /// Lets every batch append through from now on.
    pub fn open_all(&self) {
        self.permits.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    /// Waits until `n` batch appends are held at the gate.
    pub async fn until_waiting(&self, n: usize) {
        for _ in 0..2_000 {
            if self.waiting.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("no batch append reached the gate within 10 s");
    }

    pub fn sizes(&self) -> Vec<usize> {
        self.sizes.lock().unwrap().clone()
    }
}

impl<S: EventStore> StoreLayer for Gate<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.inner
    }

    async fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let permit = self.permits.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        permit
            .expect("the gate's semaphore is never closed")
            .forget();
        self.sizes.lock().unwrap().push(batch.len());
        self.inner.append_batch(batch).await
    }
}
