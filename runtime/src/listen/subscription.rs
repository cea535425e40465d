//! Runs a sink over the log: catch-up from its checkpoint, live tailing, retries, dead
//! letters, rebuilds.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use futures::future::{Either, select};
use futures::{FutureExt, TryStreamExt};
use tracing::{debug, warn};

use super::handler::{HandlerError, Listener};
use super::sink::{AtLeastOnce, Sink};
use super::store::{ListenerStore, NewDeadLetter};
use crate::decide::RetryPolicy;
use crate::model::{Position, Query, StoredEvent};
use crate::store::{ReadOptions, StoreError};

/// What a subscription does with an event that failed every attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnFailure {
    /// Record a dead letter and go on with the next event.
    #[default]
    DeadLetterAndContinue,
    /// Record a dead letter and stop, with the checkpoint just before the event, so
    /// nothing after it is handled out of order.
    DeadLetterAndStop,
}

/// How a subscription reads, retries and waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriptionOptions {
    /// Events read and committed at a time.
    pub batch: usize,
    /// Attempts per event: `max_retries` after the first, with backoff between.
    pub retry: RetryPolicy,
    /// What an event that failed every attempt leads to.
    pub on_failure: OnFailure,
    /// How often to look for new events when no commit signal came: commits by other
    /// processes may not be signalled.
    pub poll_interval: Duration,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        SubscriptionOptions {
            batch: 256,
            retry: RetryPolicy {
                max_retries: 5,
                min_delay: Duration::from_millis(10),
                max_delay: Duration::from_secs(1),
            },
            on_failure: OnFailure::default(),
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// Why a subscription stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// The store failed; nothing after the last commit counts as consumed.
    #[error("subscription `{listener}`: {source}")]
    Store {
        /// The listener.
        listener: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// An event failed every attempt under [`OnFailure::DeadLetterAndStop`]; it is a dead
    /// letter and the checkpoint is just before it.
    #[error("subscription `{listener}` stopped at {event_type} at {position}: {error}")]
    Failed {
        /// The listener.
        listener: String,
        /// The event's position.
        position: Position,
        /// The event's type.
        event_type: String,
        /// The last error.
        error: String,
    },
    /// The consumer could not be reset for a rebuild.
    #[error("subscription `{listener}` could not reset for a rebuild: {source}")]
    Reset {
        /// The listener.
        listener: String,
        /// The cause.
        #[source]
        source: HandlerError,
    },
}

/// What a catch-up or a replay did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Events handled.
    pub handled: u64,
    /// Events that became dead letters.
    pub dead_lettered: u64,
    /// Events whose failure the consumer dealt with itself ([`Listener::give_up`]).
    pub given_up: u64,
    /// The checkpoint now (`Position(0)`: nothing consumed).
    pub position: Position,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            handled: 0,
            dead_lettered: 0,
            given_up: 0,
            position: Position(0),
        }
    }
}

/// A sink consuming the log: in position order, from its checkpoint, committing after
/// each batch.
///
/// Run one subscription per listener name at a time: two would handle the same events
/// and race on the checkpoint.
pub struct Subscription<St, K> {
    store: St,
    sink: K,
    options: SubscriptionOptions,
    query: Query,
    position: Option<Position>,
    /// Dead letters of this listener past its checkpoint (left by a stop, or by a batch
    /// whose commit failed), by position: the normal run reaches those events again, and
    /// removes the letter of each it then handles.
    ahead: std::collections::BTreeMap<Position, u64>,
    /// Letters of `ahead` whose events the current batch handled.
    cleared: Vec<u64>,
}

impl<St: ListenerStore, L: Listener> Subscription<St, AtLeastOnce<St, L>> {
    /// Runs `listener` at least once, its checkpoint and dead letters in `store`.
    pub fn listener(store: St, listener: L) -> Self
    where
        St: Clone,
    {
        let sink = AtLeastOnce::new(store.clone(), listener);
        Subscription::new(store, sink)
    }
}

impl<St: ListenerStore, K: Sink> Subscription<St, K> {
    /// Runs `sink` over `store`'s log.
    pub fn new(store: St, sink: K) -> Self {
        let query = sink.query();
        Subscription {
            store,
            sink,
            options: SubscriptionOptions::default(),
            query,
            position: None,
            ahead: std::collections::BTreeMap::new(),
            cleared: Vec::new(),
        }
    }

    /// Consumes the events after `position` instead of after the stored checkpoint (a
    /// catch-up from any position, say to re-project a stretch of the log); the commits
    /// then store the checkpoint as usual (sinks whose checkpoint only moves forward keep
    /// the higher one).
    pub fn starting_after(mut self, position: Position) -> Self {
        self.position = Some(position);
        self
    }

