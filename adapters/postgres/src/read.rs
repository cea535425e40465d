//! Reads behind the watermark: no reader ever skips an event.
//!
//! The proof that this never skips an event is in the crate documentation, section
//! "No reader skips an event"; in short: positions are allocated in transaction-id order,
//! and reads return only events of transactions below the watermark — the oldest
//! appender of this store still running, found by the `global` lock every appender
//! holds — so every append still running holds positions above all that a read returns.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use deadpool_postgres::Object;
use factum::{Position, Query, ReadOptions, StoreError, StoredEvent};
use futures::{Stream, StreamExt};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Row, RowStream};

use crate::error::db;
use crate::plans::{self, LargeReads};
use crate::{PostgresStore, row, sql};

/// What the fence saw: the watermark, and the transaction of the newest event.
struct Mark {
    bound: u64,
    newest: Option<u64>,
}

/// The longest pause between two polls of the fence.
const MAX_POLL_PAUSE: Duration = Duration::from_millis(5);

/// The rows of one read, decoded as they arrive, holding its pooled connection.
pub(crate) struct ReadRows {
    /// The first row, received before the read was handed out (see
    /// [`PostgresStore::open_read`]).
    first: Option<Row>,
    open: Option<(Pin<Box<RowStream>>, Object)>,
    /// Rows handed out so far, and where to record the read if they come to a
    /// [`plans::LARGE_READ`].
    rows: usize,
    large: Option<(Arc<LargeReads>, u64)>,
}

impl ReadRows {
    fn empty() -> Self {
        ReadRows {
            first: None,
            open: None,
            rows: 0,
            large: None,
        }
    }

    fn counted(&mut self) {
        self.rows += 1;
        if self.rows == plans::LARGE_READ
            && let Some((reads, key)) = self.large.take()
        {
            reads.remember(key);
        }
    }
}

