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
//! at all. A request past one of the [limits](factum::store::limits) every store holds
//! events to is refused before any SQL ([`AppendError::Unstorable`]), alone. When the
//! batch's statement fails for another reason the server gives (a SQLSTATE; say a
//! trigger refusing one event), it wrote nothing, and the batch runs again with each
//! request in a savepoint of its own ([`isolate`]): only the request the server refuses
//! fails, with the server's words ([`PostgresFailure`](crate::PostgresFailure)), those
//! building on it with [`AppendError::Dependency`], and the rest commit. A lost connection,
//! or a failed commit, fails the whole batch with an [`AppendError::Store`].

mod columns;
mod function;
mod isolate;
mod pipelined;

use std::collections::BTreeSet;

use factum::store::{exempt_positions, prepare_append};
use factum::{
    AppendCondition, AppendError, AppendRequest, Appended, NewEvent, Position, StoreError,
};
use tokio_postgres::{GenericClient, ToStatement};

use crate::PostgresStore;
use crate::error::db;
use isolate::Failure;

/// A value PostgreSQL returned or was to be sent that makes no sense (a negative
/// position, a result missing), or a batch too large for its arrays.
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

/// The distinct idempotency keys `events` record (the part before any fingerprint), in
/// byte order.
fn idempotency_keys(events: &[NewEvent]) -> Vec<String> {
    let keys: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.metadata.idempotency_key.as_deref())
        .map(factum::model::idempotency::recorded_key)
        .collect();
    keys.into_iter().map(str::to_owned).collect()
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
        let row = client.query_opt(statement, &[&keys]).await.map_err(db)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let key: String = row.try_get(0).map_err(db)?;
        let positions: Vec<i64> = row.try_get(1).map_err(db)?;
        let positions = positions
            .into_iter()
            .map(stored_position)
            .collect::<Result<_, _>>()?;
        Ok(Some((key, positions)))
    }

    /// [`EventStore::append`](factum::EventStore::append): a batch of one, whose positions
    /// are allocated after its checks (a refused append draws none).
    pub(crate) async fn append_events(
        &self,
        mut events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended, AppendError> {
        prepare_append(&mut events, condition.as_ref())?;
        let batch = [AppendRequest::new(events, condition)];
        match self.run(&batch, vec![None], false).await {
            Ok(mut results) => results.pop().unwrap_or_else(|| {
                Err(backend(Unstorable(
                    "append_batch returned no result".to_owned(),
                )))
            }),
            // Nothing to isolate: the append is the one request the server refused.
            Err(Failure::Statement(e)) => Err(AppendError::Store(db(e))),
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
    /// path: [`PostgresStore::append_pipelined`]); if that fails as the server refused it,
    /// each request isolated in a savepoint ([`isolate`]).
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
        let total: usize = batch.iter().map(|r| r.events.len()).sum();
        if total == 0 {
            let mut results = Vec::with_capacity(batch.len());
            for (index, request) in batch.iter().enumerate() {
                let error = exempt_positions(index, &request.builds_on, &results)
                    .err()
                    .unwrap_or(AppendError::Empty);
                results.push(Err(error));
            }
            return Ok(results);
        }
        let refusals = refusals_of(&mut batch);
        let first = if batch.len() > self.inner.pipeline_above {
            self.append_pipelined(&batch, refusals, total, false).await
        } else {
            self.run(&batch, refusals, true).await
        };
        match first {
            Ok(results) => Ok(results),
            Err(Failure::Statement(e)) => {
                let error = crate::PostgresFailure::from(e);
                tracing::warn!(
                    requests = batch.len(),
                    %error,
                    "a batch append failed as a whole; running its requests one by one"
                );
                // Checked again: the first run took the refusals; the events are as it left them.
                let refusals = refusals_of(&mut batch);
                match self.append_pipelined(&batch, refusals, total, true).await {
                    Ok(results) => Ok(results),
                    Err(Failure::Statement(e)) => Err(db(e)),
                    Err(Failure::Store(e)) => Err(e),
                    Err(Failure::KeyRace) => Err(key_race()),
                }
            }
            Err(Failure::Store(e)) => Err(e),
            Err(Failure::KeyRace) => Err(key_race()),
        }
    }
}

/// Impossible while the keys' exclusive locks are held; nothing was committed.
pub(super) fn key_race() -> StoreError {
    StoreError::backend(Unstorable(
        "an idempotency key of the batch was recorded concurrently; nothing was written".to_owned(),
    ))
}

/// Why each request of `batch` is refused before any SQL, if it is ([`prepare_append`]:
/// no event, a condition guarding nothing, an event past a limit); normalises the rest
/// (their repeated tags). Each refusal is reported after the request's dependencies, in
/// order, as every store does.
fn refusals_of(batch: &mut [AppendRequest]) -> Vec<Option<AppendError>> {
    batch
        .iter_mut()
        .map(|r| prepare_append(&mut r.events, r.condition.as_ref()).err())
        .collect()
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
///
/// Exported with the `test-hooks` feature only: for tests, not a stable API.
pub const PIPELINE_ABOVE: usize = 4;

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use factum::store::limits::{MAX_RECORDED_AT_MICROS, MIN_RECORDED_AT_MICROS};

    /// The times every store takes are times a `timestamptz` holds: from 4714-11-24 BC
    /// (PostgreSQL's `MIN_TIMESTAMP`) up to, not including, 294277-01-01
    /// (`END_TIMESTAMP`), in microseconds since 2000-01-01. Past them the server refuses
    /// the whole parameter array (so a batch's statement), and far enough out the client
    /// library's conversion to microseconds wraps around.
    #[test]
    fn the_shared_time_range_fits_a_timestamptz() {
        const MIN_TIMESTAMP: i128 = -211_813_488_000_000_000;
        const END_TIMESTAMP: i128 = 9_223_371_331_200_000_000;
        let since_2000 = |unix_micros: i64| {
            i128::from(unix_micros) - i128::from(crate::row::PG_EPOCH_FROM_UNIX) * 1_000_000
        };
        assert_eq!(since_2000(MIN_RECORDED_AT_MICROS), MIN_TIMESTAMP);
        assert!(since_2000(MAX_RECORDED_AT_MICROS) < END_TIMESTAMP);
        let latest = SystemTime::UNIX_EPOCH + Duration::from_micros(MAX_RECORDED_AT_MICROS as u64);
        assert!(latest > SystemTime::UNIX_EPOCH);
    }
}
