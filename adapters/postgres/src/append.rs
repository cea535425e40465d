//! Conditional appends: lock, check, allocate, insert, commit — in one READ COMMITTED
//! transaction, and in one call of the SQL function `append_batch` (see
//! `migrations/0002_append_batch.sql`): one round trip per append or batch. A batch of
//! more than [`PostgresOptions::pipeline_above`](crate::PostgresOptions::pipeline_above)
//! requests takes the pipelined path instead ([`PostgresStore::append_pipelined`]): the
//! same steps and results, in a few round trips of prepared statements, cheaper per
//! request (see [`PIPELINE_ABOVE`]).
//!
//! 1. Take the advisory locks of every request (see [`locks`](crate::locks)) in ascending
//!    key order.
//! 2. For each request in order: check its idempotency keys (an existing one is
//!    [`AppendError::Duplicate`]), then its condition: the first event after its position
//!    matching its query, other than those of the requests it builds on, is
//!    [`AppendError::Conflict`]. Each check is a fresh statement, so in READ COMMITTED it
//!    sees everything committed before it started — including every append that held a
//!    lock this one waited for — and the requests of the batch accepted before. No
//!    watermark here.
//! 3. Positions are allocated once for the whole batch: right after the locks for
//!    [`EventStore::append_batch`](factum::EventStore::append_batch), after the checks for
//!    a single append (see the crate documentation for why allocation is ordered with
//!    transaction ids). Nothing writes before. An accepted request's events and keys are
//!    inserted right away.
//! 4. Commit: the statement runs outside `BEGIN`, in a transaction of its own. A key
//!    recorded meanwhile by a concurrent duplicate (impossible while both hold the key's
//!    exclusive lock, checked anyway) fails the statement, which writes nothing.
//!
//! Whatever fails — the server, the connection — the transaction commits entirely or not
//! at all, and the error is an [`AppendError::Store`] holding a [`StoreError::Backend`].

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use deadpool_postgres::{Object, Transaction};
use factum::model::whole_micros;
use factum::{
    AppendCondition, AppendError, AppendRequest, Appended, Codec, NewEvent, Position, StoreError,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row, Statement, ToStatement};
use uuid::Uuid;

use crate::locks::Plan;
use crate::read::position_param;
use crate::{PostgresStore, sql, tags};

/// A value that cannot be stored as it is (a version past `i32::MAX`, a JSON payload that
/// is not UTF-8, a position out of range).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Unstorable(pub String);

/// A stored position as a [`Position`].
pub(crate) fn stored_position(position: i64) -> Result<Position, StoreError> {
    u64::try_from(position)
        .map(Position)
        .map_err(|_| StoreError::backend(Unstorable(format!("negative position {position}"))))
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> AppendError {
    AppendError::Store(StoreError::backend(e))
}

/// Events as the arrays `insert_events` and `append_events` take.
struct Columns<'a> {
    types: Vec<&'a str>,
    versions: Vec<i32>,
    tag_starts: Vec<i32>,
    tag_counts: Vec<i32>,
    tags: Vec<String>,
    codecs: Vec<&'static str>,
    json: Vec<Option<&'a str>>,
    bytes: Vec<Option<&'a [u8]>>,
    ids: Vec<Uuid>,
    correlations: Vec<Option<Uuid>>,
    causations: Vec<Option<Uuid>>,
    keys: Vec<Option<&'a str>>,
    /// Caller-set times, to the microsecond; `None`: the time of the statement.
    recorded_ats: Vec<Option<SystemTime>>,
}

impl<'a> Columns<'a> {
    fn new() -> Self {
        Columns {
            types: Vec::new(),
            versions: Vec::new(),
            tag_starts: Vec::new(),
            tag_counts: Vec::new(),
            tags: Vec::new(),
            codecs: Vec::new(),
            json: Vec::new(),
            bytes: Vec::new(),
            ids: Vec::new(),
            correlations: Vec::new(),
            causations: Vec::new(),
            keys: Vec::new(),
            recorded_ats: Vec::new(),
        }
    }

