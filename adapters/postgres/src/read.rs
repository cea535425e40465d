//! Reads behind the watermark: no reader ever skips an event.
//!
//! The proof that this never skips an event is in the crate documentation, section
//! "No reader skips an event"; in short: positions are allocated in transaction-id order,
//! and reads return only events of transactions below their snapshot's `xmin`, so every
//! transaction still running holds positions above all that a read returns.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use deadpool_postgres::Object;
use factum::{Position, Query, ReadOptions, StoreError, StoredEvent};
use futures::Stream;
use tokio_postgres::RowStream;
use tokio_postgres::types::ToSql;

use crate::{PostgresStore, row, sql};

/// The longest pause between two polls of the fence.
const MAX_POLL_PAUSE: Duration = Duration::from_millis(5);

/// The rows of one read, decoded as they arrive, holding its pooled connection.
pub(crate) struct ReadRows {
    open: Option<(Pin<Box<RowStream>>, Object)>,
}

impl ReadRows {
    fn empty() -> Self {
        ReadRows { open: None }
    }
}

impl Stream for ReadRows {
    type Item = Result<StoredEvent, StoreError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some((rows, _)) = this.open.as_mut() else {
            return Poll::Ready(None);
        };
        let next = match rows.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(next) => next,
        };
        match next {
            Some(Ok(row)) => Poll::Ready(Some(row::decode(&row).map_err(StoreError::Corrupt))),
            Some(Err(e)) => {
                this.open = None;
                Poll::Ready(Some(Err(StoreError::backend(e))))
            }
            None => {
                // Done: hand the connection back to the pool now.
                this.open = None;
                Poll::Ready(None)
            }
        }
    }
}

/// A position as the bigint it is stored as (positions past `i64::MAX` cannot exist).
pub(crate) fn position_param(position: Position) -> i64 {
    i64::try_from(position.0).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// Starts a read: fence, then the query, streaming.
    pub(crate) async fn open_read(
        &self,
        query: &Query,
        options: ReadOptions,
    ) -> Result<ReadRows, StoreError> {
        let Some(filter) = sql::filter(query, 2) else {
            return Ok(ReadRows::empty());
        };
        if options.limit == Some(0) {
            return Ok(ReadRows::empty());
        }
        // A statement without LIMIT when there is none: a LIMIT would make the planner
        // hope for a short scan.
        let limit: Option<i64> = options.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let (order, limit_clause) = match limit {
            Some(_) => (
                filter.limited_order(),
                format!(" LIMIT ${}", 2 + filter.params.len()),
            ),
            None => ("position", String::new()),
        };
        let (bound, direction) = if options.backwards {
            (
                options.from.map_or(i64::MAX, position_param),
                "<= $1 ORDER BY",
            )
        } else {
            (options.from.map_or(0, position_param), ">= $1 ORDER BY")
        };
        let text = format!(
            "SELECT {columns} FROM {schema}.events \
             WHERE tx < (SELECT pg_snapshot_xmin(pg_current_snapshot())) AND {filter} \
             AND position {direction} {order}{descending}{limit_clause}",
            columns = row::COLUMNS,
            schema = self.inner.quoted,
            filter = filter.sql,
            descending = if options.backwards { " DESC" } else { "" },
        );
        let client = self.client().await?;
        self.fence(&client).await?;
        let statement = client
            .prepare_cached(&text)
            .await
            .map_err(StoreError::backend)?;
        let params: Vec<&(dyn ToSql + Sync)> = std::iter::once(&bound as &(dyn ToSql + Sync))
            .chain(filter.refs())
            .chain(limit.as_ref().map(|l| l as &(dyn ToSql + Sync)))
            .collect();
        let rows = client
            .query_raw(&statement, params)
            .await
            .map_err(StoreError::backend)?;
        Ok(ReadRows {
            open: Some((Box::pin(rows), client)),
        })
    }

    /// The highest position a read can return now.
    pub(crate) async fn read_head(&self) -> Result<Option<Position>, StoreError> {
        let client = self.client().await?;
        self.fence(&client).await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT position FROM {}.events \
                 WHERE tx < (SELECT pg_snapshot_xmin(pg_current_snapshot())) \
                 ORDER BY position DESC LIMIT 1",
                self.inner.quoted
            ))
            .await
            .map_err(StoreError::backend)?;
        let row = client
            .query_opt(&statement, &[])
            .await
            .map_err(StoreError::backend)?;
        row.map(|r| r.try_get::<_, i64>(0).map_err(StoreError::backend))
            .transpose()?
            .map(crate::append::stored_position)
            .transpose()
    }

    /// Waits (at most [`PostgresOptions::visibility_wait`](crate::PostgresOptions)) until
    /// the watermark passes the transaction of the newest event, so that every append
    /// that committed before now is visible to the next statement.
    async fn fence(&self, client: &Object) -> Result<(), StoreError> {
        let statement = client
            .prepare_cached(&format!(
                "SELECT t.tx::text FROM (SELECT tx FROM {}.events ORDER BY position DESC LIMIT 1) t \
                 WHERE t.tx >= pg_snapshot_xmin(pg_current_snapshot())",
                self.inner.quoted
            ))
            .await
            .map_err(StoreError::backend)?;
        let Some(held) = client
            .query_opt(&statement, &[])
            .await
            .map_err(StoreError::backend)?
        else {
            return Ok(());
        };
        let newest: String = held.try_get(0).map_err(StoreError::backend)?;
        let passed = client
            .prepare_cached("SELECT pg_snapshot_xmin(pg_current_snapshot()) > $1::text::xid8")
            .await
            .map_err(StoreError::backend)?;
        let started = Instant::now();
        let mut pause = Duration::from_micros(100);
        loop {
            let row = client
                .query_one(&passed, &[&newest])
                .await
                .map_err(StoreError::backend)?;
            if row.try_get::<_, bool>(0).map_err(StoreError::backend)? {
                return Ok(());
            }
            if started.elapsed() >= self.inner.visibility_wait {
                tracing::warn!(
                    schema = %self.inner.schema,
                    transaction = %newest,
                    waited = ?started.elapsed(),
                    "older transactions are still running: this read returns only the events \
                     before them"
                );
                return Ok(());
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL_PAUSE);
        }
    }
}
