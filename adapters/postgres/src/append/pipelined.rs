//! The pipelined path of large batches.

use std::collections::HashMap;

use deadpool_postgres::{Object, Transaction};
use factum::store::exempt_positions;
use factum::{
    AppendCondition, AppendError, AppendRequest, Appended, NewEvent, Position, StoreError,
};
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;

use super::columns::Columns;
use super::isolate::{Failure, in_savepoint};
use super::{Unstorable, idempotency_keys, key_race, stored_position};
use crate::error::db;
use crate::locks::Plan;
use crate::read::position_param;
use crate::{PostgresStore, sql};

/// A prepared condition check: the first event after `after` matching `filter`.
struct ConflictCheck {
    statement: Statement,
    after: i64,
    filter: sql::Filter,
}

impl ConflictCheck {
    /// Runs the check. Sends its statement on the first poll, so checks polled right
    /// after the lock statement run after it.
    async fn run(
        check: Option<&ConflictCheck>,
        tx: &Transaction<'_>,
    ) -> Result<Option<(Position, String)>, StoreError> {
        let Some(check) = check else {
            return Ok(None);
        };
        let params: Vec<&(dyn ToSql + Sync)> = std::iter::once(&check.after as &(dyn ToSql + Sync))
            .chain(check.filter.refs())
            .collect();
        let row = tx.query_opt(&check.statement, &params).await.map_err(db)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let position: i64 = row.try_get(0).map_err(db)?;
        let event_type: String = row.try_get(1).map_err(db)?;
        Ok(Some((stored_position(position)?, event_type)))
    }
}

/// The pipelined path of large batches: a few round trips whatever the batch's size, with
/// statements prepared once per connection.
impl PostgresStore {
    /// The statement checking `condition`, prepared (cached per connection); `None` when
    /// the condition's query matches nothing.
    async fn conflict_check(
        &self,
        tx: &Transaction<'_>,
        condition: &AppendCondition,
    ) -> Result<Option<ConflictCheck>, StoreError> {
        let Some(filter) = sql::filter(&condition.query, 2) else {
            return Ok(None);
        };
        let statement = tx
            .prepare_cached(&filter.select(&sql::Scan::check(&self.inner.quoted, &[])))
            .await
            .map_err(db)?;
        Ok(Some(ConflictCheck {
            statement,
            after: condition.after.map_or(0, position_param),
            filter,
        }))
    }

    /// [`EventStore::append_batch`](factum::EventStore::append_batch) for a batch of more
    /// than [`PIPELINE_ABOVE`](super::PIPELINE_ABOVE) requests (with `total` events, at
    /// least one), in one transaction, with the same results as `append_batch` the
    /// function; and any batch whose first run the server refused, with `isolate`.
    ///
    /// 1. Take the locks of every request (`lock_keys`), then allocate positions for all
    ///    the batch's events at once (`allocate_positions`: nothing writes before).
    /// 2. Fetch what each request is checked against in the stored events — its first
    ///    recorded idempotency key and the first event conflicting with its condition —
    ///    with prepared statements sent together (one round trip). Every stored event
    ///    precedes the batch, so none is exempt.
    /// 3. Decide each request in order, client-side, as the function does: a failed (or
    ///    not earlier) request it builds on is a [`AppendError::Dependency`]; one
    ///    `refusals` refuses fails so (none draws positions); then its keys, among the
    ///    stored ones and those of the requests accepted before it
    ///    ([`AppendError::Duplicate`]); then its condition, on the stored events and the
    ///    events of the requests accepted before it other than those it builds on
    ///    ([`AppendError::Conflict`], the lowest position).
    /// 4. Insert the accepted events and record their keys in one `insert_events` call
    ///    — with `isolate`, one call per accepted request, right away, under a savepoint
    ///    ([`in_savepoint`]): a request the server refuses fails alone and is not
    ///    accepted — and commit.
    pub(super) async fn append_pipelined(
        &self,
        batch: &[AppendRequest],
        refusals: Vec<Option<AppendError>>,
        total: usize,
        isolate: bool,
    ) -> Result<Vec<Result<Appended, AppendError>>, Failure> {
        let total_i32 = i32::try_from(total)
            .map_err(|_| StoreError::backend(Unstorable("too many events in one batch".into())))?;
        let mut plan = Plan::default();
        for request in batch {
            plan.append(
                &self.inner.schema,
                &request.events,
                request.condition.as_ref(),
            );
        }
        let (lock_ids, lock_exclusive) = plan.arrays();
        let mut client: Object = self.client().await?;
        let mut fresh: Object;
        let tx = 'begun: {
            let e = match client.transaction().await {
                Ok(tx) => break 'begun tx,
                Err(e) => e,
            };
            if !crate::live::connection_lost(&e) {
                return Err(db(e).into());
            }
            // `BEGIN` failed with a connection that died in the pool: nothing ran.
            fresh = self.replacing(client, &e).await?;
            fresh.transaction().await.map_err(db)?
        };
        let lock = tx.prepare_cached(&self.inner.sql.lock).await?;
        tx.query(&lock, &[&lock_ids, &lock_exclusive]).await?;
        let allocate = tx.prepare_cached(&self.inner.sql.allocate).await?;
        let first: i64 = tx
            .query_one(&allocate, &[&total_i32])
            .await?
            .try_get(0)
            .map_err(db)?;
        let mut next = stored_position(first)?.0;