    fn push(&mut self, event: &'a NewEvent) -> Result<(), StoreError> {
        let unstorable = |what: String| StoreError::backend(Unstorable(what));
        let too_many = || unstorable("too many tags in one append".to_owned());
        self.types.push(&event.event_type);
        self.versions
            .push(i32::try_from(event.version).map_err(|_| {
                unstorable(format!(
                    "version {} of {} is above {}, the most a PostgreSQL integer holds",
                    event.version,
                    event.event_type,
                    i32::MAX
                ))
            })?);
        self.tag_starts
            .push(i32::try_from(self.tags.len() + 1).map_err(|_| too_many())?);
        self.tag_counts
            .push(i32::try_from(event.tags.len()).map_err(|_| too_many())?);
        storable(event).map_err(unstorable)?;
        self.tags.extend(event.tags.iter().map(tags::encode_tag));
        self.codecs.push(event.payload.codec.name());
        if event.payload.codec == Codec::Json {
            let json = std::str::from_utf8(&event.payload.bytes).map_err(|_| {
                unstorable(format!(
                    "the JSON payload of {} is not UTF-8",
                    event.event_type
                ))
            })?;
            // jsonb cannot hold the NUL character (`\u0000`), which serde_json writes for
            // strings that contain it: keep such payloads as bytes (still codec "json").
            if json.contains("\\u0000") {
                self.json.push(None);
                self.bytes.push(Some(&event.payload.bytes));
            } else {
                self.json.push(Some(json));
                self.bytes.push(None);
            }
        } else {
            self.json.push(None);
            self.bytes.push(Some(&event.payload.bytes));
        }
        self.ids.push(event.metadata.id);
        self.correlations.push(event.metadata.correlation_id);
        self.causations.push(event.metadata.causation_id);
        self.keys.push(event.metadata.idempotency_key.as_deref());
        self.recorded_ats.push(event.recorded_at.map(whole_micros));
        Ok(())
    }

    /// The parameters shared by `insert_events` and `append_batch`, from `types` to
    /// `idempotency_keys`; both take [`Columns::recorded_ats`] last.
    fn params(&self) -> [&(dyn ToSql + Sync); 12] {
        [
            &self.types,
            &self.versions,
            &self.tag_starts,
            &self.tag_counts,
            &self.tags,
            &self.codecs,
            &self.json,
            &self.bytes,
            &self.ids,
            &self.correlations,
            &self.causations,
            &self.keys,
        ]
    }
}

/// The distinct idempotency keys of `events`, in byte order.
fn idempotency_keys(events: &[NewEvent]) -> Vec<String> {
    let keys: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.metadata.idempotency_key.as_deref())
        .collect();
    keys.into_iter().map(str::to_owned).collect()
}

/// What `append_batch` says of a request (its `status` column).
const ACCEPTED: i32 = 0;
const DEPENDENCY: i32 = 1;
const EMPTY: i32 = 2;
/// Refused by the client before the call (`refusals` says why): an unstorable event, or
/// a condition that guards nothing.
const REFUSED: i32 = 3;
const DUPLICATE: i32 = 4;
const CONFLICT: i32 = 5;

