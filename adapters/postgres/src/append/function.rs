//! The one-statement path: a batch (or a single append) as one call of the SQL function
//! `append_batch`.

use deadpool_postgres::Object;
use factum::{AppendError, AppendRequest, Appended, Position, StoreError};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::columns::Columns;
use super::isolate::Failure;
use super::{Unstorable, backend, idempotency_keys, stored_position};
use crate::error::db;
use crate::locks::Plan;
use crate::read::position_param;
use crate::{PostgresStore, sql};

/// What `append_batch` says of a request (its `status` column).
const ACCEPTED: i32 = 0;
const DEPENDENCY: i32 = 1;
/// Refused by the client before the call (`refusals` says why: see
/// [`prepare_append`](factum::store::prepare_append)). (2, "empty", is one of those now.)
const REFUSED: i32 = 3;
const DUPLICATE: i32 = 4;
const CONFLICT: i32 = 5;

/// The SQLSTATE `append_batch` raises when an idempotency key was recorded concurrently.
pub(super) const KEY_RACE: &str = "FX001";

/// A batch as the arguments of the SQL function `append_batch` (see
/// `migrations/0002_append_batch.sql`), which does all of an append's work in one call.
struct Call<'a> {
    lock_ids: Vec<i64>,
    lock_exclusive: Vec<bool>,
    upfront: bool,
    total: i32,
    req_counts: Vec<i32>,
    req_states: Vec<i32>,
    req_firsts: Vec<Option<i32>>,
    dep_starts: Vec<i32>,
    dep_counts: Vec<i32>,
    deps: Vec<i32>,
    key_starts: Vec<i32>,
    key_counts: Vec<i32>,
    keys: Vec<String>,
    checks: Vec<Option<String>>,
    check_afters: Vec<i64>,
    check_params: Vec<String>,
    columns: Columns<'a>,
    /// Why each request refused client-side ([`REFUSED`]) is refused (never sent).
    refusals: Vec<Option<AppendError>>,
}