        // The stored state each request is checked against, fetched in one round trip.
        let duplicate_statement = tx
            .prepare_cached(&self.inner.sql.recorded_key)
            .await
            .map_err(db)?;
        let keys: Vec<Vec<String>> = batch.iter().map(|r| idempotency_keys(&r.events)).collect();
        let mut prepared = Vec::with_capacity(batch.len());
        for (request, refusal) in batch.iter().zip(&refusals) {
            prepared.push(match &request.condition {
                Some(c) if refusal.is_none() => self.conflict_check(&tx, c).await?,
                _ => None,
            });
        }
        let checks = batch.iter().zip(&keys).zip(&prepared).zip(&refusals).map(
            |(((_, keys), check), refusal)| async {
                let duplicate = if refusal.is_some() {
                    None
                } else {
                    self.recorded_key(&*tx, &duplicate_statement, keys).await?
                };
                let conflict = ConflictCheck::run(check.as_ref(), &tx).await?;
                Ok::<_, StoreError>((duplicate, conflict))
            },
        );
        let stored = futures::future::try_join_all(checks).await?;
        let insert = tx.prepare_cached(&self.inner.sql.insert).await?;

        let mut results = Vec::with_capacity(batch.len());
        let mut accepted: Vec<(Position, &NewEvent)> = Vec::new();
        let mut recorded: HashMap<&str, Vec<Position>> = HashMap::new();
        let mut key_rows: Vec<(String, i64, i32)> = Vec::new();
        for (index, (((request, keys), (stored_duplicate, stored_conflict)), refusal)) in batch
            .iter()
            .zip(&keys)
            .zip(stored)
            .zip(refusals)
            .enumerate()
        {
            let exempt = match exempt_positions(index, &request.builds_on, &results) {
                Ok(exempt) => exempt,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            if let Some(refusal) = refusal {
                results.push(Err(refusal));
                continue;
            }
            let positions: Vec<Position> = (0..request.events.len() as u64)
                .map(|i| Position(next + i))
                .collect();
            next += request.events.len() as u64;
            // The first key in byte order recorded before the batch or earlier in it.
            let duplicate = keys.iter().find_map(|k| {
                if let Some(positions) = recorded.get(k.as_str()) {
                    return Some((k.clone(), positions.clone()));
                }
                stored_duplicate
                    .as_ref()
                    .filter(|(key, _)| key == k)
                    .cloned()
            });
            if let Some((key, positions)) = duplicate {
                results.push(Err(AppendError::Duplicate { key, positions }));
                continue;
            }
            if let Some(condition) = &request.condition {
                // Stored events are never exempt; of the batch's, those of the requests
                // this one builds on are.
                let in_batch = accepted.iter().find(|(p, e)| {
                    exempt.binary_search(p).is_err()
                        && condition.is_violated_by(*p, &e.event_type, &e.tags)
                });
                let conflict = match (stored_conflict, in_batch) {
                    (Some(stored), _) => Some(stored),
                    (None, Some((p, e))) => Some((*p, e.event_type.clone())),
                    (None, None) => None,
                };
                if let Some((position, event_type)) = conflict {
                    results.push(Err(AppendError::Conflict {
                        position,
                        event_type,
                    }));
                    continue;
                }
            }
            let count = i32::try_from(positions.len()).map_err(|_| {
                StoreError::backend(Unstorable("too many events in one append".into()))
            })?;
            let own_keys = keys
                .iter()
                .map(|key| (key.clone(), position_param(positions[0]), count));
            let events = || positions.iter().copied().zip(&request.events);
            if isolate {
                let own_keys: Vec<_> = own_keys.collect();
                let own: Vec<_> = events().collect();
                let rows = Rows::new(&own, &own_keys)?;
                match in_savepoint(&tx, rows.insert(&tx, &insert)).await? {
                    Ok(written) if written == own_keys.len() => {}
                    Ok(_) => {
                        // Impossible while the keys' exclusive locks are held; the
                        // savepoint is released, so never commit half: nothing at all.
                        tx.rollback().await.map_err(db)?;
                        return Err(Failure::Store(key_race()));
                    }
                    Err(refused) => {
                        results.push(Err(refused));
                        continue;
                    }
                }
            } else {
                key_rows.extend(own_keys);
            }
            for key in keys {
                recorded.insert(key, positions.clone());
            }
            accepted.extend(events());
            results.push(Ok(Appended { positions }));
        }

        if accepted.is_empty() {
            tx.rollback().await.map_err(db)?;
            return Ok(results);
        }
        if !isolate {
            let written = Rows::new(&accepted, &key_rows)?
                .insert(&tx, &insert)
                .await?;
            if written != key_rows.len() {
                // Impossible while the keys' exclusive locks are held; never commit half.
                tx.rollback().await.map_err(db)?;
                return Err(Failure::Store(key_race()));
            }
        }
        if let Some(hook) = &self.inner.before_commit {
            let all: Vec<Position> = accepted.iter().map(|(p, _)| *p).collect();
            hook(&all).await;
        }
        // A failed commit's outcome is unknown: never run the batch again for it.
        tx.commit().await.map_err(db)?;
        Ok(results)
    }
}

