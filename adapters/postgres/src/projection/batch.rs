//! One batch's work in its transaction: loading the checkpoint, each event under a
//! savepoint, the dead letters, the commit that moves the checkpoint, and a reset.

use std::collections::BTreeSet;

use factum::listen::{HandlerError, NewDeadLetter};
use factum::{Position, StoreError, StoredEvent};

use super::connection::backend;
use super::{PgProjection, PgProjectionSink};
use crate::listening::{checkpoint_position, load_checkpoint, record_dead_letter};
use crate::read::position_param;

impl<P: PgProjection> PgProjectionSink<P> {
    /// Loads the checkpoint and the dead letters above it.
    pub(super) async fn load(&mut self) -> Result<Position, StoreError> {
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

    pub(super) async fn apply_event(&mut self, event: &StoredEvent) -> Result<(), HandlerError> {
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

    pub(super) async fn record(&mut self, letter: &NewDeadLetter) -> Result<(), StoreError> {
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

    pub(super) async fn commit_at(&mut self, position: Position) -> Result<(), StoreError> {
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

    pub(super) async fn reset_all(&mut self) -> Result<(), HandlerError> {
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
