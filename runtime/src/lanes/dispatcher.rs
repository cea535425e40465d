use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::job::Pending;
use super::lane::{Lane, Queued};
use super::router::{Route, Router};
use super::{LaneOptions, Strategy};
use crate::decide::{Context, Decide, DecideError, Engine, Outcome};
use crate::store::EventStore;
use crate::telemetry::{self, Answered};

/// Runs decisions under the strategy their metadata asks for (serial lanes for those
/// with a partition key, optimistic otherwise), or the one the application set for
/// them: [`Dispatcher::set_strategy`], or per call with [`Dispatcher::decide_using`].
///
/// Cloning gives another handle on the same lanes. Needs a tokio runtime (its lanes are
/// tasks) with the timer enabled.
pub struct Dispatcher<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for Dispatcher<S> {
    fn clone(&self) -> Self {
        Dispatcher {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<S> {
    engine: Engine<S>,
    options: LaneOptions,
    lanes: RwLock<Vec<mpsc::Sender<Queued<S>>>>,
    router: Mutex<Router>,
    strategies: RwLock<HashMap<&'static str, Strategy>>,
    closing: watch::Sender<Option<Drain>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// What a shutdown does with decisions still queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drain {
    /// Decide and commit every queued decision, then stop.
    Finish,
    /// Answer every queued decision with [`DecideError::Stopped`] without running it
    /// (a batch already sent to the store completes and is answered).
    Reject,
}

/// A decision to queue once its lane has room.
type Waiting<S> = (mpsc::Sender<Queued<S>>, Queued<S>);

impl<S: EventStore + Clone + 'static> Dispatcher<S> {
    /// A dispatcher over `engine`'s store with default lanes.
    pub fn new(engine: Engine<S>) -> Self {
        Dispatcher::with_options(engine, LaneOptions::default())
    }

    /// A dispatcher with lanes sized by `options`. Lanes start when the first decision
    /// needs them.
    pub fn with_options(engine: Engine<S>, options: LaneOptions) -> Self {
        let (closing, _) = watch::channel(None);
        Dispatcher {
            inner: Arc::new(Inner {
                engine,
                options,
                lanes: RwLock::new(Vec::new()),
                router: Mutex::new(Router::new(options.lanes, options.hot_lanes)),
                strategies: RwLock::new(HashMap::new()),
                closing,
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The engine it runs optimistic and store-lock decisions on (and whose counters
    /// the lanes add to).
    pub fn engine(&self) -> &Engine<S> {
        &self.inner.engine
    }

    /// Runs every decision of type `D` under `strategy` from now on.
    pub fn set_strategy<D: Decide>(&self, strategy: Strategy) {
        self.inner
            .strategies
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(D::META.name, strategy);
    }

    /// The strategy decisions of type `D` run under.
    pub fn strategy_for<D: Decide>(&self) -> Strategy {
        self.inner
            .strategies
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(D::META.name)
            .copied()
            .unwrap_or_else(|| Strategy::for_meta(&D::META))
    }

    /// Decides and commits `decision` under its strategy.
    pub async fn decide<D: Decide>(
        &self,
        decision: D,
    ) -> Result<Outcome<D::Event>, DecideError<D::Error>> {
        let strategy = self.strategy_for::<D>();
        self.decide_using(decision, strategy, Context::default())
            .await
    }

    /// Decides and commits `decision` under `strategy`, recording `context` in its
    /// events' metadata. Serial lanes and the store lock need a partition key; a
    /// decision without one runs optimistically.
    pub async fn decide_using<D: Decide>(
        &self,
        decision: D,
        strategy: Strategy,
        context: Context,
    ) -> Result<Outcome<D::Event>, DecideError<D::Error>> {
        if self.inner.closing.borrow().is_some() {
            telemetry::answered(D::META.name, Answered::Failed, Instant::now());
            return Err(DecideError::Stopped {
                decision: D::META.name,
            });
        }
        match strategy {
            Strategy::Optimistic => self.inner.engine.decide_with(&decision, &context).await,
            Strategy::StoreLock => self.inner.engine.decide_locked(&decision, &context).await,
            Strategy::SerialLanes => match decision.partition_key() {
                Some(key) => self.in_lane(decision, &key, context).await,
                None => self.inner.engine.decide_with(&decision, &context).await,
            },
        }
    }

    async fn in_lane<D: Decide>(
        &self,
        decision: D,
        key: &str,
        context: Context,
    ) -> Result<Outcome<D::Event>, DecideError<D::Error>> {
        let (reply, answer) = oneshot::channel();
        let job = Queued::Decision(Box::new(Pending::new(decision, context, reply)));
        if let Some((sender, job)) = self.route(key, job) {
            // The lane's queue is full: wait, back-pressure on the submitter.
            if sender.send(job).await.is_err() {
                return Err(DecideError::Stopped {
                    decision: D::META.name,
                });
            }
        }
        answer.await.unwrap_or(Err(DecideError::LaneFailed {
            decision: D::META.name,
        }))
    }

    /// Queues `job` on the lane of `key`; when that lane's queue is full (or closed),
    /// returns it with the lane to wait on. The queueing happens under the router's lock,
    /// so a key handed over to a hot lane never gets a decision queued on its old lane
    /// after the hand-over's barrier (unless the old queue was full then).
    fn route(&self, key: &str, job: Queued<S>) -> Option<Waiting<S>> {
        let options = self.inner.options;
        let lanes = options.lanes.max(1);
        let started = self
            .inner
            .lanes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        if started < lanes {
            let mut current = self
                .inner
                .lanes
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            while current.len() < lanes {
                let sender = self.spawn_lane(current.len(), None);
                current.push(sender);
            }
        }
        let mut router = self
            .inner
            .router
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let index = match router.route(key) {
            Route::To(index) => index,
            Route::Promote { from, hash } => {
                let mut current = self
                    .inner
                    .lanes
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                let (signal, start) = oneshot::channel();
                // A full queue: the router asks again at a later submission.
                if current[from].try_send(Queued::HandOver(signal)).is_ok() {
                    let index = current.len();
                    let sender = self.spawn_lane(index, Some(start));
                    current.push(sender);
                    router.promoted(hash, index);
                    tracing::debug!(lane = index, "hot partition key gets a lane of its own");
                    index
                } else {
                    from
                }
            }
        };
        let current = self
            .inner
            .lanes
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let sender = current[index.min(current.len() - 1)].clone();
        drop(current);
        let waiting = match sender.try_send(job) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => {
                Some((sender, job))
            }
        };
        drop(router);
        waiting
    }

    fn spawn_lane(
        &self,
        id: usize,
        start_after: Option<oneshot::Receiver<()>>,
    ) -> mpsc::Sender<Queued<S>> {
        let options = self.inner.options;
        let (sender, queue) = mpsc::channel(options.queue.max(1));
        if self.inner.closing.borrow().is_some() {
            // Shutting down: a lane that never runs, whose queue refuses every decision.
            return sender;
        }
        let mut lane = Lane::new(
            id,
            self.inner.engine.clone(),
            queue,
            self.inner.closing.subscribe(),
            options.max_batch,
            options.warm_states,
        );
        lane.start_after = start_after;
        let task = tokio::spawn(
            lane.run()
                .instrument(tracing::debug_span!("lane", lane = id)),
        );
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task);
        sender
    }

    /// Decisions waiting in the lanes' queues right now (not counting those a lane is
    /// deciding or committing).
    pub fn queued(&self) -> usize {
        self.inner
            .lanes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|lane| lane.max_capacity() - lane.capacity())
            .sum()
    }

    /// Whether [`Dispatcher::shutdown`] has begun: decisions submitted from now on get
    /// [`DecideError::Stopped`].
    pub fn is_shutting_down(&self) -> bool {
        self.inner.closing.borrow().is_some()
    }

    /// How many lanes run now (hot-key lanes included).
    pub fn lanes(&self) -> usize {
        self.inner
            .lanes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Stops accepting decisions (they get [`DecideError::Stopped`]), finishes or
    /// rejects what is queued per `drain`, and waits for every lane to stop. Every
    /// decision submitted before is answered: committed, refused, or stopped — none is
    /// left without an answer or half-applied.
    pub async fn shutdown(&self, drain: Drain) {
        self.inner.closing.send_replace(Some(drain));
        // A lane spawned while the shutdown began is awaited too.
        loop {
            let tasks: Vec<JoinHandle<()>> = std::mem::take(
                &mut *self
                    .inner
                    .tasks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                if let Err(e) = task.await {
                    tracing::error!(error = %crate::ErrorChain(&e), "a lane failed");
                }
            }
        }
    }
}
