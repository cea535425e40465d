//! Shared by the integration tests: a fresh store in its own schema, dropped at the end.
#![allow(dead_code)]

use factum::conformance::Guarded;
use factum::{EventStore, NewEvent, Query, ReadOptions, StoredEvent};
use factum_postgres::{PostgresOptions, PostgresStore, database_url};
use tokio_postgres::NoTls;

/// A schema name no other test uses: `factum_test_<what>_<random>`.
pub fn unique_schema(what: &str) -> String {
    format!("factum_test_{what}_{}", uuid::Uuid::now_v7().simple())
}

/// Drops its schema when dropped, also when the test panics.
pub struct SchemaGuard {
    pub schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        // A thread of its own: this may run inside (or after) the test's runtime.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let client = connect_raw().await;
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("could not drop schema {}: {e}", self.schema);
        }
    }
}

/// A plain connection to the test server; panics naming `DATABASE_URL` if it is
/// unreachable.
pub async fn connect_raw() -> tokio_postgres::Client {
    let url = database_url();
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .unwrap_or_else(|e| unreachable_server(&url, &e));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn unreachable_server(url: &str, e: &dyn std::fmt::Display) -> ! {
    panic!(
        "cannot reach PostgreSQL at {url}: {e}. These tests need a running server: set \
         DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) to one"
    )
}

/// The `application_name` of the connections of the test store in `schema`.
pub fn application_name(schema: &str) -> String {
    format!("factum-test-{}", &schema[schema.len() - 16..])
}

/// A store in a fresh schema, and the guard dropping it.
pub async fn store_with(
    what: &str,
    configure: impl FnOnce(&mut PostgresOptions),
) -> (PostgresStore, SchemaGuard) {
    let schema = unique_schema(what);
    let guard = SchemaGuard {
        schema: schema.clone(),
    };
    let mut options = PostgresOptions::from_env(&schema);
    options.application_name = application_name(&schema);
    configure(&mut options);
    let url = options.url.clone();
    let store = PostgresStore::connect_with(options)
        .await
        .unwrap_or_else(|e| unreachable_server(&url, &e));
    (store, guard)
}

/// A store in a fresh schema with default options.
pub async fn store(what: &str) -> (PostgresStore, SchemaGuard) {
    store_with(what, |_| {}).await
}

/// A store in a fresh schema, dropped when its last clone goes: what the conformance cases
/// take.
pub async fn guarded(what: &str) -> Guarded<PostgresStore, SchemaGuard> {
    let (store, guard) = store(what).await;
    Guarded::new(store, guard)
}

/// A version-1 JSON event of `event_type` with `tags`.
pub fn event(event_type: &str, tags: &[(&str, &str)]) -> NewEvent {
    NewEvent {
        event_type: event_type.to_owned(),
        version: 1,
        tags: tags.iter().map(|(k, v)| factum::Tag::new(*k, *v)).collect(),
        payload: factum::model::Payload {
            codec: factum::Codec::Json,
            bytes: br#"{"n":1}"#.to_vec(),
        },
        metadata: factum::Metadata::new(),
        recorded_at: None,
    }
}

/// Everything in the store, in order.
pub async fn read_all(store: &impl EventStore) -> Vec<StoredEvent> {
    use futures::TryStreamExt;
    store
        .read(&Query::all(), ReadOptions::forward())
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("reading the whole store failed: {e}"))
}