impl Stream for ReadRows {
    type Item = Result<StoredEvent, StoreError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(row) = this.first.take() {
            this.counted();
            return Poll::Ready(Some(row::decode(&row).map_err(StoreError::Corrupt)));
        }
        let Some((rows, _)) = this.open.as_mut() else {
            return Poll::Ready(None);
        };
        let next = match rows.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(next) => next,
        };
        match next {
            Some(Ok(row)) => {
                this.counted();
                Poll::Ready(Some(row::decode(&row).map_err(StoreError::Corrupt)))
            }
            Some(Err(e)) => {
                this.open = None;
                Poll::Ready(Some(Err(db(e))))
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
    /// Starts a read: fence, then the query, streaming from its first row; again on
    /// another connection if the pooled one had died before that row came (see
    /// [`live`](crate::live)).
    pub(crate) async fn open_read(
        &self,
        query: &Query,
        options: ReadOptions,
    ) -> Result<ReadRows, StoreError> {
        self.retrying("read", || self.open_read_once(query, options))
            .await
    }

    async fn open_read_once(
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
        let start = if options.backwards {
            options.from.map_or(i64::MAX, position_param)
        } else {
            options.from.map_or(0, position_param)
        };
        let client = self.client().await?;
        let started = async {
            let bound = self.fence(&client).await?.bound.to_string();
            let mut params: Vec<(&(dyn ToSql + Sync), Type)> =
                vec![(&start as &(dyn ToSql + Sync), Type::INT8)];
            params.extend(filter.refs().map(|p| (p, Type::TEXT_ARRAY)));
            let limit_param = limit.as_ref().map(|l| {
                params.push((l as &(dyn ToSql + Sync), Type::INT8));
                format!("${}", params.len())
            });
            params.push((&bound as &(dyn ToSql + Sync), Type::TEXT));
            let also = [format!("e.tx < ${}::text::xid8", params.len())];
            let scan = sql::Scan {
                schema: &self.inner.quoted,
                columns: row::COLUMNS,
                bound: if options.backwards { "<= $1" } else { ">= $1" },
                also: &also,
                descending: options.backwards,
                limit: limit_param.as_deref(),
                once: true,
            };
            let text = filter.select(&scan);
            // A read from the start that returned many events before (a whole state) is
            // planned for its values (an unnamed statement, still one round trip); the
            // others walk the tags' entries on the cached plan (see `plans`).
            let key = LargeReads::key(&text, &filter.params);
            let planned = !options.backwards && start <= 1 && self.inner.large_reads.is_large(key);
            let rows = if planned {
                let text = filter.select_planned(&scan);
                client.query_typed_raw(&text, params).await.map_err(db)?
            } else {
                let statement = client.prepare_cached(&text).await.map_err(db)?;
                let params = params.into_iter().map(|(p, _)| p);
                client.query_raw(&statement, params).await.map_err(db)?
            };
            let mut rows = Box::pin(rows);
            // The first row (or the end) comes with the statement's first reply: waiting for
            // it costs nothing, and a connection failing before it can be replaced unseen.
            let first = rows.as_mut().next().await.transpose().map_err(db)?;
            Ok::<_, StoreError>((rows, first, (!planned).then_some(key)))
        }
        .await;
        match started {
            Ok((_, None, _)) => Ok(ReadRows::empty()),
            Ok((rows, first, key)) => Ok(ReadRows {
                first,
                open: Some((rows, client)),
                rows: 0,
                large: key.map(|k| (self.inner.large_reads.clone(), k)),
            }),
            Err(e) => Err(crate::live::discard_if_lost(client, e)),
        }
    }

    /// The highest position a read can return now.
    pub(crate) async fn read_head(&self) -> Result<Option<Position>, StoreError> {
        self.retrying("head", || self.read_head_once()).await
    }

    async fn read_head_once(&self) -> Result<Option<Position>, StoreError> {
        let client = self.client().await?;
        let row = match self.head_row(&client).await {
            Ok(row) => row,
            Err(e) => return Err(crate::live::discard_if_lost(client, e)),
        };
        row.map(|r| r.try_get::<_, i64>(0).map_err(db))
            .transpose()?
            .map(crate::append::stored_position)
            .transpose()
    }

    async fn head_row(&self, client: &Object) -> Result<Option<Row>, StoreError> {
        let bound = self.fence(client).await?.bound.to_string();
        let statement = client
            .prepare_cached(&format!(
                "SELECT position FROM {}.events WHERE tx < $1::text::xid8 \
                 ORDER BY position DESC LIMIT 1",
                self.inner.quoted
            ))
            .await
            .map_err(db)?;
        client.query_opt(&statement, &[&bound]).await.map_err(db)
    }

    /// The watermark, and the transaction of the newest event: one statement.
    ///
    /// When the newest event's transaction is below the snapshot's `xmin` (no
    /// transaction older than it is still running: the usual case), `xmin` itself is the
    /// watermark — every event has a transaction below it, and every transaction below it
    /// has ended. Otherwise some older transaction is still running, and the watermark is
    /// the lowest transaction id among this store's appenders still running — every
    /// appender holds the `global` advisory lock (shared or exclusive) from before it is
    /// given a transaction id until it ends, so `pg_locks` lists them, joined to their
    /// `transactionid` locks — capped by the snapshot's `xmax` (one past the highest
    /// completed id, so at most the next id to be given out). Transactions that are not
    /// appenders of this store (another schema, another application, a session left idle
    /// in a transaction) do not hold that one back. `pg_locks` shows 32-bit ids: each is
    /// widened with the epoch of `xmax`, from which a running id is never more than 2³¹
    /// away. Reading `pg_locks` costs more than the rest, so it runs only when needed (a
    /// `CASE` branch's subquery runs only when the branch is taken).
    async fn watermark(&self, client: &Object) -> Result<Mark, StoreError> {
        let statement = client
            .prepare_cached(&format!(
                "WITH snap AS (SELECT pg_snapshot_xmin(s)::text::bigint AS xmin, \
                                      pg_snapshot_xmax(s)::text::bigint AS xmax \
                               FROM pg_current_snapshot() s), \
                      newest AS (SELECT tx::text::bigint AS tx FROM {}.events \
                                 ORDER BY position DESC LIMIT 1) \
                 SELECT CASE \
                   WHEN coalesce((SELECT tx FROM newest) < (SELECT xmin FROM snap), true) \
                   THEN (SELECT xmin FROM snap) \
                   ELSE (SELECT least(min(CASE WHEN w.f - w.c > 2147483648 THEN w.f - 4294967296 \
                                               WHEN w.c - w.f > 2147483648 THEN w.f + 4294967296 \
                                               ELSE w.f END), \
                                      (SELECT xmax FROM snap)) \
                         FROM (SELECT (snap.xmax & ~4294967295::bigint) \
                                        | t.transactionid::text::bigint AS f, \
                                      snap.xmax AS c \
                               FROM pg_locks a \
                               JOIN pg_locks t ON t.virtualtransaction = a.virtualtransaction \
                                              AND t.locktype = 'transactionid', snap \
                               WHERE a.locktype = 'advisory' AND a.objsubid = 1 AND a.granted \
                                 AND a.database = (SELECT oid FROM pg_database \
                                                   WHERE datname = current_database()) \
                                 AND ((a.classid::bigint << 32) | a.objid::bigint) = $1) w) \
                 END, \
                 (SELECT tx FROM newest)",
                self.inner.quoted
            ))
            .await
            .map_err(db)?;
        let row = client
            .query_one(&statement, &[&self.inner.global_key])
            .await
            .map_err(db)?;
        let bound: i64 = row.try_get(0).map_err(db)?;
        let newest: Option<i64> = row.try_get(1).map_err(db)?;
        let id = |x: i64| u64::try_from(x).unwrap_or(0);
        Ok(Mark {
            bound: id(bound),
            newest: newest.map(id),
        })
    }

    /// The watermark for the next statement on `client`, after waiting (at most
    /// [`PostgresOptions::visibility_wait`](crate::PostgresOptions)) until it passes the
    /// transaction of the newest event, so that every append that committed before now
    /// is visible: an append still running with an older transaction id holds it back
    /// only as long as that append takes.
    async fn fence(&self, client: &Object) -> Result<Mark, StoreError> {
        let mut mark = self.watermark(client).await?;
        let Some(newest) = mark.newest else {
            return Ok(mark);
        };
        let started = Instant::now();
        let mut pause = Duration::from_micros(100);
        let waits = mark.bound <= newest;
        while mark.bound <= newest {
            if started.elapsed() >= self.inner.visibility_wait {
                tracing::warn!(
                    schema = %self.inner.schema,
                    watermark = mark.bound,
                    newest,
                    waited = ?started.elapsed(),
                    "an older append is still running: this read returns only the events \
                     before it"
                );
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL_PAUSE);
            mark = self.watermark(client).await?;
        }
        if waits {
            metrics::histogram!(VISIBILITY_WAIT_SECONDS).record(started.elapsed().as_secs_f64());
        }
        Ok(mark)
    }
}

/// Histogram of the seconds a read waited for an older append still running (the
/// watermark lag), recorded only for reads that waited: see the crate docs' metrics.
pub const VISIBILITY_WAIT_SECONDS: &str = "factum_postgres_visibility_wait_seconds";
