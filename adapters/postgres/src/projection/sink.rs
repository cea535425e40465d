//! The sink a subscription drives, and what it knows of its connection and batch.

use std::collections::BTreeSet;

use deadpool_postgres::Object;
use factum::listen::{HandlerError, NewDeadLetter, Sink};
use factum::{Position, Query, StoreError, StoredEvent};

use super::PgProjection;
use crate::PostgresStore;
use crate::listening::load_checkpoint;

/// A [`Sink`] applying a [`PgProjection`] **exactly once**: each batch of a subscription
/// runs in one transaction on a connection of the store's pool, each event under a
/// savepoint (a failed event leaves no trace and its retry starts clean); the batch's
/// dead letters are inserted in that transaction, and the commit upserts the checkpoint
/// and commits — the read model and the checkpoint move together. A crash, a failed
/// commit or a sink dropped mid-batch loses the whole batch (a connection left inside a
/// transaction is closed, never returned to the pool), which the subscription then reads
/// again from the stored checkpoint.
///
/// The sink holds its pooled connection from a batch's first event to its commit only:
/// between batches (after a commit, a reset, a checkpoint load) it gives it back, so it
/// never starves the pool of the subscription's own reads and dead-letter calls, even
/// with a pool of one connection. A batch in progress does hold one: size the pool for
/// the sinks running batches at once plus the store's other work (and see
/// [`PostgresOptions::pool_wait_timeout`](crate::PostgresOptions::pool_wait_timeout)).
///
/// If the connection fails mid-batch, the batch is lost when work of it was in the
/// transaction: the sink refuses the rest of the batch (`apply` fails permanently, the
/// dead letter and the commit that follow fail with
/// [`ProjectionError::TransactionLost`](crate::ProjectionError::TransactionLost)),
/// and the subscription, run again, reads the batch again from the stored checkpoint. A
/// failure before any work of the batch (its first event) is transient: the retry starts
/// a new transaction.
///
/// It also guards against events delivered again: one at or below the stored checkpoint
/// is applied only if it is a dead letter of this projection (a replay), and then its
/// dead letter is deleted in the same transaction; otherwise it is skipped. The
/// checkpoint only moves forward, except on [`reset`](Sink::reset).
///
/// The transaction stays open from a batch's first event to its commit, retries'
/// backoff included: keep batches and retry delays short.
pub struct PgProjectionSink<P> {
    pub(super) store: PostgresStore,
    pub(super) projection: P,
    pub(super) name: String,
    pub(super) query: Query,
    pub(super) client: Option<Object>,
    /// A call started statements it did not finish (its future was dropped): the
    /// connection's state is unknown.
    pub(super) dirty: bool,
    /// A transaction is open on the client.
    pub(super) in_tx: bool,
    /// The open transaction was lost with work in it: refuse until the subscription
    /// starts over.
    pub(super) poisoned: bool,
    /// The stored checkpoint (`None`: not known, load it before applying).
    pub(super) committed: Option<Position>,
    /// Positions above the checkpoint with a dead letter of this projection.
    pub(super) lettered: BTreeSet<Position>,
    /// The highest position applied or dead-lettered in the open transaction.
    pub(super) touched: Option<Position>,
}

impl<P> Drop for PgProjectionSink<P> {
    fn drop(&mut self) {
        if (self.in_tx || self.dirty)
            && let Some(client) = self.client.take()
        {
            // Closing the connection rolls its transaction back; pooled, it would hand the
            // open transaction to the next user.
            drop(Object::take(client));
        }
    }
}

impl<P: PgProjection> PgProjectionSink<P> {
    /// A sink for `projection` on `store`'s database; it takes a connection from the
    /// store's pool for each batch and gives it back after.
    pub fn new(store: PostgresStore, projection: P) -> Self {
        let name = projection.name().to_owned();
        let query = projection.query();
        PgProjectionSink {
            store,
            projection,
            name,
            query,
            client: None,
            dirty: false,
            in_tx: false,
            poisoned: false,
            committed: None,
            lettered: BTreeSet::new(),
            touched: None,
        }
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The projection, to change.
    pub fn projection_mut(&mut self) -> &mut P {
        &mut self.projection
    }
}

impl<P: PgProjection> Sink for PgProjectionSink<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn query(&self) -> Query {
        self.query.clone()
    }

    /// Drops any open batch (the subscription starts over from the stored checkpoint).
    async fn checkpoint(&mut self) -> Result<Option<Position>, StoreError> {
        self.abandon().await;
        self.poisoned = false;
        let loaded = self.load().await;
        let stored = match (&loaded, &self.client) {
            (Ok(_), Some(client)) => {
                load_checkpoint(&***client, &self.store.inner.quoted, &self.name).await
            }
            (Ok(_), None) => Err(StoreError::backend(self.lost())),
            (Err(_), _) => Ok(None),
        };
        self.release();
        loaded?;
        stored
    }

    async fn apply(&mut self, event: &StoredEvent) -> Result<(), HandlerError> {
        self.apply_event(event).await
    }

    async fn give_up(&mut self, _: &StoredEvent, _: &HandlerError) -> Result<bool, HandlerError> {
        Ok(false)
    }

    async fn dead_letter(&mut self, letter: NewDeadLetter) -> Result<(), StoreError> {
        self.record(&letter).await
    }

    async fn commit(&mut self, position: Position) -> Result<(), StoreError> {
        self.commit_at(position).await
    }

    /// The checkpoint only moves forward (`greatest`), so committing at 0 commits the
    /// work without moving it.
    async fn flush(&mut self) -> Result<(), StoreError> {
        self.commit_at(Position(0)).await
    }

    async fn reset(&mut self) -> Result<(), HandlerError> {
        self.reset_all().await
    }
}
