//! Exactly-once projections: a read model in the store's database, written in the same
//! transaction as the projection's checkpoint.

use std::collections::BTreeSet;
use std::future::Future;

use deadpool_postgres::Object;
use factum::listen::{HandlerError, NewDeadLetter, Sink};
use factum::{Position, Query, StoreError, StoredEvent};
use tokio_postgres::Client;

use crate::PostgresStore;
use crate::listening::{checkpoint_position, load_checkpoint, record_dead_letter};
use crate::read::position_param;

/// A projection whose read model lives in the store's PostgreSQL database: it writes its
/// tables through the client it is given, inside the transaction that also moves its
/// checkpoint.
///
/// Run it with a [`PgProjectionSink`] in a [`Subscription`](factum::listen::Subscription).
pub trait PgProjection: Send + 'static {
    /// Its stable name: the key of its checkpoint and of its dead letters.
    fn name(&self) -> &str;

    /// The events it consumes.
    fn query(&self) -> Query;

    /// Applies one event to the read model through `client`, which is inside an open
    /// transaction (and a savepoint for this event): an error undoes everything this call
    /// wrote. Never run `BEGIN`, `COMMIT`, `ROLLBACK` or savepoint commands here, and
    /// write through `client` only (another connection is not in the transaction).
    fn apply(
        &mut self,
        client: &Client,
        event: &StoredEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Drops the read model (a rebuild follows), inside the transaction that sets the
    /// checkpoint back to the start.
    fn reset(&mut self, client: &Client) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Why a projection sink refused to go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// The batch's transaction was lost (its connection failed, a call was dropped
    /// midway, or the projection ended the transaction): nothing of the batch was kept,
    /// and the subscription must start over from the stored checkpoint.
    #[error(
        "the projection `{0}` lost its batch's transaction; it starts over from its checkpoint"
    )]
    TransactionLost(String),
}

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
/// dead letter and the commit that follow fail with [`ProjectionError::TransactionLost`]),
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
    store: PostgresStore,
    projection: P,
    name: String,
    query: Query,
    client: Option<Object>,
    /// A call started statements it did not finish (its future was dropped): the
    /// connection's state is unknown.
    dirty: bool,
    /// A transaction is open on the client.
    in_tx: bool,
    /// The open transaction was lost with work in it: refuse until the subscription
    /// starts over.
    poisoned: bool,
    /// The stored checkpoint (`None`: not known, load it before applying).
    committed: Option<Position>,
    /// Positions above the checkpoint with a dead letter of this projection.
    lettered: BTreeSet<Position>,
    /// The highest position applied or dead-lettered in the open transaction.
    touched: Option<Position>,
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

