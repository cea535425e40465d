//! A worker: consumes the partitions it owns (and stands by for the others), deciding
//! each command through a dispatcher.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use factum::lanes::Dispatcher;
use factum::{Decide, EventStore};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::broker::{ensure_consumer, ensure_stream};
use super::consume::consume_partition;
use super::handler::Handlers;
use super::server::check_server;
use super::{LanesError, LanesOptions};

/// What a worker's partition loops share.
pub(crate) struct Shared<S> {
    pub(crate) id: String,
    pub(crate) nats: async_nats::Client,
    pub(crate) jetstream: jetstream::Context,
    pub(crate) dispatcher: Dispatcher<S>,
    pub(crate) handlers: Handlers<S>,
    pub(crate) options: LanesOptions,
    pub(crate) stats: Counters,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) redelivered: AtomicU64,
    pub(crate) committed: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) handed_back: AtomicU64,
}

/// What a worker has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkerStats {
    /// Commands delivered to it.
    pub received: u64,
    /// Of those, deliveries after the first (the broker redelivered them).
    pub redelivered: u64,
    /// Commands it committed (or found nothing to do for).
    pub committed: u64,
    /// Commands answered with an earlier commit's outcome (same idempotency key).
    pub replayed: u64,
    /// Commands the domain refused.
    pub refused: u64,
    /// Commands that failed for another reason, for good (on their last delivery, or
    /// a failure that would repeat).
    pub failed: u64,
    /// Deliveries that failed for a reason that may pass (the store, a conflict), handed
    /// back to be delivered again later.
    #[serde(default)]
    pub retried: u64,
    /// Commands of an unknown decision, or unreadable.
    pub rejected: u64,
    /// Commands handed back to the broker unanswered because it was shutting down (or
    /// its dispatcher was): received but not yet handed to the dispatcher.
    pub handed_back: u64,
}

impl Counters {
    fn snapshot(&self) -> WorkerStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        WorkerStats {
            received: get(&self.received),
            redelivered: get(&self.redelivered),
            committed: get(&self.committed),
            replayed: get(&self.replayed),
            refused: get(&self.refused),
            failed: get(&self.failed),
            retried: get(&self.retried),
            rejected: get(&self.rejected),
            handed_back: get(&self.handed_back),
        }
    }
}

/// A running worker: pulls its partitions' commands, decides them through its
/// [`Dispatcher`], replies, acknowledges. Started with [`Worker::builder`].
///
/// Dropping it stops the pulling too, without waiting; [`Worker::shutdown`] waits until
/// every command it received is answered.
pub struct Worker<S> {
    shared: Arc<Shared<S>>,
    owned: Vec<u32>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl<S> std::fmt::Debug for Worker<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.shared.id)
            .field("owned", &self.owned)
            .field("consumers", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl<S: EventStore + Clone + 'static> Worker<S> {
    /// A worker on the connection `nats`, deciding on `dispatcher`'s store, for the lanes
    /// of `options`. By default it owns every partition, with no standby; register the
    /// decision types it handles with [`WorkerBuilder::handle`].
    pub fn builder(
        nats: async_nats::Client,
        dispatcher: Dispatcher<S>,
        options: LanesOptions,
    ) -> WorkerBuilder<S> {
        WorkerBuilder {
            nats,
            dispatcher,
            options,
            id: None,
            owned: None,
            standby: false,
            standby_after: Duration::from_secs(2),
            handlers: Handlers::new(),
        }
    }

    /// Its id, sent with every reply.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The partitions it owns (pulls from the start).
    pub fn owned(&self) -> &[u32] {
        &self.owned
    }

    /// The dispatcher it decides through.
    pub fn dispatcher(&self) -> &Dispatcher<S> {
        &self.shared.dispatcher
    }

    /// What it has done so far.
    pub fn stats(&self) -> WorkerStats {
        self.shared.stats.snapshot()
    }

    /// Stops pulling, finishes the commands it had handed to its dispatcher (at most
    /// [`LanesOptions::max_in_flight`] per partition), hands the others it received back
    /// to the broker (nak, also those arriving until its last pull request ends: up to a
    /// third of the pin TTL), flushes its answers and returns its final stats. Commands
    /// it never received stay in the stream for the next worker; the pins of its
    /// partitions expire after [`LanesOptions::pinned_ttl`].
    pub async fn shutdown(mut self) -> WorkerStats {
        self.stop.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            if let Err(e) = task.await {
                tracing::error!(worker = %self.shared.id, error = %factum::ErrorChain(&e), "a partition loop failed");
            }
        }
        // Replies, acknowledgements and naks are published without waiting: send them.
        if let Err(e) = self.shared.nats.flush().await {
            tracing::warn!(worker = %self.shared.id, error = %factum::ErrorChain(&e), "cannot flush the last answers");
        }
        self.stats()
    }
}

