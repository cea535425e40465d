//! Runs a sink over the log: catch-up from its checkpoint, live tailing, retries, dead
//! letters, rebuilds.

use std::future::Future;
use std::pin::pin;

use futures::future::{Either, select};
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tracing::{Instrument, debug, warn};

use super::handler::Listener;
use super::sink::{AtLeastOnce, Sink};
use crate::model::{DecodeError, Position, Query, StoredEvent};
use crate::store::{ListenerStore, NewDeadLetter};
use crate::store::{ReadOptions, StoreError};
use crate::telemetry;

mod replay;
mod types;

pub use types::{OnFailure, Progress, SubscriptionError, SubscriptionOptions};

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
    /// The checkpoint as committed, for those waiting on the sink's work.
    committed: watch::Sender<Position>,
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
            committed: watch::Sender::new(Position(0)),
        }
    }

    /// The position up to which the sink's work is committed (its checkpoint), as it
    /// moves: what a reader of a read model waits on to see its own writes. A write at
    /// position `p` of an event the sink consumes is in the read model once this is at
    /// `p` or past it.
    ///
    /// ```
    /// # async fn example(mut subscription: factum::listen::Subscription<factum::MemoryStore, impl factum::listen::Sink>, written: factum::Position) {
    /// let mut committed = subscription.committed();
    /// // ... `subscription.run(stop)` on a task of its own ...
    /// committed.wait_for(|at| *at >= written).await.ok();
    /// # }
    /// ```
    pub fn committed(&self) -> watch::Receiver<Position> {
        self.committed.subscribe()
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
        self.committed.send_replace(loaded);
        Ok(loaded)
    }

    /// Handles the next batch after the checkpoint and commits it; returns how many
    /// records it read.
    async fn step(&mut self, progress: &mut Progress) -> Result<usize, SubscriptionError> {
        let after = self.position().await?;
        let span =
            tracing::debug_span!("listener_batch", listener = self.sink.name(), after = %after);
        self.step_after(after, progress).instrument(span).await
    }

    async fn step_after(
        &mut self,
        after: Position,
        progress: &mut Progress,
    ) -> Result<usize, SubscriptionError> {
        let (events, unreadable) = self.read_batch(after).await?;
        for event in &events {
            if let Err(failure) = self.handle(event, progress).await {
                return Err(self.stop_before(event.position, after, failure).await);
            }
        }
        let mut read = events.len();
        let mut last = events.last().map(|e| e.position);
        if let Some(record) = unreadable {
            if let Err(failure) = self.unreadable(&record, progress).await {
                return Err(self.stop_before(record.position, after, failure).await);
            }
            read += 1;
            last = Some(record.position);
        }
        let Some(last) = last else {
            return Ok(0);
        };
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
        Ok(read)
    }

    /// The next batch after `after`, up to the first record the store cannot read as an
    /// event (a row naming an unknown codec, say), returned apart: the batch ends there,
    /// and the next one reads on after it.
    async fn read_batch(
        &self,
        after: Position,
    ) -> Result<(Vec<StoredEvent>, Option<DecodeError>), SubscriptionError> {
        let options = ReadOptions {
            from: Some(after.next()),
            backwards: false,
            limit: Some(self.options.batch.max(1)),
        };
        let mut records = pin!(self.store.read(&self.query, options));
        let mut events = Vec::new();
        while let Some(record) = records.next().await {
            match record {
                Ok(event) => events.push(event),
                // Only a record the batch can pass: one past everything read so far.
                Err(StoreError::Corrupt(error))
                    if error.position > events.last().map_or(after, |e| e.position) =>
                {
                    return Ok((events, Some(error)));
                }
                Err(e) => return Err(self.store_error(e)),
            }
        }
        Ok((events, None))
    }

    /// Commits what came before a failed record at `position`, so the stop leaves no
    /// gap; returns the failure (or the commit's).
    async fn stop_before(
        &mut self,
        position: Position,
        after: Position,
        failure: SubscriptionError,
    ) -> SubscriptionError {
        let before = Position(position.0.saturating_sub(1)).max(after);
        match self.commit(before).await {
            Ok(()) => {
                // The letter just recorded is past the checkpoint: reload the letters
                // ahead with it, so the run that handles its event later removes it.
                self.position = None;
                failure
            }
            Err(e) => e,
        }
    }

    async fn commit(&mut self, position: Position) -> Result<(), SubscriptionError> {
        if let Err(e) = self.sink.commit(position).await {
            // The sink dropped the batch's work: read it again from the last commit.
            self.position = None;
            return Err(self.store_error(e));
        }
        self.position = Some(position);
        self.committed.send_if_modified(|committed| {
            let moved = position > *committed;
            if moved {
                *committed = position;
            }
            moved
        });
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
                        debug!(listener = self.sink.name(), position = %event.position, attempts, error = %crate::ErrorChain(&error), "retrying an event");
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
                warn!(listener = self.sink.name(), position = %event.position, error = %crate::ErrorChain(&e), "giving up on an event failed too")
            }
        }
        warn!(listener = self.sink.name(), position = %event.position, event_type = %event.event_type, attempts, error = %crate::ErrorChain(&error), "event goes to the dead letters");
        let letter = NewDeadLetter {
            listener: self.sink.name().to_owned(),
            position: event.position,
            event_type: event.event_type.clone(),
            error: crate::ErrorChain(&error).to_string(),
            attempts,
        };
        self.dead_letter(letter, progress).await
    }

    /// A record the store cannot read as an event: no retry reads it differently, and
    /// there is no event to give the consumer's [`give_up`](Sink::give_up), so it is a
    /// dead letter at once, naming what the store could read of it.
    async fn unreadable(
        &mut self,
        record: &DecodeError,
        progress: &mut Progress,
    ) -> Result<(), SubscriptionError> {
        warn!(listener = self.sink.name(), position = %record.position, event_type = %record.event_type, error = %crate::ErrorChain(&record), "an unreadable record goes to the dead letters");
        let letter = NewDeadLetter {
            listener: self.sink.name().to_owned(),
            position: record.position,
            event_type: record.event_type.clone(),
            error: crate::ErrorChain(&record).to_string(),
            attempts: 1,
        };
        self.dead_letter(letter, progress).await
    }

    /// Records a dead letter; an error only under [`OnFailure::DeadLetterAndStop`].
    async fn dead_letter(
        &mut self,
        letter: NewDeadLetter,
        progress: &mut Progress,
    ) -> Result<(), SubscriptionError> {
        let (position, event_type, error) = (
            letter.position,
            letter.event_type.clone(),
            letter.error.clone(),
        );
        self.sink
            .dead_letter(letter)
            .await
            .map_err(|e| self.store_error(e))?;
        progress.dead_lettered += 1;
        match self.options.on_failure {
            OnFailure::DeadLetterAndContinue => Ok(()),
            OnFailure::DeadLetterAndStop => Err(SubscriptionError::Failed {
                listener: self.sink.name().to_owned(),
                position,
                event_type,
                error,
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
            // A batch short of full read everything there was: caught up. A full one may
            // have more behind it, up to the head (events of other queries included).
            let lag = match *head.borrow() {
                Some(head) if read >= self.options.batch.max(1) => {
                    head.0.saturating_sub(progress.position.0)
                }
                _ => 0,
            };
            telemetry::listener_lag(self.sink.name(), lag);
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
}
