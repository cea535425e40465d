//! Exactly-once projections: a read model in the store's database, written in the same
//! transaction as the projection's checkpoint.

mod batch;
mod connection;
mod sink;

use std::future::Future;

use factum::listen::HandlerError;
use factum::{Query, StoredEvent};
use tokio_postgres::Client;

pub use sink::PgProjectionSink;

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
