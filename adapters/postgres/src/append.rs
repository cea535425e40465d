//! Conditional appends: lock, check, allocate, insert, commit — in one READ COMMITTED
//! transaction.
//!
//! 1. Take the append's advisory locks (see [`locks`](crate::locks)) in ascending key
//!    order, in one statement.
//! 2. Check the idempotency keys (an existing one is [`AppendError::Duplicate`]), then
//!    the condition: the first event after its position matching its query is
//!    [`AppendError::Conflict`]. Each check is a fresh statement, so in READ COMMITTED it
//!    sees everything committed before it started — including every append that held a
//!    lock this one waited for. No watermark here. (Both checks are sent right behind the
//!    lock statement, in one round trip; the server runs them after it.)
//! 3. Allocate positions and insert the events and the idempotency keys, in one call of
//!    `append_events` (see the crate documentation for why allocation is ordered
//!    with transaction ids). Nothing before this call writes.
//! 4. Commit. A key recorded meanwhile by a concurrent duplicate (impossible while both
//!    hold the key's exclusive lock, checked anyway) rolls back and is a duplicate too.
//!
//! Whatever fails — the server, the connection — the transaction commits entirely or not
//! at all, and the error is an [`AppendError::Store`] holding a [`StoreError::Backend`].

use std::collections::{BTreeSet, HashMap};

use deadpool_postgres::{Object, Transaction};
use factum::{
    AppendCondition, AppendError, AppendRequest, Appended, Codec, NewEvent, Position, StoreError,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Statement, ToStatement};
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
        Ok(())
    }

    /// The parameters shared by `insert_events` and `append_events`, from `types` to
    /// `idempotency_keys`.
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

/// The distinct idempotency keys of `events`, in byte order.
fn idempotency_keys(events: &[NewEvent]) -> Vec<String> {
    let keys: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.metadata.idempotency_key.as_deref())
        .collect();
    keys.into_iter().map(str::to_owned).collect()
}

impl PostgresStore {
    /// Prepares the lock statement (cached per connection).
    async fn lock_statement(&self, tx: &Transaction<'_>) -> Result<Statement, StoreError> {
        tx.prepare_cached(&self.inner.sql.lock)
            .await
            .map_err(StoreError::backend)
    }

    /// Takes the locks of `plan`. Sends its statement on the first poll.
    async fn lock(
        &self,
        tx: &Transaction<'_>,
        statement: &Statement,
        plan: &Plan,
    ) -> Result<(), StoreError> {
        let (keys, exclusive) = plan.arrays();
        tx.query(statement, &[&keys, &exclusive])
            .await
            .map_err(StoreError::backend)?;
        Ok(())
    }

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

    /// The statement checking `condition`, prepared; `None` when the condition's query
    /// matches nothing.
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

    /// Runs the test hook, if any, then commits.
    async fn commit(&self, tx: Transaction<'_>, positions: &[Position]) -> Result<(), StoreError> {
        if let Some(hook) = &self.inner.before_commit {
            hook(positions).await;
        }
        tx.commit().await.map_err(StoreError::backend)
    }

    /// [`EventStore::append`](factum::EventStore::append).
    pub(crate) async fn append_events(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended, AppendError> {
        if events.is_empty() {
            return Err(AppendError::Empty);
        }
        let keys = idempotency_keys(&events);
        let mut columns = Columns::new();
        for event in &events {
            columns.push(event)?;
        }
        let mut plan = Plan::default();
        plan.append(&self.inner.schema, &events, condition.as_ref());

        let mut client: Object = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // Prepare first, so that the three statements below go out in this order on the
        // first poll: the server runs the checks after the locks are granted.
        let lock_statement = self.lock_statement(&tx).await?;
        let duplicate_statement = tx
            .prepare_cached(&self.inner.sql.recorded_key)
            .await
            .map_err(backend)?;
        let check = match &condition {
            Some(c) => self.conflict_check(&tx, c).await?,
            None => None,
        };
        let (_, duplicate, conflict) = futures::try_join!(
            self.lock(&tx, &lock_statement, &plan),
            self.recorded_key(&*tx, &duplicate_statement, &keys),
            ConflictCheck::run(check.as_ref(), &tx),
        )?;
        if let Some((key, positions)) = duplicate {
            tx.rollback().await.map_err(backend)?;
            return Err(AppendError::Duplicate { key, positions });
        }
        if let Some((position, event_type)) = conflict {
            tx.rollback().await.map_err(backend)?;
            return Err(AppendError::Conflict {
                position,
                event_type,
            });
        }

        let statement = tx
            .prepare_cached(&self.inner.sql.append)
            .await
            .map_err(backend)?;
        let mut params: Vec<&(dyn ToSql + Sync)> = columns.params().to_vec();
        params.push(&keys);
        let row = tx.query_one(&statement, &params).await.map_err(backend)?;
        let first: i64 = row.try_get(0).map_err(backend)?;
        let recorded: i32 = row.try_get(1).map_err(backend)?;
        let first = stored_position(first)?;
        let positions: Vec<Position> = (0..events.len() as u64)
            .map(|i| Position(first.0 + i))
            .collect();
        if usize::try_from(recorded).ok() != Some(keys.len()) {
            // A concurrent append recorded one of the keys first: write nothing.
            tx.rollback().await.map_err(backend)?;
            let found = self
                .recorded_key(&**client, self.inner.sql.recorded_key.as_str(), &keys)
                .await?;
            return Err(match found {
                Some((key, positions)) => AppendError::Duplicate { key, positions },
                None => backend(Unstorable(
                    "an idempotency key was recorded concurrently and then vanished".to_owned(),
                )),
            });
        }
        self.commit(tx, &positions).await?;
        Ok(Appended { positions })
    }

    /// [`EventStore::append_batch`](factum::EventStore::append_batch): one transaction.
    ///
    /// The locks of every request are taken first, then positions for all their events
    /// are allocated at once (requests that fail leave a gap), then each request is checked
    /// in order against the stored events and the requests accepted before it, and the
    /// accepted ones are inserted together. A request building on earlier ones
    /// ([`AppendRequest::builds_on`]) fails with [`AppendError::Dependency`] if one of them
    /// failed; otherwise the events of those requests are left out of its in-batch check
    /// (its check against the stored events needs no exemption: they are all older than
    /// the batch).
    pub(crate) async fn append_requests(
        &self,
        batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
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
        let total_i32 = i32::try_from(total)
            .map_err(|_| StoreError::backend(Unstorable("too many events in one batch".into())))?;
        let mut plan = Plan::default();
        for request in &batch {
            plan.append(
                &self.inner.schema,
                &request.events,
                request.condition.as_ref(),
            );
        }
        let mut client: Object = self.client().await?;
        let tx = client.transaction().await.map_err(StoreError::backend)?;
        let lock_statement = self.lock_statement(&tx).await?;
        self.lock(&tx, &lock_statement, &plan).await?;
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
        for request in &batch {
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
        let all: Vec<Position> = accepted.iter().map(|(p, _)| *p).collect();
        self.commit(tx, &all).await?;
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
    if event.payload.codec == Codec::Json && std::str::from_utf8(&event.payload.bytes).is_err() {
        return Err(format!(
            "the JSON payload of {} is not UTF-8",
            event.event_type
        ));
    }
    Ok(())
}
