//! Connections that died while pooled.
//!
//! The store's pool (not the partition locks' one) hands a connection out after checking
//! only that its client has not seen it close (deadpool's `RecyclingMethod::Fast`): a ping per checkout (`Verified`) would cost
//! a round trip each time. A connection whose server side ended while it sat in the pool
//! (a server restart, `pg_terminate_backend`) but whose end the client has not read yet
//! is then handed out, and the first statement sent on it fails with the connection.
//! What the server never ran can run again: a read (it changes nothing), and a statement
//! that may run twice (the upserts of snapshots, checkpoints and dead letters), runs
//! again on another connection ([`PostgresStore::retrying`],
//! [`PostgresStore::on_live_client`]: reads, heads, key look-ups, snapshots, listener
//! checkpoints and dead letters), and an append sends an empty query
//! ahead of its statement in the same flight ([`behind_probe`]), so that when that probe
//! fails with the connection, the append, queued behind it, is known not to have started;
//! a batch in a transaction (the pipelined path) starts on another connection when its
//! `BEGIN` fails with the connection ([`PostgresStore::replacing`]).
//! A connection lost after the server answered the probe leaves the append's outcome
//! unknown, as it always did: that stays a [`StoreError::Backend`].

use std::future::Future;

use deadpool_postgres::Object;
use factum::StoreError;
use tokio_postgres::error::{Severity, SqlState};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use crate::PostgresStore;
use crate::error::PostgresFailure;

/// Whether `e` is the connection failing (closed, an I/O error, the server ending the
/// session), not the server refusing a statement.
pub(crate) fn connection_lost(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        return matches!(
            db.parsed_severity(),
            Some(Severity::Fatal | Severity::Panic)
        ) || code == &SqlState::ADMIN_SHUTDOWN
            || code == &SqlState::CRASH_SHUTDOWN
            || code == &SqlState::CANNOT_CONNECT_NOW
            || code.code().starts_with("08");
    }
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// [`connection_lost`] for a store error holding a failed statement.
pub(crate) fn store_connection_lost(e: &StoreError) -> bool {
    match e {
        StoreError::Backend(source) => source
            .downcast_ref::<PostgresFailure>()
            .is_some_and(|f| connection_lost(f.inner())),
        _ => false,
    }
}

/// `e`, after taking `client` out of its pool for good when `e` says its connection is
/// lost: handed back, it could be handed out again before its client reads the end.
pub(crate) fn discard_if_lost(client: Object, e: StoreError) -> StoreError {
    if store_connection_lost(&e) {
        drop(Object::take(client));
    }
    e
}

/// What [`behind_probe`] saw.
pub(crate) enum Probed {
    /// The server answered the probe, so it went on to the statement: its result.
    Ran(Result<Vec<Row>, tokio_postgres::Error>),
    /// The connection was gone before the server answered the probe: the statement, queued
    /// behind it, never started.
    NotRun(tokio_postgres::Error),
}

/// Runs `statement` behind an empty query sent in the same flight (no round trip more).
pub(crate) async fn behind_probe(
    client: &Client,
    statement: &Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Probed {
    // `join!` polls in order, and each request is queued on its first poll: the probe
    // reaches the server first, and the server runs a connection's requests in order.
    let (probe, rows) = futures::join!(client.simple_query(""), client.query(statement, params));
    match (probe, rows) {
        (Err(probe), Err(_)) if connection_lost(&probe) => Probed::NotRun(probe),
        (_, rows) => Probed::Ran(rows),
    }
}

impl PostgresStore {
    /// How many times an operation may meet a dead pooled connection: once per connection
    /// idle in the pool now (all of them died together after a server restart), and once
    /// more on a new connection.
    fn attempts(&self) -> usize {
        1 + self.pool.status().available
    }

    /// Runs `op` (something that writes nothing, so it can run twice), and again, on
    /// another pooled connection, while it fails with its connection (see the module
    /// documentation), at most [`attempts`](Self::attempts) times.
    pub(crate) async fn retrying<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut left = self.attempts();
        loop {
            left -= 1;
            match op().await {
                Err(e) if left > 0 && store_connection_lost(&e) => {
                    tracing::debug!(schema = %self.inner.schema, what, error = %factum::ErrorChain(&e),
                        "a pooled connection had died; running again on another");
                }
                other => return other,
            }
        }
    }

    /// Runs `op` on a pooled connection (handed to it and back), and again on another
    /// while it fails with its connection, as [`retrying`](Self::retrying) does; a dead
    /// connection is taken out of the pool. For statements that change nothing or that
    /// may run twice (an upsert of the same row).
    pub(crate) async fn on_live_client<T, F, Fut>(&self, what: &str, op: F) -> Result<T, StoreError>
    where
        F: Fn(Object) -> Fut,
        Fut: Future<Output = (Object, Result<T, StoreError>)>,
    {
        self.retrying(what, || async {
            let client = self.client().await?;
            match op(client).await {
                (_, Ok(value)) => Ok(value),
                (client, Err(e)) => Err(discard_if_lost(client, e)),
            }
        })
        .await
    }

    /// A new connection in place of `dead`, whose connection was lost before it ran
    /// anything (`e`): the idle ones are let go too, since whatever ended one (a server
    /// restart) likely ended them all, and the pool then opens a new one.
    pub(crate) async fn replacing(
        &self,
        dead: Object,
        e: &tokio_postgres::Error,
    ) -> Result<Object, StoreError> {
        tracing::debug!(schema = %self.inner.schema, error = %factum::ErrorChain(&e),
            "a pooled connection had died before running a transaction; opening another");
        drop(Object::take(dead));
        self.pool.retain(|_, _| false);
        self.client().await
    }

    /// Runs the statement `sql` (prepared, cached per connection) with `params` on a pooled
    /// connection, behind a probe ([`behind_probe`]), and again on another connection while
    /// the statement is known not to have run (at most [`attempts`](Self::attempts) times).
    /// The outer error: no connection; the inner: the statement's result.
    pub(crate) async fn query_behind_probe(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Result<Vec<Row>, tokio_postgres::Error>, StoreError> {
        let mut left = self.attempts();
        loop {
            left -= 1;
            let client = self.client().await?;
            let lost = match client.prepare_cached(sql).await {
                Ok(statement) => match behind_probe(&client, &statement, params).await {
                    Probed::Ran(rows) => return Ok(rows),
                    Probed::NotRun(e) => e,
                },
                // Not prepared on this connection yet, and it had died: nothing ran.
                Err(e) if connection_lost(&e) => e,
                Err(e) => return Ok(Err(e)),
            };
            // Handed back, it could be handed out again before its client reads the end.
            drop(Object::take(client));
            if left == 0 {
                return Ok(Err(lost));
            }
            tracing::debug!(schema = %self.inner.schema, error = %lost,
                "a pooled connection had died before running a statement; running it on another");
        }
    }
}
