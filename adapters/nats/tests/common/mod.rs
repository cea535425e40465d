//! Shared by the integration tests: servers, per-test names, and a small domain.
#![allow(dead_code)]

pub mod domain;

use std::time::Duration;

use factum_nats::async_nats;
use factum_nats::lanes::check_server;
use factum_nats::{LanesOptions, nats_url};
use factum_postgres::PostgresStore;

/// A connection to the NATS server at `NATS_URL`; panics with what to do when it is
/// unreachable or older than the lanes need.
pub async fn nats() -> async_nats::Client {
    let url = nats_url();
    let client = async_nats::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach NATS at {url}: {e}. These tests need NATS 2.11 or newer with \
             JetStream: run `bash .ci/services` and set NATS_URL=nats://127.0.0.1:14222"
        )
    });
    if let Err(e) = check_server(&client) {
        panic!(
            "NATS_URL={url}: {e}. Run `bash .ci/services` (it starts NATS 2.15.1 on port \
             14222) and set NATS_URL=nats://127.0.0.1:14222"
        );
    }
    client
}

/// A store in a schema no other test uses (drop it with `drop_schema` at the end).
pub async fn store(what: &str) -> PostgresStore {
    let schema = format!("factum_test_nats_{what}_{}", uuid::Uuid::now_v7().simple());
    PostgresStore::from_env(&schema).await.unwrap_or_else(|e| {
        panic!(
            "cannot open a PostgreSQL store: {e}. These tests need a running server: set \
             DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) to one"
        )
    })
}

/// Lanes options with a stream and subjects no other test uses, and short timings:
/// 4 partitions, ack wait 2 s, pin TTL 1 s, reply timeout 10 s.
pub fn options(what: &str) -> LanesOptions {
    let unique = uuid::Uuid::now_v7().simple().to_string();
    LanesOptions {
        partitions: 4,
        ack_wait: Duration::from_secs(2),
        pinned_ttl: Duration::from_secs(1),
        reply_timeout: Duration::from_secs(10),
        ..LanesOptions::new(
            format!("FACTUM_TEST_{what}_{unique}"),
            format!("factum-test.{what}.{unique}"),
        )
    }
}

/// Deletes the test's stream and schema.
pub async fn clean_up(nats: &async_nats::Client, options: &LanesOptions, store: &PostgresStore) {
    factum_nats::lanes::delete_stream(nats, options)
        .await
        .expect("delete the test stream");
    store.drop_schema().await.expect("drop the test schema");
}