fn backend(e: tokio_postgres::Error) -> StoreError {
    crate::error::db(e)
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

    /// Closes the connection (rolling back any transaction on it).
    fn discard(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
        if self.touched.is_some() {
            self.poisoned = true;
        }
        self.dirty = false;
        self.in_tx = false;
        self.touched = None;
        // A dropped commit may or may not have happened.
        self.committed = None;
    }

    /// The client, fresh from the pool if the last one is gone or in doubt.
    async fn client(&mut self) -> Result<(), StoreError> {
        if self.dirty {
            tracing::debug!(projection = %self.name, "a call was dropped midway: closing its connection");
            self.discard();
        } else if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            // Its connection failed (and any transaction on it with it).
            self.discard();
        }
        if self.client.is_none() {
            self.client = Some(self.store.client().await?);
        }
        Ok(())
    }

    /// Gives the client back to the pool when no transaction is open on it (between
    /// batches), so a sink does not keep a pooled connection while it waits.
    fn release(&mut self) {
        if !self.in_tx && !self.dirty {
            self.client = None;
        }
    }

    fn lost(&self) -> ProjectionError {
        ProjectionError::TransactionLost(self.name.clone())
    }

    /// Opens the batch's transaction if none is.
    async fn begin(&mut self) -> Result<(), StoreError> {
        if !self.in_tx {
            // The client first: a client in doubt is closed there, and a dirty flag set
            // before would close the one just taken.
            self.client().await?;
            let Some(client) = &self.client else {
                return Err(StoreError::backend(self.lost()));
            };
            self.dirty = true;
            if let Err(e) = client.batch_execute("BEGIN").await {
                self.discard();
                return Err(backend(e));
            }
            self.in_tx = true;
            self.touched = None;
            self.dirty = false;
        }
        Ok(())
    }

    /// Rolls back the open transaction, if any (closing the connection if that fails),
    /// and forgets what it cached of the stored state (a dead letter deleted in the
    /// transaction is back: reload before the next event).
    async fn abandon(&mut self) {
        self.touched = None;
        self.committed = None;
        if self.in_tx
            && !self.dirty
            && let Some(client) = &self.client
        {
            self.dirty = true;
            if client.batch_execute("ROLLBACK").await.is_ok() {
                self.dirty = false;
                self.in_tx = false;
                return;
            }
        }
        if self.in_tx || self.dirty {
            self.discard();
        }
    }

    /// Loads the checkpoint and the dead letters above it.
    async fn load(&mut self) -> Result<Position, StoreError> {
        self.client().await?;
        let Some(client) = &self.client else {
            return Err(StoreError::backend(self.lost()));
        };
        let quoted = &self.store.inner.quoted;
        let committed = load_checkpoint(&***client, quoted, &self.name)
            .await?
            .unwrap_or(Position(0));
        let rows = client
            .query(
                &format!(
                    "SELECT position FROM {quoted}.dead_letters \
                     WHERE listener = $1 AND position > $2"
                ),
                &[&self.name, &position_param(committed)],
            )
            .await
            .map_err(backend)?;
        let mut lettered = BTreeSet::new();
        for row in rows {
            let position: i64 = row.try_get(0).map_err(backend)?;
            lettered.insert(checkpoint_position(position)?);
        }
        self.lettered = lettered;
        self.committed = Some(committed);
        Ok(committed)
    }

    async fn apply_event(&mut self, event: &StoredEvent) -> Result<(), HandlerError> {
        if self.poisoned {
            return Err(HandlerError::permanent(self.lost()));
        }
        if self.in_tx && !self.dirty && self.touched.is_some_and(|t| event.position <= t) {
            // The subscription started the batch over (a call of it was dropped).
            tracing::debug!(projection = %self.name, position = %event.position, "a batch starts over");
            self.abandon().await;
            self.poisoned = false;
        }
        if self.dirty {
            self.discard();
            if self.poisoned {
                return Err(HandlerError::permanent(self.lost()));
            }
        }
        let committed = match self.committed {
            Some(c) => c,
            None => match self.load().await {
                Ok(c) => c,
                Err(e) => {
                    self.release();
                    return Err(HandlerError::transient(e));
                }
            },
        };
        let replay = event.position <= committed;
        let lettered = replay || self.lettered.contains(&event.position);
        self.begin().await.map_err(HandlerError::transient)?;
        self.dirty = true;
        let outcome = self.in_savepoint(event, replay, lettered).await;
        let end = match &outcome {
            Ok(_) => "RELEASE SAVEPOINT factum_event",
            Err(_) => "ROLLBACK TO SAVEPOINT factum_event; RELEASE SAVEPOINT factum_event",
        };
        let Some(client) = &self.client else {
            return Err(HandlerError::permanent(self.lost()));
        };
        if let Err(error) = client.batch_execute(end).await {
            let error = crate::PostgresFailure::from(error);
            self.discard();
            if self.poisoned {
                tracing::warn!(projection = %self.name, error = %factum::ErrorChain(&error), "ending an event's savepoint failed: the batch is lost");
                return Err(HandlerError::permanent(self.lost()));
            }
            // Nothing of the batch was in the transaction yet: the retry starts over.
            tracing::debug!(projection = %self.name, error = %factum::ErrorChain(&error), "ending an event's savepoint failed: starting its transaction over");
            return Err(HandlerError::transient(self.lost()));
        }
        self.dirty = false;
        if outcome? {
            self.touched = self.touched.max(Some(event.position));
            self.lettered.remove(&event.position);
        }
        Ok(())
    }

    /// Applies `event` inside its savepoint; `Ok(false)` when it was skipped.
    async fn in_savepoint(
        &mut self,
        event: &StoredEvent,
        replay: bool,
        lettered: bool,
    ) -> Result<bool, HandlerError> {
        let Some(client) = &self.client else {
            return Err(HandlerError::permanent(self.lost()));
        };
        client
            .batch_execute("SAVEPOINT factum_event")
            .await
            .map_err(HandlerError::transient)?;
        if lettered {
            let removed = client
                .execute(
                    &format!(
                        "DELETE FROM {}.dead_letters WHERE listener = $1 AND position = $2",
                        self.store.inner.quoted
                    ),
                    &[&self.name, &position_param(event.position)],
                )
                .await
                .map_err(HandlerError::transient)?;
            if replay && removed == 0 {
                tracing::debug!(projection = %self.name, position = %event.position, "skipping an event consumed before");
                return Ok(false);
            }
        }
        self.projection.apply(client, event).await.map(|()| true)
    }

    async fn record(&mut self, letter: &NewDeadLetter) -> Result<(), StoreError> {
        if self.poisoned {
            return Err(StoreError::backend(self.lost()));
        }
        self.begin().await?;
        self.dirty = true;
        let Some(client) = &self.client else {
            return Err(StoreError::backend(self.lost()));
        };
        if let Err(e) = record_dead_letter(&***client, &self.store.inner.quoted, letter).await {
            self.discard();
            return Err(e);
        }
        self.dirty = false;
        if self.committed.is_none_or(|c| letter.position > c) {
            self.lettered.insert(letter.position);
        }
        self.touched = self.touched.max(Some(letter.position));
        Ok(())
    }

    async fn commit_at(&mut self, position: Position) -> Result<(), StoreError> {
        if self.poisoned || self.dirty {
            self.discard();
            self.poisoned = false;
            return Err(StoreError::backend(self.lost()));
        }
        self.begin().await?;
        self.dirty = true;
        let Some(client) = &self.client else {
            return Err(StoreError::backend(self.lost()));
        };
        let quoted = &self.store.inner.quoted;
        let stored = async {
            let stored: i64 = client
                .query_one(
                    &format!(
                        "INSERT INTO {quoted}.listener_checkpoints AS c (listener, position) \
                         VALUES ($1, $2) ON CONFLICT (listener) DO UPDATE \
                         SET position = greatest(c.position, excluded.position), updated_at = now() \
                         RETURNING position"
                    ),
                    &[&self.name, &position_param(position)],
                )
                .await?
                .try_get(0)?;
            client.batch_execute("COMMIT").await?;
            Ok::<_, tokio_postgres::Error>(stored)
        }
        .await;
        match stored {
            Ok(stored) => {
                // Committed: the flags first, whatever the stored value turns out to be.
                self.dirty = false;
                self.in_tx = false;
                self.touched = None;
                self.committed = None;
                self.release();
                let stored = checkpoint_position(stored)?;
                self.committed = Some(stored);
                self.lettered = self
                    .lettered
                    .split_off(&Position(stored.0.saturating_add(1)));
                Ok(())
            }
            Err(e) => {
                self.touched = None;
                self.discard();
                self.poisoned = false;
                Err(backend(e))
            }
        }
    }

    async fn reset_all(&mut self) -> Result<(), HandlerError> {
        self.abandon().await;
        self.poisoned = false;
        self.committed = None;
        self.begin().await.map_err(HandlerError::transient)?;
        self.dirty = true;
        let Some(client) = &self.client else {
            return Err(HandlerError::transient(self.lost()));
        };
        let quoted = &self.store.inner.quoted;
        let (projection, name) = (&mut self.projection, &self.name);
        let result = async {
            projection.reset(client).await?;
            client
                .execute(
                    &format!(
                        "INSERT INTO {quoted}.listener_checkpoints (listener, position) \
                         VALUES ($1, 0) ON CONFLICT (listener) DO UPDATE \
                         SET position = 0, updated_at = now()"
                    ),
                    &[name],
                )
                .await
                .map_err(HandlerError::transient)?;
            client
                .batch_execute("COMMIT")
                .await
                .map_err(HandlerError::transient)
        }
        .await;
        self.touched = None;
        match result {
            Ok(()) => {
                self.dirty = false;
                self.in_tx = false;
                self.release();
            }
            Err(_) => self.discard(),
        }
        result
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
