//! Opening stores: the versioned migration, concurrent migrators, a schema newer than
//! the code, bad schema names and unreachable servers.

mod common;

use factum::EventStore;
use factum_postgres::{PostgresError, PostgresOptions, PostgresStore, SCHEMA_VERSION};

async fn versions(schema: &str) -> Vec<i32> {
    common::connect_raw()
        .await
        .query(
            &format!("SELECT version FROM \"{schema}\".factum_migrations ORDER BY version"),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("reading the migrations table failed: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrators_apply_each_step_once_and_reopening_keeps_the_data() {
    let schema = common::unique_schema("migrate");
    let _guard = common::SchemaGuard {
        schema: schema.clone(),
    };
    let opened = futures::future::join_all((0..6).map(|_| PostgresStore::from_env(&schema))).await;
    let stores: Vec<PostgresStore> = opened
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("a concurrent open failed: {e}")))
        .collect();
    assert_eq!(
        versions(&schema).await,
        (1..=SCHEMA_VERSION).collect::<Vec<_>>()
    );

    let written = stores[0]
        .append(vec![common::event("A", &[])], None)
        .await
        .unwrap_or_else(|e| panic!("an append failed: {e}"));
    let reopened = PostgresStore::from_env(&schema)
        .await
        .unwrap_or_else(|e| panic!("reopening failed: {e}"));
    let log = common::read_all(&reopened).await;
    assert_eq!(
        log.iter().map(|e| e.position).collect::<Vec<_>>(),
        written.positions
    );
    assert_eq!(
        versions(&schema).await,
        (1..=SCHEMA_VERSION).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_schema_is_upgraded_and_keeps_its_data() {
    let (store, _guard) = common::store("upgrade").await;
    let before = store
        .append(vec![common::event("A", &[("k", "1")])], None)
        .await
        .unwrap_or_else(|e| panic!("an append failed: {e}"));
    // Back to version 1: without what version 2 added.
    common::connect_raw()
        .await
        .batch_execute(&format!(
            "DO $$ DECLARE f regprocedure; BEGIN \
               FOR f IN SELECT p.oid::regprocedure FROM pg_proc p \
                 JOIN pg_namespace n ON n.oid = p.pronamespace \
                 WHERE n.nspname = '{0}' AND p.proname = 'append_batch' \
               LOOP EXECUTE 'DROP FUNCTION ' || f; END LOOP; END $$; \
             DELETE FROM \"{0}\".factum_migrations WHERE version > 1",
            store.schema()
        ))
        .await
        .unwrap_or_else(|e| panic!("downgrading to version 1 failed: {e}"));
    assert_eq!(versions(store.schema()).await, vec![1]);

    let upgraded = PostgresStore::from_env(store.schema())
        .await
        .unwrap_or_else(|e| panic!("opening the version 1 schema failed: {e}"));
    assert_eq!(
        versions(store.schema()).await,
        (1..=SCHEMA_VERSION).collect::<Vec<_>>()
    );
    let condition = factum::AppendCondition::new(
        factum::Query::item(factum::QueryItem::any().with_tags([factum::Tag::new("k", "1")])),
        None,
    );
    let conflict = upgraded
        .append(vec![common::event("B", &[("k", "1")])], Some(condition))
        .await;
    assert!(
        matches!(&conflict, Err(factum::AppendError::Conflict { position, .. }) if *position == before.positions[0]),
        "{conflict:?}"
    );
    let after = upgraded
        .append(vec![common::event("B", &[("k", "1")])], None)
        .await
        .unwrap_or_else(|e| panic!("an append after the upgrade failed: {e}"));
    let log = common::read_all(&upgraded).await;
    assert_eq!(
        log.iter().map(|e| e.position).collect::<Vec<_>>(),
        [before.positions, after.positions].concat()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_schema_gains_the_listener_tables_and_the_commit_signal() {
    use factum::listen::ListenerStore;

    let (store, _guard) = common::store("upgrade_v2").await;
    let before = store
        .append(vec![common::event("A", &[("k", "1")])], None)
        .await
        .unwrap_or_else(|e| panic!("an append failed: {e}"));
    // Back to version 2: without what version 3 added.
    common::connect_raw()
        .await
        .batch_execute(&format!(
            "DROP TRIGGER IF EXISTS events_notify ON \"{0}\".events; \
             DROP FUNCTION IF EXISTS \"{0}\".notify_appended; \
             DROP TABLE \"{0}\".listener_checkpoints, \"{0}\".dead_letters; \
             DELETE FROM \"{0}\".factum_migrations WHERE version > 2",
            store.schema()
        ))
        .await
        .unwrap_or_else(|e| panic!("downgrading to version 2 failed: {e}"));
    assert_eq!(versions(store.schema()).await, vec![1, 2]);

    let upgraded = PostgresStore::from_env(store.schema())
        .await
        .unwrap_or_else(|e| panic!("opening the version 2 schema failed: {e}"));
    assert_eq!(
        versions(store.schema()).await,
        (1..=SCHEMA_VERSION).collect::<Vec<_>>()
    );
    assert_eq!(SCHEMA_VERSION, 8);
    // The data is kept, the listener tables work, and another instance's append is
    // signalled.
    assert_eq!(
        common::read_all(&upgraded).await.len(),
        before.positions.len()
    );
    upgraded
        .save_checkpoint("l", before.positions[0])
        .await
        .unwrap_or_else(|e| panic!("saving a checkpoint after the upgrade failed: {e}"));
    assert_eq!(
        upgraded.load_checkpoint("l").await.ok().flatten(),
        Some(before.positions[0])
    );
    // Version 3's trigger came and went: since version 5 the appending process notifies
    // after its commit.
    let triggers: i64 = common::connect_raw()
        .await
        .query_one(
            "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = 'events' AND t.tgname = 'events_notify'",
            &[&store.schema()],
        )
        .await
        .unwrap_or_else(|e| panic!("looking for the trigger failed: {e}"))
        .get(0);
    assert_eq!(
        triggers, 0,
        "the upgrade left the notify trigger on the commit path"
    );
    // Version 6: the planner's statistics on the expression reads check types with.
    let statistics: i64 = common::connect_raw()
        .await
        .query_one(
            "SELECT count(*) FROM pg_statistic_ext s \
             JOIN pg_namespace n ON n.oid = s.stxnamespace \
             WHERE n.nspname = $1 AND s.stxname = 'events_type_text'",
            &[&store.schema()],
        )
        .await
        .unwrap_or_else(|e| panic!("looking for the statistics failed: {e}"))
        .get(0);
    assert_eq!(statistics, 1, "the upgrade left the type statistics out");
    let mut head = upgraded.watch_head();
    // The listening connection's first read of the newest position (this instance made
    // no append): from then on, only a notification raises the head.
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while *head.borrow_and_update() < before.last() {
            head.changed().await.expect("the signal stays open");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the listening connection did not start"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let after = store
            .append(vec![common::event("B", &[])], None)
            .await
            .unwrap_or_else(|e| panic!("an append after the upgrade failed: {e}"));
        let signalled = tokio::time::timeout(std::time::Duration::from_millis(500), async {
            while *head.borrow_and_update() < after.last() {
                if head.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        if signalled.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "appends after the upgrade are not signalled"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_newer_than_the_code_is_refused() {
    let (store, _guard) = common::store("too_new").await;
    common::connect_raw()
        .await
        .execute(
            &format!(
                "INSERT INTO \"{}\".factum_migrations (version) VALUES ($1)",
                store.schema()
            ),
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap_or_else(|e| panic!("faking a newer version failed: {e}"));
    match PostgresStore::from_env(store.schema()).await {
        Err(PostgresError::SchemaTooNew { found, known, .. }) => {
            assert_eq!((found, known), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("a schema at a newer version must be refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_names_must_be_plain_identifiers() {
    for bad in [
        "",
        "1abc",
        "a-b",
        "x\"; DROP SCHEMA public; --",
        "public.events",
    ] {
        match PostgresStore::from_env(bad).await {
            Err(PostgresError::InvalidSchema(name)) => assert_eq!(name, bad),
            other => panic!("schema name {bad:?} must be refused, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_connect_error_naming_it() {
    // Port 1 on loopback: nothing listens there.
    let url = "postgres://postgres:secret@127.0.0.1:1/test";
    let options = PostgresOptions::new(url, "unreachable");
    match PostgresStore::connect_with(options).await {
        Err(e @ PostgresError::Connect { .. }) => {
            let message = e.to_string();
            assert!(message.contains("127.0.0.1:1"), "{message}");
            assert!(
                !message.contains("secret"),
                "the password leaked: {message}"
            );
            // The cause is the error's source, shown once by a chain reporter.
            let cause = std::error::Error::source(&e).map(ToString::to_string);
            let cause = cause.unwrap_or_default();
            assert!(
                !cause.is_empty() && !message.contains(&cause),
                "{message} / {cause}"
            );
            let chain = factum::ErrorChain(&e).to_string();
            assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
            assert!(e.is_retryable(), "the server may come up: {e}");
        }
        other => panic!("connecting to a closed port must fail, got {other:?}"),
    }
    match PostgresStore::connect("not a url ===", "s").await {
        Err(e @ PostgresError::InvalidUrl { .. }) => {
            assert!(!e.is_retryable(), "a bad URL stays bad: {e}");
        }
        other => panic!("a malformed URL must be refused, got {other:?}"),
    }
}

/// What the server refuses for good is not retryable; a statement that timed out, or a
/// transaction that lost a serialization race, may succeed when run again. Real failures
/// from the test server, classified by their SQLSTATE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_statements_are_retryable_only_when_the_failure_may_pass() {
    let client = common::connect_raw().await;
    let failure = |e: tokio_postgres::Error| factum_postgres::PostgresFailure::from(e);

    let division = client.simple_query("SELECT 1 / 0").await.unwrap_err();
    let division = failure(division);
    assert_eq!(division.code(), Some("22012"));
    assert!(!division.is_retryable(), "{division}");

    let syntax = client.simple_query("SELEKT 1").await.unwrap_err();
    assert!(!failure(syntax).is_retryable());

    client
        .batch_execute("SET statement_timeout = 20")
        .await
        .unwrap();
    let timeout = client.simple_query("SELECT pg_sleep(2)").await.unwrap_err();
    let timeout = failure(timeout);
    assert_eq!(timeout.code(), Some("57014"));
    assert!(timeout.is_retryable(), "{timeout}");
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .unwrap();

    // A serialization failure: two serializable transactions read what the other writes.
    let schema = common::unique_schema("retry");
    let _guard = common::SchemaGuard {
        schema: schema.clone(),
    };
    client
        .batch_execute(&format!(
            "CREATE SCHEMA \"{schema}\"; CREATE TABLE \"{schema}\".t (k int, v int);
             INSERT INTO \"{schema}\".t VALUES (1, 0), (2, 0);"
        ))
        .await
        .unwrap();
    let other = common::connect_raw().await;
    let begin = "BEGIN ISOLATION LEVEL SERIALIZABLE";
    client.batch_execute(begin).await.unwrap();
    other.batch_execute(begin).await.unwrap();
    let table = format!("\"{schema}\".t");
    client
        .simple_query(&format!("SELECT sum(v) FROM {table} WHERE k = 2"))
        .await
        .unwrap();
    other
        .simple_query(&format!("SELECT sum(v) FROM {table} WHERE k = 1"))
        .await
        .unwrap();
    client
        .batch_execute(&format!("UPDATE {table} SET v = 1 WHERE k = 1"))
        .await
        .unwrap();
    other
        .batch_execute(&format!("UPDATE {table} SET v = 1 WHERE k = 2"))
        .await
        .unwrap();
    client.batch_execute("COMMIT").await.unwrap();
    let lost = failure(other.batch_execute("COMMIT").await.unwrap_err());
    assert_eq!(lost.code(), Some("40001"), "{lost}");
    assert!(lost.is_retryable(), "{lost}");
}

/// The first process of a new release migrates the schema as it connects; processes of
/// the release before keep appending meanwhile, through the functions of their version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_releases_append_functions_survive_the_migration() {
    let (store, _guard) = common::store("rolling").await;
    let previous = [
        "insert_events(bigint[], text[], integer[], integer[], integer[], text[], text[], \
         text[], bytea[], uuid[], uuid[], uuid[], text[], text[], bigint[], integer[])",
        "append_batch(bigint[], boolean[], boolean, integer, integer[], integer[], integer[], \
         integer[], integer[], integer[], integer[], integer[], text[], text[], bigint[], \
         text[], text[], integer[], integer[], integer[], text[], text[], text[], bytea[], \
         uuid[], uuid[], uuid[], text[])",
        "insert_events(bigint[], text[], integer[], integer[], integer[], text[], text[], \
         text[], bytea[], uuid[], uuid[], uuid[], text[], text[], bigint[], integer[], \
         timestamptz[])",
        "append_batch(bigint[], boolean[], boolean, integer, integer[], integer[], integer[], \
         integer[], integer[], integer[], integer[], integer[], text[], text[], bigint[], \
         text[], text[], integer[], integer[], integer[], text[], text[], text[], bytea[], \
         uuid[], uuid[], uuid[], text[], timestamptz[])",
    ];
    let client = common::connect_raw().await;
    for function in previous {
        let row = client
            .query_one(
                "SELECT to_regprocedure($1) IS NOT NULL",
                &[&format!("\"{}\".{function}", store.schema())],
            )
            .await
            .unwrap_or_else(|e| panic!("looking up {function} failed: {e}"));
        assert!(
            row.get::<_, bool>(0),
            "{function} is gone after the migration"
        );
    }
}

/// Version 7 reads a tag's events through `event_tags`: the events written before the
/// upgrade are found there, and so are those a process of the release before writes
/// through its own functions after it (the trigger indexes every insert).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_6_schema_indexes_its_tags_and_every_later_insert() {
    use factum::{Query, QueryItem, ReadOptions, Tag};
    use futures::TryStreamExt;

    let (store, _guard) = common::store("upgrade_v6").await;
    let first = store
        .append(vec![common::event("A", &[("k", "1")])], None)
        .await
        .unwrap_or_else(|e| panic!("an append failed: {e}"));
    let raw = common::connect_raw().await;
    raw.batch_execute(&format!(
        "DROP TRIGGER events_index_tags ON \"{0}\".events; \
         DROP FUNCTION \"{0}\".index_event_tags(); \
         DROP TABLE \"{0}\".event_tags; \
         DELETE FROM \"{0}\".factum_migrations WHERE version > 6",
        store.schema()
    ))
    .await
    .unwrap_or_else(|e| panic!("downgrading to version 6 failed: {e}"));
    // Written at version 6: nothing indexes these tags.
    let second = store
        .append(
            vec![
                common::event("B", &[("k", "1")]),
                common::event("C", &[("k", "2")]),
            ],
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("an append at version 6 failed: {e}"));

    let upgraded = PostgresStore::from_env(store.schema())
        .await
        .unwrap_or_else(|e| panic!("opening the version 6 schema failed: {e}"));
    // The release before appends through version 1's insert_events, as it did.
    raw.batch_execute(&format!(
        "BEGIN; \
         SELECT \"{0}\".insert_events(ARRAY[\"{0}\".allocate_positions(1)], ARRAY['Old'], \
             ARRAY[1], ARRAY[1], ARRAY[2], ARRAY['1:k:1', '3:old:x'], ARRAY['json'], \
             ARRAY['{{}}'], ARRAY[NULL::bytea], ARRAY[gen_random_uuid()], ARRAY[NULL::uuid], \
             ARRAY[NULL::uuid], ARRAY[NULL::text], '{{}}'::text[], '{{}}'::bigint[], \
             '{{}}'::integer[]); \
         COMMIT;",
        store.schema()
    ))
    .await
    .unwrap_or_else(|e| panic!("appending as the release before failed: {e}"));

    let read = |tag: Tag| {
        let upgraded = &upgraded;
        async move {
            upgraded
                .read(
                    &Query::item(QueryItem::any().with_tags([tag])),
                    ReadOptions::forward(),
                )
                .map_ok(|e| (e.position, e.event_type))
                .try_collect::<Vec<_>>()
                .await
                .unwrap_or_else(|e| panic!("a read after the upgrade failed: {e}"))
        }
    };
    let old: i64 = raw
        .query_one(
            &format!(
                "SELECT position FROM \"{}\".events WHERE type = 'Old'",
                store.schema()
            ),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("finding the old release's event failed: {e}"))
        .get(0);
    let old = factum::Position(u64::try_from(old).unwrap_or_default());
    assert_eq!(
        read(Tag::new("k", "1")).await,
        [
            (first.positions[0], "A".to_owned()),
            (second.positions[0], "B".to_owned()),
            (old, "Old".to_owned()),
        ]
    );
    assert_eq!(read(Tag::new("old", "x")).await, [(old, "Old".to_owned())]);
    // From a position: the index is walked from there.
    let late = upgraded
        .read(
            &Query::item(QueryItem::any().with_tags([Tag::new("k", "1")])),
            ReadOptions::from(second.positions[1]),
        )
        .map_ok(|e| e.position)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_or_else(|e| panic!("a read from a position failed: {e}"));
    assert_eq!(late, [old]);
}