    /// Other options.
    pub fn with_options(mut self, options: SubscriptionOptions) -> Self {
        self.options = options;
        self
    }

    /// The sink.
    pub fn sink(&self) -> &K {
        &self.sink
    }

    /// The sink, to change.
    pub fn sink_mut(&mut self) -> &mut K {
        &mut self.sink
    }

    /// The sink, giving up the subscription.
    pub fn into_sink(self) -> K {
        self.sink
    }

    fn store_error(&self, source: StoreError) -> SubscriptionError {
        SubscriptionError::Store {
            listener: self.sink.name().to_owned(),
            source,
        }
    }

    /// The checkpoint, loaded once.
    async fn position(&mut self) -> Result<Position, SubscriptionError> {
        if let Some(p) = self.position {
            return Ok(p);
        }
        let loaded = self
            .sink
            .checkpoint()
            .await
            .map_err(|e| self.store_error(e))?
            .unwrap_or(Position(0));
        self.ahead = self
            .store
            .dead_letters(Some(self.sink.name()))
            .await
            .map_err(|e| self.store_error(e))?
            .into_iter()
            .filter(|l| l.position > loaded)
            .map(|l| (l.position, l.id))
            .collect();
        self.cleared.clear();
        self.position = Some(loaded);
        Ok(loaded)
    }

