//! Schemas a store must not take over: PostgreSQL's own, `public`, and schemas holding
//! anything but a factum store are refused before any SQL changes them, and
//! `drop_schema()` never drops a schema that is not a store.

mod common;

use factum_postgres::{PostgresError, PostgresOptions, PostgresStore};

/// A database of its own on the test server, dropped at the end: what a store must refuse
/// to take over is then nothing the other tests share.
struct ScratchDatabase {
    name: String,
    url: String,
}

impl ScratchDatabase {
    async fn new() -> Self {
        let name = format!("factum_scratch_{}", uuid::Uuid::now_v7().simple());
        common::connect_raw()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("creating a scratch database failed: {e}"));
        let base = factum_postgres::database_url();
        let (base, query) = base.split_once('?').unwrap_or((&base, ""));
        let (server, _) = base
            .rsplit_once('/')
            .unwrap_or_else(|| panic!("DATABASE_URL must be a postgres:// URL: {base}"));
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        let url = format!("{server}/{name}{query}");
        ScratchDatabase { name, url }
    }

    async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to the scratch database failed: {e}"));
        tokio::spawn(connection);
        client
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A thread of its own: this may run inside (or after) the test's runtime.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                common::connect_raw()
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("could not drop database {}: {e}", self.name);
        }
    }
}

/// What `schema` holds, as `pg_describe_object` names it, sorted.
async fn contents(client: &tokio_postgres::Client, schema: &str) -> Vec<String> {
    client
        .query(
            "SELECT pg_describe_object(d.classid, d.objid, d.objsubid) FROM pg_depend d \
             JOIN pg_namespace n ON d.refclassid = 'pg_namespace'::regclass \
               AND d.refobjid = n.oid AND d.deptype = 'n' \
             WHERE n.nspname = $1 ORDER BY 1",
            &[&schema],
        )
        .await
        .unwrap_or_else(|e| panic!("listing schema {schema} failed: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_schemas_and_public_are_refused_before_any_sql() {
    let scratch = ScratchDatabase::new().await;
    let client = scratch.client().await;
    let mut before = Vec::new();
    for schema in ["information_schema", "pg_catalog", "public"] {
        before.push(contents(&client, schema).await);
    }
    for schema in [
        "information_schema",
        "pg_catalog",
        "pg_toast",
        "pg_temp_1",
        "pg_anything",
        "PG_Catalog",
        "public",
    ] {
        let options = PostgresOptions::new(scratch.url.clone(), schema);
        match PostgresStore::connect_with(options).await {
            Err(PostgresError::ReservedSchema { schema: named, .. }) => assert_eq!(named, schema),
            other => panic!("schema {schema} must be refused as reserved, got {other:?}"),
        }
    }
    for (i, schema) in ["information_schema", "pg_catalog", "public"]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            contents(&client, schema).await,
            before[i],
            "schema {schema} changed"
        );
    }
    drop(client);
    drop(scratch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_holding_anything_else_is_refused_and_left_as_it_was() {
    let client = common::connect_raw().await;
    let cases = [
        (
            "table",
            "CREATE TABLE {s}.users (id int PRIMARY KEY); INSERT INTO {s}.users VALUES (1)",
            "table",
        ),
        ("view", "CREATE VIEW {s}.answer AS SELECT 42 AS n", "view"),
        ("sequence", "CREATE SEQUENCE {s}.ids", "sequence"),
        (
            "function",
            "CREATE FUNCTION {s}.one() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "function",
        ),
        ("type", "CREATE TYPE {s}.mood AS ENUM ('ok')", "type"),
    ];
    for (what, sql, found) in cases {
        let schema = common::unique_schema(&format!("foreign_{what}"));
        let _guard = common::SchemaGuard {
            schema: schema.clone(),
        };
        let quoted = format!("\"{schema}\"");
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {quoted}; {}",
                sql.replace("{s}", &quoted)
            ))
            .await
            .unwrap_or_else(|e| panic!("creating the {what} failed: {e}"));
        let before = contents(&client, &schema).await;
        match PostgresStore::from_env(&schema).await {
            Err(PostgresError::ForeignSchema {
                schema: named,
                found: said,
            }) => {
                assert_eq!(named, schema);
                assert!(said.contains(found), "the error names the {what}: {said}");
            }
            other => panic!("a schema holding a {what} must be refused, got {other:?}"),
        }
        assert_eq!(
            contents(&client, &schema).await,
            before,
            "the {what}'s schema changed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_schema_becomes_a_store_and_a_store_keeps_its_read_models() {
    let schema = common::unique_schema("empty");
    let _guard = common::SchemaGuard {
        schema: schema.clone(),
    };
    let client = common::connect_raw().await;
    client
        .batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .unwrap_or_else(|e| panic!("creating the schema failed: {e}"));
    let store = PostgresStore::from_env(&schema)
        .await
        .unwrap_or_else(|e| panic!("an empty schema must become a store: {e}"));
    // A read model next to the store's tables, as projections keep: still a store.
    client
        .batch_execute(&format!("CREATE TABLE \"{schema}\".counts (n int)"))
        .await
        .unwrap_or_else(|e| panic!("creating a read model failed: {e}"));
    drop(store);
    let store = PostgresStore::from_env(&schema)
        .await
        .unwrap_or_else(|e| panic!("a store with a read model reopens: {e}"));
    store
        .drop_schema()
        .await
        .unwrap_or_else(|e| panic!("dropping a store's schema failed: {e}"));
    assert!(contents(&client, &schema).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_schema_never_drops_a_schema_that_is_not_a_store() {
    let (store, _guard) = common::store("drop_foreign").await;
    let quoted = format!("\"{}\"", store.schema());
    let client = common::connect_raw().await;
    // The store's schema is gone, and another application made one of the same name.
    client
        .batch_execute(&format!(
            "DROP SCHEMA {quoted} CASCADE; CREATE SCHEMA {quoted}; \
             CREATE TABLE {quoted}.users (id int); INSERT INTO {quoted}.users VALUES (1)"
        ))
        .await
        .unwrap_or_else(|e| panic!("replacing the schema failed: {e}"));
    match store.drop_schema().await {
        Err(PostgresError::ForeignSchema { schema, found }) => {
            assert_eq!(schema, store.schema());
            assert!(found.contains("users"), "{found}");
        }
        other => panic!("dropping another application's schema must be refused, got {other:?}"),
    }
    let users: i64 = client
        .query_one(&format!("SELECT count(*) FROM {quoted}.users"), &[])
        .await
        .unwrap_or_else(|e| panic!("the other application's table is gone: {e}"))
        .get(0);
    assert_eq!(users, 1);
}
