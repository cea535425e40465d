//! When a batch fails as a whole for a reason the server gives, its requests one by one.
//!
//! Every limit a client can know of is checked before any SQL
//! ([`prepare_append`](factum::store::prepare_append)). What is left is what only the
//! server knows: a trigger, a constraint or a permission of the database's own, a limit of
//! a changed configuration. Such a refusal of the batch's statement (an `ERROR` with a
//! SQLSTATE) rolled the statement's transaction back, so the batch wrote nothing and can
//! run again: [`append_pipelined`](crate::PostgresStore::append_pipelined) in its isolating mode inserts each
//! accepted request under a savepoint of its own, so the server's refusal fails only the
//! request it concerns, with the server's words, and the requests building on that one
//! fail with [`factum::AppendError::Dependency`].
//!
//! Not isolated: a lost connection or a failed commit (their outcome is unknown), and the
//! SQLSTATE classes of a failing server, connection or resources, or of a transaction
//! rolled back for concurrency (`08`, `40`, `53`, `57`, `58`, `XX`): no request causes
//! those, and running the batch again request by request would only make it slower.
//!
//! Savepoints cost a subtransaction each; past 64 in one transaction, concurrent
//! snapshots get slower until it ends. That is the price of the rare failing batch only.

use deadpool_postgres::Transaction;
use factum::{AppendError, StoreError};
use tokio_postgres::error::{Severity, SqlState};

use super::function::KEY_RACE;
use crate::error::db;

/// Why a run of a batch failed.
pub(super) enum Failure {
    /// An idempotency key was recorded concurrently: nothing was written.
    KeyRace,
    /// The server refused a statement before the commit (see [`refused_by_server`]):
    /// nothing was written, and running the batch again isolated may commit the rest.
    Statement(tokio_postgres::Error),
    /// Anything else, the batch's outcome included when its commit failed.
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// A failed statement of a batch's run before its commit (never the commit itself: use
/// [`db`] there).
impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.code().map(SqlState::code) == Some(KEY_RACE) {
            Failure::KeyRace
        } else if refused_by_server(&e) {
            Failure::Statement(e)
        } else {
            Failure::Store(db(e))
        }
    }
}

/// Whether the server refused the statement for a reason a request may carry: an `ERROR`
/// (a `FATAL` one ends the connection) outside the SQLSTATE classes no request causes.
fn refused_by_server(e: &tokio_postgres::Error) -> bool {
    let Some(server) = e.as_db_error() else {
        return false;
    };
    server.parsed_severity() == Some(Severity::Error)
        && !matches!(
            server.code().code().get(..2),
            Some("08" | "40" | "53" | "57" | "58" | "XX") | None
        )
}

/// Runs `insert` (one request's writes) under a savepoint of `tx`: its result, or, when
/// the server refused it, the request's own error, the savepoint rolled back and the
/// transaction going on. The outer error fails the batch.
pub(super) async fn in_savepoint<T>(
    tx: &Transaction<'_>,
    insert: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<Result<T, AppendError>, StoreError> {
    tx.batch_execute("SAVEPOINT factum_request")
        .await
        .map_err(db)?;
    match insert.await {
        Ok(value) => {
            tx.batch_execute("RELEASE SAVEPOINT factum_request")
                .await
                .map_err(db)?;
            Ok(Ok(value))
        }
        Err(e) if refused_by_server(&e) => {
            tx.batch_execute(
                "ROLLBACK TO SAVEPOINT factum_request; RELEASE SAVEPOINT factum_request",
            )
            .await
            .map_err(db)?;
            Ok(Err(AppendError::Store(db(e))))
        }
        Err(e) => Err(db(e)),
    }
}
