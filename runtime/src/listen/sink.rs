//! Where a subscription puts its effects and its checkpoint.

use std::future::Future;

use super::handler::{HandlerError, Listener};
use crate::model::{Position, Query, StoredEvent};
use crate::store::StoreError;
use crate::store::{ListenerStore, NewDeadLetter};

/// The consuming end of a [`Subscription`](super::Subscription): a listener with its
/// checkpoint and dead letters.
///
/// [`AtLeastOnce`] runs any [`Listener`] and saves the checkpoint after its effects.
/// Durable adapters add sinks that apply a batch's effects, its dead letters and its
/// checkpoint in one database transaction (exactly-once effect for projections kept in
/// the same database).
pub trait Sink: Send {
    /// The stable name of its checkpoint and dead letters.
    fn name(&self) -> &str;

    /// The events it consumes.
    fn query(&self) -> Query;

    /// The position consumed up to (`None`: nothing yet).
    fn checkpoint(&mut self) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send;

    /// Handles one event. A transactional sink applies it inside the open unit of work,
    /// all or nothing (a failed event leaves no trace).
    fn apply(
        &mut self,
        event: &StoredEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Asks the consumer whether it deals with an event that failed every attempt (see
    /// [`Listener::give_up`]).
    fn give_up(
        &mut self,
        event: &StoredEvent,
        error: &HandlerError,
    ) -> impl Future<Output = Result<bool, HandlerError>> + Send;

    /// Records a dead letter, in the same unit of work as the checkpoint that passes it.
    fn dead_letter(
        &mut self,
        letter: NewDeadLetter,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes the effects since the last commit durable, with the checkpoint at
    /// `position`.
    fn commit(&mut self, position: Position)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes the effects since the last commit durable without moving the checkpoint:
    /// what a replay of dead letters (events behind the checkpoint) ends with. Sinks that
    /// hold a unit of work open must override it; the default does nothing, which is
    /// right for sinks whose effects are done when `apply` returns.
    fn flush(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }

    /// Drops what was built and sets the checkpoint back to the start.
    fn reset(&mut self) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// A [`Listener`] whose checkpoint the store keeps, saved after its effects: after a
/// crash, the events since the last commit are handled again (at least once).
pub struct AtLeastOnce<S, L> {
    store: S,
    listener: L,
}

impl<S: ListenerStore, L: Listener> AtLeastOnce<S, L> {
    /// `listener`, checkpointed in `store`.
    pub fn new(store: S, listener: L) -> Self {
        AtLeastOnce { store, listener }
    }

    /// The listener.
    pub fn listener(&self) -> &L {
        &self.listener
    }

    /// The listener, to change.
    pub fn listener_mut(&mut self) -> &mut L {
        &mut self.listener
    }

    /// The listener, giving up the sink.
    pub fn into_listener(self) -> L {
        self.listener
    }
}

impl<S: ListenerStore, L: Listener> Sink for AtLeastOnce<S, L> {
    fn name(&self) -> &str {
        self.listener.name()
    }

    fn query(&self) -> Query {
        self.listener.query()
    }

    async fn checkpoint(&mut self) -> Result<Option<Position>, StoreError> {
        self.store.load_checkpoint(self.listener.name()).await
    }

    async fn apply(&mut self, event: &StoredEvent) -> Result<(), HandlerError> {
        self.listener.handle(event).await
    }

    async fn give_up(
        &mut self,
        event: &StoredEvent,
        error: &HandlerError,
    ) -> Result<bool, HandlerError> {
        self.listener.give_up(event, error).await
    }

    async fn dead_letter(&mut self, letter: NewDeadLetter) -> Result<(), StoreError> {
        self.store.record_dead_letter(letter).await.map(|_| ())
    }

    async fn commit(&mut self, position: Position) -> Result<(), StoreError> {
        self.store
            .save_checkpoint(self.listener.name(), position)
            .await
    }

    async fn reset(&mut self) -> Result<(), HandlerError> {
        self.listener.reset().await?;
        self.store
            .save_checkpoint(self.listener.name(), Position(0))
            .await
            .map_err(HandlerError::transient)
    }
}