impl<S> Drop for Worker<S> {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Configures a [`Worker`]: its id, the partitions it owns, whether it stands by for the
/// others, and the decision types it handles.
pub struct WorkerBuilder<S> {
    nats: async_nats::Client,
    dispatcher: Dispatcher<S>,
    options: LanesOptions,
    id: Option<String>,
    owned: Option<Vec<u32>>,
    standby: bool,
    standby_after: Duration,
    handlers: Handlers<S>,
}

impl<S: EventStore + Clone + 'static> WorkerBuilder<S> {
    /// Its id, sent with every reply (default: `worker-<process id>-<random>`).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The partitions it owns: it pulls them from the start, and gets their pin unless
    /// another worker holds it (default: all of them).
    pub fn partitions(mut self, partitions: impl IntoIterator<Item = u32>) -> Self {
        let mut owned: Vec<u32> = partitions.into_iter().collect();
        owned.sort_unstable();
        owned.dedup();
        self.owned = Some(owned);
        self
    }

    /// Whether it also pulls the partitions it does not own, on standby: it gets one's
    /// pin when the worker holding it stops pulling (dies) for
    /// [`LanesOptions::pinned_ttl`] (default: no).
    pub fn standby(mut self, standby: bool) -> Self {
        self.standby = standby;
        self
    }

    /// How long after starting it begins standing by, so that the owners starting with it
    /// pin their partitions first (default: 2 s).
    pub fn standby_after(mut self, delay: Duration) -> Self {
        self.standby_after = delay;
        self
    }

    /// Handles commands of decision type `D` (named `D::META.name` on the wire). A
    /// command of a type no handler was registered for is answered
    /// [`LanesError::UnknownDecision`].
    pub fn handle<D: Decide + DeserializeOwned>(mut self) -> Self {
        self.handlers.add::<D>();
        self
    }

    /// Checks the server, creates the stream and the partitions' consumers where missing,
    /// and starts pulling.
    pub async fn start(self) -> Result<Worker<S>, LanesError> {
        let options = self.options;
        options.validate()?;
        check_server(&self.nats)?;
        let all: Vec<u32> = (0..options.partitions).collect();
        let owned = self.owned.unwrap_or_else(|| all.clone());
        if let Some(outside) = owned.iter().find(|p| **p >= options.partitions) {
            return Err(LanesError::Options(format!(
                "partition {outside} is not below the {} partitions",
                options.partitions
            )));
        }
        let id = self.id.unwrap_or_else(|| {
            let unique = self.nats.new_inbox();
            let suffix = unique.rsplit('.').next().unwrap_or_default();
            format!("worker-{}-{suffix}", std::process::id())
        });
        let jetstream = jetstream::new(self.nats.clone());
        let stream = ensure_stream(&jetstream, &options).await?;
        let names = self.handlers.names();
        if names.is_empty() {
            tracing::warn!(worker = %id, "a worker handles no decision type");
        }
        let shared = Arc::new(Shared {
            id,
            jetstream: jetstream.clone(),
            nats: self.nats,
            dispatcher: self.dispatcher,
            handlers: self.handlers,
            options,
            stats: Counters::default(),
        });
        let (stop, stopping) = watch::channel(false);
        let standby: Vec<u32> = if self.standby {
            all.into_iter().filter(|p| !owned.contains(p)).collect()
        } else {
            Vec::new()
        };
        let mut tasks = Vec::with_capacity(owned.len() + standby.len());
        for (partitions, delay) in [(&owned, Duration::ZERO), (&standby, self.standby_after)] {
            for &partition in partitions {
                let consumer = ensure_consumer(&stream, &shared.options, partition).await?;
                tasks.push(tokio::spawn(consume_partition(
                    Arc::clone(&shared),
                    stream.clone(),
                    Some(consumer),
                    partition,
                    delay,
                    stopping.clone(),
                )));
            }
        }
        tracing::info!(
            worker = %shared.id,
            owned = ?owned,
            standby = ?standby,
            decisions = ?names,
            "worker started"
        );
        Ok(Worker {
            shared,
            owned,
            stop,
            tasks,
        })
    }
}
