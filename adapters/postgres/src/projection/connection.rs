//! The sink's pooled connection and the batch's transaction on it: taken for a batch,
//! given back between batches, closed when in doubt.

use deadpool_postgres::Object;
use factum::StoreError;

use super::{PgProjection, PgProjectionSink, ProjectionError};

pub(super) fn backend(e: tokio_postgres::Error) -> StoreError {
    crate::error::db(e)
}

impl<P: PgProjection> PgProjectionSink<P> {
    /// Closes the connection (rolling back any transaction on it).
    pub(super) fn discard(&mut self) {
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
    pub(super) async fn client(&mut self) -> Result<(), StoreError> {
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
    pub(super) fn release(&mut self) {
        if !self.in_tx && !self.dirty {
            self.client = None;
        }
    }

    pub(super) fn lost(&self) -> ProjectionError {
        ProjectionError::TransactionLost(self.name.clone())
    }

    /// Opens the batch's transaction if none is.
    pub(super) async fn begin(&mut self) -> Result<(), StoreError> {
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
    pub(super) async fn abandon(&mut self) {
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
}