/// Events at their positions and the idempotency keys they record (each with the first
/// of its append's positions and their count), as `insert_events` takes them.
struct Rows<'a> {
    positions: Vec<i64>,
    columns: Columns<'a>,
    key_names: Vec<&'a str>,
    key_firsts: Vec<i64>,
    key_counts: Vec<i32>,
}

impl<'a> Rows<'a> {
    fn new(
        events: &[(Position, &'a NewEvent)],
        keys: &'a [(String, i64, i32)],
    ) -> Result<Self, StoreError> {
        let mut columns = Columns::new();
        for (_, event) in events {
            columns.push(event)?;
        }
        Ok(Rows {
            positions: events.iter().map(|(p, _)| position_param(*p)).collect(),
            columns,
            key_names: keys.iter().map(|(k, _, _)| k.as_str()).collect(),
            key_firsts: keys.iter().map(|(_, f, _)| *f).collect(),
            key_counts: keys.iter().map(|(_, _, c)| *c).collect(),
        })
    }

    /// Inserts the rows; how many keys were recorded (fewer than given: one was recorded
    /// before).
    async fn insert(
        &self,
        tx: &Transaction<'_>,
        statement: &Statement,
    ) -> Result<usize, tokio_postgres::Error> {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.positions];
        params.extend(self.columns.params());
        params.extend([
            &self.key_names as &(dyn ToSql + Sync),
            &self.key_firsts,
            &self.key_counts,
        ]);
        params.push(&self.columns.recorded_ats);
        let written: i32 = tx.query_one(statement, &params).await?.try_get(0)?;
        Ok(usize::try_from(written).unwrap_or(0))
    }
}
