//! Shared by the integration tests: a fresh store in its own schema, dropped at the end.
#![allow(dead_code)]

use std::sync::Arc;

use factum::{
    AppendCondition, AppendError, AppendRequest, Appended, EventStore, NewEvent, Position, Query,
    ReadOptions, Snapshot, StoreError, StoredEvent,
};
use factum_postgres::{PostgresOptions, PostgresStore, database_url};
use futures::Stream;
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

/// A store that drops its schema when its last clone goes: what the conformance cases
/// take.
#[derive(Clone)]
pub struct Guarded {
    pub store: PostgresStore,
    _guard: Arc<SchemaGuard>,
}

impl Guarded {
    pub async fn new(what: &str) -> Guarded {
        let (store, guard) = store(what).await;
        Guarded {
            store,
            _guard: Arc::new(guard),
        }
    }
}

impl EventStore for Guarded {
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a {
        self.store.read(query, options)
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended, AppendError> {
        self.store.append(events, condition).await
    }

    async fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        self.store.append_batch(batch).await
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        self.store.head().await
    }

    async fn load_snapshot(&self, key: &str) -> Result<Option<Snapshot>, StoreError> {
        self.store.load_snapshot(key).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.store.save_snapshot(snapshot).await
    }
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