/// The SQLSTATE `append_batch` raises when an idempotency key was recorded concurrently.
const KEY_RACE: &str = "FX001";

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
    /// The call for `batch`; `upfront` allocates all positions right after the locks (a
    /// batch), else at the first accepted request (a single append, after its checks).
    fn new(
        store: &PostgresStore,
        batch: &'a [AppendRequest],
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
        for request in batch {
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
            let refusal = if request.events.is_empty() {
                Some((EMPTY, None))
            } else if request
                .condition
                .as_ref()
                .is_some_and(AppendCondition::guards_nothing)
            {
                Some((REFUSED, Some(AppendError::EmptyCondition)))
            } else {
                match request.events.iter().try_for_each(storable) {
                    Err(reason) => Some((REFUSED, Some(backend(Unstorable(reason))))),
                    Ok(()) => None,
                }
            };
            call.key_starts.push(int(call.keys.len() + 1, "keys")?);
            if let Some((state, reason)) = refusal {
                call.req_states.push(state);
                call.req_firsts.push(None);
                call.key_counts.push(0);
                call.checks.push(None);
                call.check_afters.push(0);
                call.refusals.push(reason);
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
                let (filter, everything) =
                    sql::flat_filter(&condition.query, 2, &mut call.check_params)?;
                // Of the batch's events, those of the requests this one builds on are
                // exempt ($3); stored events never are (they all precede the batch).
                let exempt = if request.builds_on.is_empty() {
                    ""
                } else {
                    " AND position <> ALL($3)"
                };
                Some(format!(
                    "SELECT position, type FROM {}.events WHERE position > $1{exempt} AND {filter} \
                     ORDER BY {} LIMIT 1",
                    store.inner.quoted,
                    sql::limited_order(everything)
                ))
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
            let get = |i: usize| {
                row.try_get::<_, Option<i64>>(i)
                    .map_err(StoreError::backend)
            };
            let number: i32 = row.try_get(0).map_err(StoreError::backend)?;
            if usize::try_from(number).ok() != Some(index) {
                return Err(odd(format!(
                    "append_batch returned the result of request {number} in place {index}"
                )));
            }
            let status: i32 = row.try_get(1).map_err(StoreError::backend)?;
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
                    let entry: i32 = row.try_get(6).map_err(StoreError::backend)?;
                    let index = usize::try_from(entry)
                        .ok()
                        .and_then(|e| request.builds_on.get(e))
                        .ok_or_else(|| odd(format!("append_batch named dependency {entry}")))?;
                    Err(AppendError::Dependency { index: *index })
                }
                EMPTY => Err(AppendError::Empty),
                REFUSED => Err(self.refusals[index]
                    .take()
                    .unwrap_or_else(|| backend(Unstorable(String::new())))),
                DUPLICATE => {
                    let key: String = row.try_get(4).map_err(StoreError::backend)?;
                    let positions: Vec<i64> = row.try_get(5).map_err(StoreError::backend)?;
                    let positions = positions
                        .into_iter()
                        .map(stored_position)
                        .collect::<Result<_, _>>()?;
                    Err(AppendError::Duplicate { key, positions })
                }
                CONFLICT => {
                    let position = position()?;
                    let event_type: String = row.try_get(3).map_err(StoreError::backend)?;
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

/// Why `append_batch` failed.
enum Failure {
    /// An idempotency key was recorded concurrently: nothing was written.
    KeyRace,
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.code().map(SqlState::code) == Some(KEY_RACE) {
            Failure::KeyRace
        } else {
            Failure::Store(StoreError::backend(e))
        }
    }
}

impl PostgresStore {
    /// The first of `keys` (in byte order) recorded before, with its positions.
    async fn recorded_key<S: ToStatement + ?Sized + Sync + Send>(
        &self,
        client: &(impl GenericClient + Sync),
        statement: &S,
        keys: &[String],
    ) -> Result<Option<(String, Vec<Position>)>, StoreError> {
        if keys.is_empty() {
            return Ok(None);
        }
        let row = client
            .query_opt(statement, &[&keys])
            .await
            .map_err(StoreError::backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let key: String = row.try_get(0).map_err(StoreError::backend)?;
        let positions: Vec<i64> = row.try_get(1).map_err(StoreError::backend)?;
        let positions = positions
            .into_iter()
            .map(stored_position)
            .collect::<Result<_, _>>()?;
        Ok(Some((key, positions)))
    }

    /// Runs `batch` through `append_batch`: one statement, so one round trip (in its own
    /// implicit transaction), unless the test hook must run before the commit.
    async fn run(
        &self,
        batch: &[AppendRequest],
        upfront: bool,
    ) -> Result<Vec<Result<Appended, AppendError>>, Failure> {
        let call = Call::new(self, batch, upfront)?;
        let params = call.params();
        let mut client: Object = self.client().await?;
        let statement = client.prepare_cached(&self.inner.sql.batch).await?;
        let Some(hook) = &self.inner.before_commit else {
            // A statement outside BEGIN runs in a transaction of its own, committed when
            // it returns: all of the batch or (on any error) none of it.
            let rows = client.query(&statement, &params).await?;
            drop(params);
            return Ok(call.outcomes(batch, &rows)?);
        };
        let tx = client.transaction().await.map_err(StoreError::backend)?;
        let rows = tx.query(&statement, &params).await?;
        drop(params);
        let results = call.outcomes(batch, &rows)?;
        let positions: Vec<Position> = results
            .iter()
            .flatten()
            .flat_map(|a| a.positions.iter().copied())
            .collect();
        if positions.is_empty() {
            tx.rollback().await.map_err(StoreError::backend)?;
        } else {
            hook(&positions).await;
            tx.commit().await.map_err(StoreError::backend)?;
        }
        Ok(results)
    }

    /// [`EventStore::append`](factum::EventStore::append): a batch of one, whose positions
    /// are allocated after its checks (a refused append draws none).
    pub(crate) async fn append_events(
        &self,
        mut events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended, AppendError> {
        factum::store::prepare_append(&mut events, condition.as_ref())?;
        for event in &events {
            if i32::try_from(event.version).is_err() {
                // Reported before anything else about the event, as ever.
                return Err(backend(Unstorable(format!(
                    "version {} of {} is above {}, the most a PostgreSQL integer holds",
                    event.version,
                    event.event_type,
                    i32::MAX
                ))));
            }
            storable(event).map_err(|reason| backend(Unstorable(reason)))?;
        }
        let batch = [AppendRequest::new(events, condition)];
        match self.run(&batch, false).await {
            Ok(mut results) => results.pop().unwrap_or_else(|| {
                Err(backend(Unstorable(
                    "append_batch returned no result".to_owned(),
                )))
            }),
            Err(Failure::Store(e)) => Err(AppendError::Store(e)),
            Err(Failure::KeyRace) => {
                // A concurrent append recorded one of the keys first: nothing was written.
                let keys = idempotency_keys(&batch[0].events);
                let client = self.client().await?;
                let found = self
                    .recorded_key(&**client, self.inner.sql.recorded_key.as_str(), &keys)
                    .await?;
                Err(match found {
                    Some((key, positions)) => AppendError::Duplicate { key, positions },
                    None => backend(Unstorable(
                        "an idempotency key was recorded concurrently and then vanished".to_owned(),
                    )),
                })
            }
        }
    }

    /// [`EventStore::append_batch`](factum::EventStore::append_batch): one transaction,
    /// one statement (or, past [`PostgresOptions::pipeline_above`] requests, the pipelined
    /// path: [`PostgresStore::append_pipelined`]).
    ///
    /// [`PostgresOptions::pipeline_above`]: crate::PostgresOptions::pipeline_above
    ///
    /// The locks of every request are taken first, then positions for all their events
    /// are allocated at once (requests that fail leave a gap), then each request is checked
    /// in order against the stored events and the requests accepted before it (inserted
    /// by then, in the same transaction), and inserted if accepted. A request building on
    /// earlier ones ([`AppendRequest::builds_on`]) fails with [`AppendError::Dependency`]
    /// if one of them failed; otherwise the events of those requests are left out of its
    /// check (never a stored event: those all precede the batch).
    pub(crate) async fn append_requests(
        &self,
        mut batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        // The rest of `prepare_append`'s checks are refusals, decided per request after
        // its dependencies, by `Call::new` and `append_pipelined`.
        for event in batch.iter_mut().flat_map(|r| &mut r.events) {
            event.dedup_tags();
        }
        let total: usize = batch.iter().map(|r| r.events.len()).sum();
        if total == 0 {
            let mut results = Vec::with_capacity(batch.len());
            for (index, request) in batch.iter().enumerate() {
                let error = exempt(index, &request.builds_on, &results)
                    .err()
                    .unwrap_or(AppendError::Empty);
                results.push(Err(error));
            }
            return Ok(results);
        }
        if batch.len() > self.inner.pipeline_above {
            return self.append_pipelined(&batch, total).await;
        }
        match self.run(&batch, true).await {
            Ok(results) => Ok(results),
            Err(Failure::Store(e)) => Err(e),
            // Impossible while the keys' exclusive locks are held; nothing was committed.
            Err(Failure::KeyRace) => Err(StoreError::backend(Unstorable(
                "an idempotency key of the batch was recorded concurrently; nothing was written"
                    .to_owned(),
            ))),
        }
    }
}

/// The default of [`PostgresOptions::pipeline_above`](crate::PostgresOptions::pipeline_above):
/// the most requests a batch
/// ([`EventStore::append_batch`](factum::EventStore::append_batch)) sends through the SQL
/// function `append_batch`, in one round trip; a larger batch takes the pipelined path.
///
/// Inside the function, each request's condition check is a dynamic statement, planned at
/// every call (about 85 µs), and each accepted request is an `INSERT` of its own (about
/// 50 µs): cheap for a few requests, where saving round trips wins, but several times
/// dearer per request than the pipelined path's prepared (plan-cached) checks, sent
/// together, and single bulk insert, which costs about 5 round trips whatever the size.
/// Measured on a local server with one conditional event per request, the two cost the
/// same at 4 requests; from 6 on the pipelined path wins (3.4 times at 100 requests).
pub const PIPELINE_ABOVE: usize = 4;

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
        let row = tx
            .query_opt(&check.statement, &params)
            .await
            .map_err(StoreError::backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let position: i64 = row.try_get(0).map_err(StoreError::backend)?;
        let event_type: String = row.try_get(1).map_err(StoreError::backend)?;
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
            .prepare_cached(&format!(
                "SELECT position, type FROM {}.events WHERE position > $1 AND {} \
                 ORDER BY {} LIMIT 1",
                self.inner.quoted,
                filter.sql,
                filter.limited_order()
            ))
            .await
            .map_err(StoreError::backend)?;
        Ok(Some(ConflictCheck {
            statement,
            after: condition.after.map_or(0, position_param),
            filter,
        }))
    }

    /// [`EventStore::append_batch`](factum::EventStore::append_batch) for a batch of more
    /// than [`PIPELINE_ABOVE`] requests (with `total` events, at least one), in one
    /// transaction, with the same results as `append_batch` the function:
    ///
    /// 1. Take the locks of every request (`lock_keys`), then allocate positions for all
    ///    the batch's events at once (`allocate_positions`: nothing writes before).
    /// 2. Fetch what each request is checked against in the stored events — its first
    ///    recorded idempotency key and the first event conflicting with its condition —
    ///    with prepared statements sent together (one round trip). Every stored event
    ///    precedes the batch, so none is exempt.
    /// 3. Decide each request in order, client-side, as the function does: a failed (or
    ///    not earlier) request it builds on is a [`AppendError::Dependency`]; an empty request,
    ///    one whose condition guards nothing ([`AppendError::EmptyCondition`]) or an
    ///    unstorable one is refused (none draws positions); then its keys, among
    ///    the stored ones and those of the requests accepted before it
    ///    ([`AppendError::Duplicate`]); then its condition, on the stored events and the
    ///    events of the requests accepted before it other than those it builds on
    ///    ([`AppendError::Conflict`], the lowest position).
    /// 4. Insert the accepted events and record their keys in one `insert_events` call;
    ///    commit.
    pub(crate) async fn append_pipelined(
        &self,
        batch: &[AppendRequest],
        total: usize,
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
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
        let tx = client.transaction().await.map_err(StoreError::backend)?;
        let lock = tx
            .prepare_cached(&self.inner.sql.lock)
            .await
            .map_err(StoreError::backend)?;
        tx.query(&lock, &[&lock_ids, &lock_exclusive])
            .await
            .map_err(StoreError::backend)?;
        let allocate = tx
            .prepare_cached(&self.inner.sql.allocate)
            .await
            .map_err(StoreError::backend)?;
        let first: i64 = tx
            .query_one(&allocate, &[&total_i32])
            .await
            .map_err(StoreError::backend)?
            .try_get(0)
            .map_err(StoreError::backend)?;
        let mut next = stored_position(first)?.0;

        // The stored state each request is checked against, fetched in one round trip.
        let duplicate_statement = tx
            .prepare_cached(&self.inner.sql.recorded_key)
            .await
            .map_err(StoreError::backend)?;
        let keys: Vec<Vec<String>> = batch.iter().map(|r| idempotency_keys(&r.events)).collect();
        let mut prepared = Vec::with_capacity(batch.len());
        for request in batch {
            prepared.push(match &request.condition {
                Some(c) if !request.events.is_empty() => self.conflict_check(&tx, c).await?,
                _ => None,
            });
        }
        let checks = batch
            .iter()
            .zip(&keys)
            .zip(&prepared)
            .map(|((request, keys), check)| async {
                let duplicate = if request.events.is_empty() {
                    None
                } else {
                    self.recorded_key(&*tx, &duplicate_statement, keys).await?
                };
                let conflict = ConflictCheck::run(check.as_ref(), &tx).await?;
                Ok::<_, StoreError>((duplicate, conflict))
            });
        let stored = futures::future::try_join_all(checks).await?;

        let mut results = Vec::with_capacity(batch.len());
        let mut accepted: Vec<(Position, &NewEvent)> = Vec::new();
        let mut recorded: HashMap<&str, Vec<Position>> = HashMap::new();
        let mut key_rows: Vec<(String, i64, i32)> = Vec::new();
        for (index, ((request, keys), (stored_duplicate, stored_conflict))) in
            batch.iter().zip(&keys).zip(stored).enumerate()
        {
            let exempt = match exempt(index, &request.builds_on, &results) {
                Ok(exempt) => exempt,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            if request.events.is_empty() {
                results.push(Err(AppendError::Empty));
                continue;
            }
            if request
                .condition
                .as_ref()
                .is_some_and(AppendCondition::guards_nothing)
            {
                results.push(Err(AppendError::EmptyCondition));
                continue;
            }
            if let Err(reason) = request.events.iter().try_for_each(storable) {
                results.push(Err(AppendError::Store(StoreError::backend(Unstorable(
                    reason,
                )))));
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
            for key in keys {
                recorded.insert(key, positions.clone());
                let count = i32::try_from(positions.len()).map_err(|_| {
                    StoreError::backend(Unstorable("too many events in one append".into()))
                })?;
                key_rows.push((key.clone(), position_param(positions[0]), count));
            }
            accepted.extend(positions.iter().copied().zip(&request.events));
            results.push(Ok(Appended { positions }));
        }

        if accepted.is_empty() {
            tx.rollback().await.map_err(StoreError::backend)?;
            return Ok(results);
        }
        let mut columns = Columns::new();
        for (_, event) in &accepted {
            columns.push(event)?;
        }
        let positions: Vec<i64> = accepted.iter().map(|(p, _)| position_param(*p)).collect();
        let key_names: Vec<&str> = key_rows.iter().map(|(k, _, _)| k.as_str()).collect();
        let key_firsts: Vec<i64> = key_rows.iter().map(|(_, f, _)| *f).collect();
        let key_counts: Vec<i32> = key_rows.iter().map(|(_, _, c)| *c).collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&positions];
        params.extend(columns.params());
        params.extend([&key_names as &(dyn ToSql + Sync), &key_firsts, &key_counts]);
        params.push(&columns.recorded_ats);
        let insert = tx
            .prepare_cached(&self.inner.sql.insert)
            .await
            .map_err(StoreError::backend)?;
        let written: i32 = tx
            .query_one(&insert, &params)
            .await
            .map_err(StoreError::backend)?
            .try_get(0)
            .map_err(StoreError::backend)?;
        if usize::try_from(written).ok() != Some(key_rows.len()) {
            // Impossible while the keys' exclusive locks are held; never commit half.
            tx.rollback().await.map_err(StoreError::backend)?;
            return Err(StoreError::backend(Unstorable(
                "an idempotency key of the batch was recorded concurrently; nothing was written"
                    .to_owned(),
            )));
        }
        if let Some(hook) = &self.inner.before_commit {
            let all: Vec<Position> = accepted.iter().map(|(p, _)| *p).collect();
            hook(&all).await;
        }
        tx.commit().await.map_err(StoreError::backend)?;
        Ok(results)
    }
}

/// The positions a request of a batch is exempt from (ascending): those written by the
/// requests (at indexes below `index`) it builds on; or the dependency error if one of
/// them failed or is not earlier.
fn exempt(
    index: usize,
    builds_on: &[usize],
    results: &[Result<Appended, AppendError>],
) -> Result<Vec<Position>, AppendError> {
    let mut exempt = Vec::new();
    for &earlier in builds_on {
        match results.get(earlier) {
            Some(Ok(appended)) if earlier < index => exempt.extend(&appended.positions),
            _ => return Err(AppendError::Dependency { index: earlier }),
        }
    }
    exempt.sort_unstable();
    Ok(exempt)
}

/// Why PostgreSQL cannot store `event` (its text columns cannot hold NUL characters),
/// checked before anything is written so that a batch refuses only the request carrying
/// it.
pub(crate) fn storable(event: &NewEvent) -> Result<(), String> {
    let nul = |what: &str, text: &str| {
        if text.contains('\0') {
            Err(format!(
                "{what} of an event of type {:?} contains a NUL character, which PostgreSQL text cannot hold",
                event.event_type
            ))
        } else {
            Ok(())
        }
    };
    nul("the type name", &event.event_type)?;
    for tag in &event.tags {
        nul("a tag key", &tag.key)?;
        nul("a tag value", &tag.value)?;
    }
    if let Some(key) = &event.metadata.idempotency_key {
        nul("the idempotency key", key)?;
    }
    if i32::try_from(event.version).is_err() {
        return Err(format!(
            "version {} of {} is above {}, the most a PostgreSQL integer holds",
            event.version,
            event.event_type,
            i32::MAX
        ));
    }
    if let Some(time) = event.recorded_at
        && !in_timestamptz_range(time)
    {
        return Err(format!(
            "the recorded_at of an event of type {:?} ({time:?}) is outside the range of a PostgreSQL timestamptz (4713 BC to 294276 AD)",
            event.event_type
        ));
    }
    if event.payload.codec == Codec::Json && std::str::from_utf8(&event.payload.bytes).is_err() {
        return Err(format!(
            "the JSON payload of {} is not UTF-8",
            event.event_type
        ));
    }
    Ok(())
}

/// Whether PostgreSQL's `timestamptz` holds `time`: from 4714-11-24 BC up to (not
/// including) 294277-01-01, in microseconds since 2000-01-01 (PostgreSQL's
/// `MIN_TIMESTAMP` and `END_TIMESTAMP`). Checked before sending, so that one event out
/// of range fails its own request: the server refuses the whole parameter array, so the
/// statement of the whole batch would fail ("timestamp out of range"), and far enough
/// out the client library's conversion to microseconds wraps around.
fn in_timestamptz_range(time: SystemTime) -> bool {
    const MIN_TIMESTAMP: i128 = -211_813_488_000_000_000;
    const END_TIMESTAMP: i128 = 9_223_371_331_200_000_000;
    let since_2000 = SystemTime::UNIX_EPOCH + Duration::from_secs(crate::row::PG_EPOCH_FROM_UNIX);
    let micros = match whole_micros(time).duration_since(since_2000) {
        Ok(after) => i128::try_from(after.as_micros()).unwrap_or(i128::MAX),
        Err(before) => i128::try_from(before.duration().as_micros()).map_or(i128::MIN, |m| -m),
    };
    (MIN_TIMESTAMP..END_TIMESTAMP).contains(&micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamptz_range_is_checked_before_sending() {
        let year = Duration::from_secs(31_556_952);
        assert!(in_timestamptz_range(SystemTime::UNIX_EPOCH));
        assert!(in_timestamptz_range(SystemTime::UNIX_EPOCH - year * 6_000));
        assert!(!in_timestamptz_range(SystemTime::UNIX_EPOCH - year * 7_000));
        assert!(in_timestamptz_range(
            SystemTime::UNIX_EPOCH + year * 290_000
        ));
        assert!(!in_timestamptz_range(
            SystemTime::UNIX_EPOCH + year * 300_000
        ));
    }
}
