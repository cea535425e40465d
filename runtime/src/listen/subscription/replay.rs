//! Going back over the log: rebuilds, and replays of dead letters.

use std::pin::pin;

use futures::StreamExt;
use tracing::warn;

use super::{Progress, Subscription, SubscriptionError};
use crate::listen::sink::Sink;
use crate::model::{DecodeError, Position, Query, StoredEvent};
use crate::store::ListenerStore;
use crate::store::{ReadOptions, StoreError};

/// What the log holds at a dead letter's position.
enum Found {
    /// The event, readable.
    Event(Box<StoredEvent>),
    /// A record the store cannot read back as an event.
    Unreadable(DecodeError),
    /// Nothing: the event is not in the log.
    Missing,
}

impl<St: ListenerStore, K: Sink> Subscription<St, K> {
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
        // The read model is empty again: readers wait for the rebuild to reach them.
        self.committed.send_replace(Position(0));
        self.catch_up().await
    }

    /// Handles this listener's dead letters again, oldest first, those at or before its
    /// checkpoint (the ones past it are the normal run's to reach), without moving the
    /// checkpoint: each that succeeds now is removed; the others stay, among them those
    /// of records the store still cannot read.
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
            let event = match self.find(letter.position).await? {
                Found::Event(event) => event,
                Found::Unreadable(error) => {
                    warn!(listener = self.sink.name(), position = %letter.position, error = %crate::ErrorChain(&error), "a dead letter's record is still unreadable");
                    progress.dead_lettered += 1;
                    continue;
                }
                Found::Missing => {
                    warn!(listener = self.sink.name(), position = %letter.position, "a dead letter's event is not in the log");
                    continue;
                }
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
                    warn!(listener = self.sink.name(), position = %letter.position, error = %crate::ErrorChain(&error), "a dead letter failed again");
                    progress.dead_lettered += 1;
                }
            }
        }
        Ok(progress)
    }

    /// The record at `position`, of any type.
    async fn find(&self, position: Position) -> Result<Found, SubscriptionError> {
        let read = ReadOptions {
            from: Some(position),
            backwards: false,
            limit: Some(1),
        };
        let all = Query::all();
        let mut records = pin!(self.store.read(&all, read));
        let first = records.next().await;
        Ok(match first {
            None => Found::Missing,
            Some(Ok(event)) if event.position == position => Found::Event(Box::new(event)),
            Some(Ok(_)) => Found::Missing,
            // A store that could not even read the position may be naming this one.
            Some(Err(StoreError::Corrupt(error)))
                if error.position == position || error.position == Position(0) =>
            {
                Found::Unreadable(error)
            }
            Some(Err(StoreError::Corrupt(_))) => Found::Missing,
            Some(Err(e)) => return Err(self.store_error(e)),
        })
    }
}
