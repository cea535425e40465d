//! Exactly-once projections: a read model in the store's own file, written in the same
//! transaction as the projection's checkpoint.

mod sink;
mod unit;
mod watchdog;

use factum::listen::HandlerError;
use factum::{Query, StoredEvent};
use rusqlite::Connection;

pub use sink::SqliteProjectionSink;

/// A projection whose read model lives in the store's SQLite file: its tables are written
/// on the connection it is given, inside the transaction that also moves its checkpoint.
///
/// Run it with a [`SqliteProjectionSink`] in a
/// [`Subscription`](factum::listen::Subscription).
pub trait SqliteProjection: Send + 'static {
    /// Its stable name: the key of its checkpoint and of its dead letters.
    fn name(&self) -> &str;

    /// The events it consumes.
    fn query(&self) -> Query;

    /// Applies one event to the read model through `conn`, which is inside an open
    /// transaction (and a savepoint for this event): an error undoes everything this call
    /// wrote. Never begin, commit or roll back a transaction here.
    fn apply(&mut self, conn: &Connection, event: &StoredEvent) -> Result<(), HandlerError>;

    /// Drops the read model (a rebuild follows), inside the transaction that sets the
    /// checkpoint back to the start.
    fn reset(&mut self, conn: &Connection) -> Result<(), HandlerError>;
}
