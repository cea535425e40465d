//! Rows that do not decode are errors naming their position, type and version: never a
//! panic, never a silent skip. What listeners and exactly-once projections do behind such
//! a row is the runtime's `factum::conformance::corrupt_rows`, run here through a harness;
//! what is PostgreSQL's own is here.

mod common;

use factum::SnapshotStore;
use factum::model::DecodeReason;
use factum::{EventStore, Query, ReadOptions, StoreError};
use factum_postgres::PostgresStore;
use futures::StreamExt;

/// Runs `sql` on a raw connection, `{schema}` in it standing for the store's schema.
async fn execute(store: &PostgresStore, sql: &str) {
    let sql = sql.replace("{schema}", &format!("\"{}\"", store.schema()));
    common::connect_raw()
        .await
        .batch_execute(&sql)
        .await
        .unwrap_or_else(|e| panic!("{sql} failed: {e}"));
}

/// A row read back: its type, or the error's position, type, version and reason.
type Read = Result<String, (u64, String, u32, String)>;

/// Inserts a good event, then a row spoiled by `spoil` (SQL assignments), then a good one;
/// returns what a full read yields.
async fn read_around(what: &str, spoil: &str) -> Vec<Read> {
    let (store, _guard) = common::store(what).await;
    for _ in 0..3 {
        store
            .append(vec![common::event("Good", &[("k", "v")])], None)
            .await
            .unwrap_or_else(|e| panic!("an append failed: {e}"));
    }
    execute(
        &store,
        &format!("UPDATE {{schema}}.events SET type = 'Bad', {spoil} WHERE position = 2"),
    )
    .await;
    let query = Query::all();
    store
        .read(&query, ReadOptions::forward())
        .map(|r| match r {
            Ok(e) => Ok(e.event_type),
            Err(StoreError::Corrupt(d)) => {
                assert!(matches!(d.reason, DecodeReason::Corrupt(_)));
                Err((d.position.0, d.event_type, d.version, d.reason.to_string()))
            }
            Err(other) => panic!("expected a corrupt-row error, got {other}"),
        })
        .collect()
        .await
}

fn assert_corrupt(results: &[Read], version: u32, says: &str) {
    assert_eq!(results.len(), 3, "{results:?}");
    assert_eq!(results[0], Ok("Good".to_owned()));
    match &results[1] {
        Err((2, t, v, reason)) if t == "Bad" && *v == version => {
            assert!(reason.contains(says), "{reason:?} should say {says:?}");
        }
        other => panic!("the spoiled row must be an error at #2 naming Bad v{version}: {other:?}"),
    }
    assert_eq!(results[2], Ok("Good".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_codec_is_a_corrupt_row() {
    let results = read_around("codec", "codec = 'zstd', payload_bytes = '\\x00'").await;
    assert_corrupt(&results, 1, "unknown codec \"zstd\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_tag_is_a_corrupt_row() {
    let results = read_around("tag", "tags = ARRAY['k:v']").await;
    assert_corrupt(&results, 1, "corrupt tag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_payload_is_a_corrupt_row() {
    let results = read_around("payload", "version = 4, payload_json = NULL").await;
    assert_corrupt(&results, 4, "payload_json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_version_is_a_corrupt_row() {
    let results = read_around("version", "version = -3").await;
    assert_corrupt(&results, 0, "negative version -3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_version_still_names_the_position_and_type() {
    let (store, _guard) = common::store("null_version").await;
    for _ in 0..3 {
        store
            .append(vec![common::event("Good", &[("k", "v")])], None)
            .await
            .unwrap_or_else(|e| panic!("an append failed: {e}"));
    }
    execute(
        &store,
        "ALTER TABLE {schema}.events ALTER COLUMN version DROP NOT NULL; \
         UPDATE {schema}.events SET type = 'Bad', version = NULL WHERE position = 2",
    )
    .await;
    let read: Vec<_> = store
        .read(&Query::all(), ReadOptions::forward())
        .collect()
        .await;
    match &read[1] {
        Err(StoreError::Corrupt(d)) => {
            assert_eq!((d.position.0, d.event_type.as_str()), (2, "Bad"), "{d}");
            assert!(d.reason.to_string().contains("version"), "{d}");
        }
        other => panic!("a row without a version must be corrupt at #2, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_with_an_unknown_codec_is_corrupt() {
    let (store, _guard) = common::store("snapshot").await;
    execute(
        &store,
        "INSERT INTO {schema}.snapshots VALUES ('k', 'q', 5, 'zstd', '\\x00')",
    )
    .await;
    match store.load_snapshot("k").await {
        Err(StoreError::Corrupt(d)) => {
            assert_eq!(d.position.0, 5);
            assert!(d.to_string().contains("zstd"), "{d}");
        }
        other => panic!("a snapshot with an unknown codec must be corrupt, got {other:?}"),
    }
}

// ---- Listeners and projections behind a row they cannot read ----

use factum::conformance::corrupt_rows::{CorruptRowHarness, NAME};
use factum::listen::HandlerError;
use factum::{Position, StoredEvent};
use factum_postgres::{PgProjection, PgProjectionSink};

/// Records the positions it applies in a table of the store's schema.
struct Applied {
    schema: String,
}

impl PgProjection for Applied {
    fn name(&self) -> &str {
        NAME
    }

    fn query(&self) -> Query {
        Query::all()
    }

    async fn apply(
        &mut self,
        client: &tokio_postgres::Client,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        client
            .execute(
                &format!("INSERT INTO \"{}\".applied VALUES ($1)", self.schema),
                &[&(event.position.0 as i64)],
            )
            .await
            .map(|_| ())
            .map_err(HandlerError::permanent)
    }

    async fn reset(&mut self, client: &tokio_postgres::Client) -> Result<(), HandlerError> {
        client
            .batch_execute(&format!("DELETE FROM \"{}\".applied", self.schema))
            .await
            .map_err(HandlerError::transient)
    }
}

/// A store in a fresh schema, with the projection's table in it.
struct Fixture {
    store: PostgresStore,
    _guard: common::SchemaGuard,
}

impl CorruptRowHarness for Fixture {
    type Store = PostgresStore;
    type Sink = PgProjectionSink<Applied>;

    fn store(&self) -> &PostgresStore {
        &self.store
    }

    async fn sink(&self) -> PgProjectionSink<Applied> {
        PgProjectionSink::new(
            self.store.clone(),
            Applied {
                schema: self.store.schema().to_owned(),
            },
        )
    }

    async fn applied(&self) -> Vec<u64> {
        common::connect_raw()
            .await
            .query(
                &format!(
                    "SELECT position FROM \"{}\".applied ORDER BY position",
                    self.store.schema()
                ),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("reading the read model failed: {e}"))
            .iter()
            .map(|r| r.get::<_, i64>(0) as u64)
            .collect()
    }

    async fn set_codec(&self, position: Position, codec: &str) {
        let position = position.0;
        execute(
            &self.store,
            &format!("UPDATE {{schema}}.events SET codec = '{codec}' WHERE position = {position}"),
        )
        .await;
    }
}

factum::corrupt_row_conformance_tests!(|| fixture("unreadable_row"));

async fn fixture(what: &str) -> Fixture {
    let (store, guard) = common::store(what).await;
    execute(
        &store,
        "CREATE TABLE {schema}.applied (position bigint PRIMARY KEY)",
    )
    .await;
    Fixture {
        store,
        _guard: guard,
    }
}