impl<'a> Call<'a> {
    /// The call for `batch`, whose requests `refusals` refuses are not sent; `upfront`
    /// allocates all positions right after the locks (a batch), else at the first
    /// accepted request (a single append, after its checks).
    fn new(
        store: &PostgresStore,
        batch: &'a [AppendRequest],
        refusals: Vec<Option<AppendError>>,
        upfront: bool,
    ) -> Result<Self, StoreError> {
        let too_big = |what: &str| StoreError::backend(Unstorable(format!("too many {what}")));
        let int = |n: usize, what: &str| i32::try_from(n).map_err(|_| too_big(what));
        let mut plan = Plan::default();
        let mut call = Call {
            lock_ids: Vec::new(),
            lock_exclusive: Vec::new(),
            upfront,
            total: 0,
            req_counts: Vec::with_capacity(batch.len()),
            req_states: Vec::with_capacity(batch.len()),
            req_firsts: Vec::with_capacity(batch.len()),
            dep_starts: Vec::with_capacity(batch.len()),
            dep_counts: Vec::with_capacity(batch.len()),
            deps: Vec::new(),
            key_starts: Vec::with_capacity(batch.len()),
            key_counts: Vec::with_capacity(batch.len()),
            keys: Vec::new(),
            checks: Vec::with_capacity(batch.len()),
            check_afters: Vec::with_capacity(batch.len()),
            check_params: Vec::new(),
            columns: Columns::new(),
            refusals: Vec::with_capacity(batch.len()),
        };
        let mut total = 0usize;
        // An index at or past the batch's end fails the same as any not below the
        // request's own; the function reports which entry failed, not the index.
        let past_end = int(batch.len(), "requests in one batch")?;
        for (request, refusal) in batch.iter().zip(refusals) {
            plan.append(
                &store.inner.schema,
                &request.events,
                request.condition.as_ref(),
            );
            total += request.events.len();
            call.req_counts
                .push(int(request.events.len(), "events in one append")?);
            call.dep_starts
                .push(int(call.deps.len() + 1, "dependencies")?);
            call.dep_counts
                .push(int(request.builds_on.len(), "dependencies")?);
            call.deps.extend(
                request
                    .builds_on
                    .iter()
                    .map(|&b| i32::try_from(b).map_or(past_end, |b| b.min(past_end))),
            );
            call.key_starts.push(int(call.keys.len() + 1, "keys")?);
            if let Some(refusal) = refusal {
                call.req_states.push(REFUSED);
                call.req_firsts.push(None);
                call.key_counts.push(0);
                call.checks.push(None);
                call.check_afters.push(0);
                call.refusals.push(Some(refusal));
                continue;
            }
            call.req_states.push(ACCEPTED);
            call.req_firsts.push(Some(int(
                call.columns.types.len() + 1,
                "events in one batch",
            )?));
            for event in &request.events {
                call.columns.push(event)?;
            }
            let keys = idempotency_keys(&request.events);
            call.key_counts.push(int(keys.len(), "keys")?);
            call.keys.extend(keys);
            let check = request.condition.as_ref().and_then(|condition| {
                let filter = sql::flat_filter(&condition.query, 2, &mut call.check_params)?;
                // Of the batch's events, those of the requests this one builds on are
                // exempt ($3); stored events never are (they all precede the batch).
                let exempt = if request.builds_on.is_empty() {
                    Vec::new()
                } else {
                    vec!["e.position <> ALL($3)".to_owned()]
                };
                Some(filter.select(&sql::Scan::check(&store.inner.quoted, &exempt)))
            });
            call.checks.push(check);
            call.check_afters.push(
                request
                    .condition
                    .as_ref()
                    .and_then(|c| c.after)
                    .map_or(0, position_param),
            );
            call.refusals.push(None);
        }
        call.total = int(total, "events in one batch")?;
        (call.lock_ids, call.lock_exclusive) = plan.arrays();
        Ok(call)
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &self.lock_ids,
            &self.lock_exclusive,
            &self.upfront,
            &self.total,
            &self.req_counts,
            &self.req_states,
            &self.req_firsts,
            &self.dep_starts,
            &self.dep_counts,
            &self.deps,
            &self.key_starts,
            &self.key_counts,
            &self.keys,
            &self.checks,
            &self.check_afters,
            &self.check_params,
        ];
        params.extend(self.columns.params());
        params.push(&self.columns.recorded_ats);
        params
    }

    /// Each request's result, from the function's rows.
    fn outcomes(
        mut self,
        batch: &[AppendRequest],
        rows: &[Row],
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        let odd = |what: String| StoreError::backend(Unstorable(what));
        if rows.len() != batch.len() {
            return Err(odd(format!(
                "append_batch returned {} results for {} requests",
                rows.len(),
                batch.len()
            )));
        }
        let mut results = Vec::with_capacity(batch.len());
        for (index, (request, row)) in batch.iter().zip(rows).enumerate() {
            let get = |i: usize| row.try_get::<_, Option<i64>>(i).map_err(db);
            let number: i32 = row.try_get(0).map_err(db)?;
            if usize::try_from(number).ok() != Some(index) {
                return Err(odd(format!(
                    "append_batch returned the result of request {number} in place {index}"
                )));
            }
            let status: i32 = row.try_get(1).map_err(db)?;
            let position = || {
                get(2)?
                    .ok_or_else(|| odd("append_batch returned no position".to_owned()))
                    .and_then(stored_position)
            };
            results.push(match status {
                ACCEPTED => {
                    let first = position()?;
                    Ok(Appended {
                        positions: (0..request.events.len() as u64)
                            .map(|i| Position(first.0 + i))
                            .collect(),
                    })
                }
                DEPENDENCY => {
                    let entry: i32 = row.try_get(6).map_err(db)?;
                    let index = usize::try_from(entry)
                        .ok()
                        .and_then(|e| request.builds_on.get(e))
                        .ok_or_else(|| odd(format!("append_batch named dependency {entry}")))?;
                    Err(AppendError::Dependency { index: *index })
                }
                REFUSED => Err(self.refusals[index]
                    .take()
                    .unwrap_or_else(|| backend(Unstorable(String::new())))),
                DUPLICATE => {
                    let key: String = row.try_get(4).map_err(db)?;
                    let positions: Vec<i64> = row.try_get(5).map_err(db)?;
                    let positions = positions
                        .into_iter()
                        .map(stored_position)
                        .collect::<Result<_, _>>()?;
                    Err(AppendError::Duplicate { key, positions })
                }
                CONFLICT => {
                    let position = position()?;
                    let event_type: String = row.try_get(3).map_err(db)?;
                    Err(AppendError::Conflict {
                        position,
                        event_type,
                    })
                }
                other => return Err(odd(format!("append_batch returned status {other}"))),
            });
        }
        Ok(results)
    }
}

impl PostgresStore {
    /// Runs `batch` through `append_batch`: one statement, so one round trip (in its own
    /// implicit transaction), unless the test hook must run before the commit.
    ///
    /// The call's failure is a [`Failure::Statement`] when the server refused it (so it
    /// wrote nothing), never when its commit failed (then its outcome is unknown).
    pub(super) async fn run(
        &self,
        batch: &[AppendRequest],
        refusals: Vec<Option<AppendError>>,
        upfront: bool,
    ) -> Result<Vec<Result<Appended, AppendError>>, Failure> {
        let call = Call::new(self, batch, refusals, upfront)?;
        let params = call.params();
        let Some(hook) = &self.inner.before_commit else {
            // A statement outside BEGIN runs in a transaction of its own, committed when
            // it returns: all of the batch or (on any error) none of it. Behind a probe, so
            // that a connection that died in the pool is known not to have run it.
            let rows = self
                .query_behind_probe(&self.inner.sql.batch, &params)
                .await??;
            drop(params);
            return Ok(call.outcomes(batch, &rows)?);
        };
        let mut client: Object = self.client().await?;
        let statement = client.prepare_cached(&self.inner.sql.batch).await?;
        let tx = client.transaction().await.map_err(db)?;
        let rows = tx.query(&statement, &params).await?;
        drop(params);
        let results = call.outcomes(batch, &rows)?;
        let positions: Vec<Position> = results
            .iter()
            .flatten()
            .flat_map(|a| a.positions.iter().copied())
            .collect();
        if positions.is_empty() {
            tx.rollback().await.map_err(db)?;
        } else {
            hook(&positions).await;
            tx.commit().await.map_err(db)?;
        }
        Ok(results)
    }
}