    /// Handles the next batch after the checkpoint and commits it; returns how many
    /// events it read.
    async fn step(&mut self, progress: &mut Progress) -> Result<usize, SubscriptionError> {
        let after = self.position().await?;
        let options = ReadOptions {
            from: Some(after.next()),
            backwards: false,
            limit: Some(self.options.batch.max(1)),
        };
        let events: Vec<StoredEvent> = self
            .store
            .read(&self.query, options)
            .try_collect()
            .await
            .map_err(|e| self.store_error(e))?;
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(0);
        };
        for event in &events {
            if let Err(failure) = self.handle(event, progress).await {
                // Commit what came before it, so the stop leaves no gap.
                let before = Position(event.position.0.saturating_sub(1)).max(after);
                self.commit(before).await?;
                return Err(failure);
            }
        }
        self.commit(last).await?;
        progress.position = last;
        // The letters of events handled now, removed once their handling is committed
        // (not before: a transactional sink holds the database meanwhile).
        for id in std::mem::take(&mut self.cleared) {
            self.store
                .remove_dead_letter(id)
                .await
                .map_err(|e| self.store_error(e))?;
        }
        Ok(events.len())
    }

    async fn commit(&mut self, position: Position) -> Result<(), SubscriptionError> {
        if let Err(e) = self.sink.commit(position).await {
            // The sink dropped the batch's work: read it again from the last commit.
            self.position = None;
            return Err(self.store_error(e));
        }
        self.position = Some(position);
        Ok(())
    }

    /// Handles one event with retries; a failure after the last attempt is a dead
    /// letter (or dealt with by the consumer), and an error only under
    /// [`OnFailure::DeadLetterAndStop`].
    async fn handle(
        &mut self,
        event: &StoredEvent,
        progress: &mut Progress,
    ) -> Result<(), SubscriptionError> {
        let mut delays = self.options.retry.delays();
        let mut attempts = 0u32;
        let error = loop {
            attempts += 1;
            match self.sink.apply(event).await {
                Ok(()) => {
                    progress.handled += 1;
                    if let Some(id) = self.ahead.remove(&event.position) {
                        self.cleared.push(id);
                    }
                    return Ok(());
                }
                Err(error) if error.transient => match delays.next() {
                    Some(delay) => {
                        debug!(listener = self.sink.name(), position = %event.position, attempts, %error, "retrying an event");
                        tokio::time::sleep(delay).await;
                    }
                    None => break error,
                },
                Err(error) => break error,
            }
        };
        match self.sink.give_up(event, &error).await {
            Ok(true) => {
                progress.given_up += 1;
                return Ok(());
            }
            Ok(false) => {}
            Err(e) => {
                warn!(listener = self.sink.name(), position = %event.position, error = %e, "giving up on an event failed too")
            }
        }
        warn!(listener = self.sink.name(), position = %event.position, event_type = %event.event_type, attempts, %error, "event goes to the dead letters");
        let letter = NewDeadLetter {
            listener: self.sink.name().to_owned(),
            position: event.position,
            event_type: event.event_type.clone(),
            error: error.to_string(),
            attempts,
        };
        self.sink
            .dead_letter(letter)
            .await
            .map_err(|e| self.store_error(e))?;
        progress.dead_lettered += 1;
        match self.options.on_failure {
            OnFailure::DeadLetterAndContinue => Ok(()),
            OnFailure::DeadLetterAndStop => Err(SubscriptionError::Failed {
                listener: self.sink.name().to_owned(),
                position: event.position,
                event_type: event.event_type.clone(),
                error: error.to_string(),
            }),
        }
    }

    /// Consumes every event committed so far, then returns.
    pub async fn catch_up(&mut self) -> Result<Progress, SubscriptionError> {
        let mut progress = Progress {
            position: self.position().await?,
            ..Progress::default()
        };
        while self.step(&mut progress).await? > 0 {}
        Ok(progress)
    }

    /// Consumes the log and then waits for new commits (signalled by the store, or
    /// found at each poll interval), until `stop` completes or an error stops it.
    pub async fn run(
        &mut self,
        stop: impl Future<Output = ()>,
    ) -> Result<Progress, SubscriptionError> {
        let mut stop = pin!(stop);
        let mut head = self.store.watch_head();
        let mut progress = Progress {
            position: self.position().await?,
            ..Progress::default()
        };
        loop {
            // Marks the current head seen before reading, so a commit after the read
            // wakes the wait below.
            head.borrow_and_update();
            // A batch runs to its commit: stopping is checked between batches.
            let read = self.step(&mut progress).await?;
            if stop.as_mut().now_or_never().is_some() {
                return Ok(progress);
            }
            if read >= self.options.batch.max(1) {
                continue;
            }
            let poll = self.options.poll_interval;
            let wait = pin!(async {
                // A store whose signal is gone: poll, don't spin.
                if let Ok(Err(_)) = tokio::time::timeout(poll, head.changed()).await {
                    tokio::time::sleep(poll).await;
                }
            });
            if let Either::Right(_) = select(wait, stop.as_mut()).await {
                return Ok(progress);
            }
        }
    }

    /// Starts over: resets the consumer (drops its read model) and the checkpoint, then
    /// consumes the whole log.
    pub async fn rebuild(&mut self) -> Result<Progress, SubscriptionError> {
        if let Err(source) = self.sink.reset().await {
            return Err(SubscriptionError::Reset {
                listener: self.sink.name().to_owned(),
                source,
            });
        }
        // Its old dead letters go: the rebuild handles their events again.
        let letters = self
            .store
            .dead_letters(Some(self.sink.name()))
            .await
            .map_err(|e| self.store_error(e))?;
        for letter in letters {
            self.store
                .remove_dead_letter(letter.id)
                .await
                .map_err(|e| self.store_error(e))?;
        }
        self.ahead.clear();
        self.position = Some(Position(0));
        self.catch_up().await
    }

    /// Handles this listener's dead letters again, oldest first, those at or before its
    /// checkpoint (the ones past it are the normal run's to reach), without moving the
    /// checkpoint: each that succeeds now is removed; the others stay.
    pub async fn replay_dead_letters(&mut self) -> Result<Progress, SubscriptionError> {
        // The stored checkpoint, not a cached one, to tell the letters behind it.
        self.position = None;
        let position = self.position().await?;
        let mut progress = Progress {
            position,
            ..Progress::default()
        };
        let letters = self
            .store
            .dead_letters(Some(self.sink.name()))
            .await
            .map_err(|e| self.store_error(e))?;
        for letter in letters.into_iter().filter(|l| l.position <= position) {
            let read = ReadOptions {
                from: Some(letter.position),
                backwards: false,
                limit: Some(1),
            };
            let found: Vec<StoredEvent> = self
                .store
                .read(&Query::all(), read)
                .try_collect()
                .await
                .map_err(|e| self.store_error(e))?;
            let Some(event) = found.into_iter().find(|e| e.position == letter.position) else {
                warn!(listener = self.sink.name(), position = %letter.position, "a dead letter's event is not in the log");
                continue;
            };
            let mut delays = self.options.retry.delays();
            let outcome = loop {
                match self.sink.apply(&event).await {
                    Ok(()) => break Ok(()),
                    Err(e) if e.transient => match delays.next() {
                        Some(delay) => tokio::time::sleep(delay).await,
                        None => break Err(e),
                    },
                    Err(e) => break Err(e),
                }
            };
            // Durable before the letter goes; a failed attempt left nothing to keep.
            self.sink.flush().await.map_err(|e| self.store_error(e))?;
            match outcome {
                Ok(()) => {
                    self.store
                        .remove_dead_letter(letter.id)
                        .await
                        .map_err(|e| self.store_error(e))?;
                    progress.handled += 1;
                }
                Err(error) => {
                    warn!(listener = self.sink.name(), position = %letter.position, %error, "a dead letter failed again");
                    progress.dead_lettered += 1;
                }
            }
        }
        Ok(progress)
    }
}
