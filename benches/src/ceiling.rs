//! The reference row: what the store's engine commits per second on its own, one
//! single-row INSERT per transaction, with no event store in between (what `pgbench`
//! measures with a one-INSERT script). Group commit is measured against it: decisions
//! per second above it mean several decisions share a commit.

use std::time::Instant;

use crate::measure::Rate;

async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot reach PostgreSQL at DATABASE_URL={url}: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// `ANALYZE`s the events table of `schema`.
pub async fn analyze(url: &str, schema: &str) -> Result<(), String> {
    connect(url)
        .await?
        .batch_execute(&format!("ANALYZE \"{schema}\".events"))
        .await
        .map_err(|e| format!("cannot ANALYZE the events: {e}"))
}

/// PostgreSQL: `clients` connections, each running single-row INSERTs (autocommit: a
/// transaction each) into a table of its own schema's, `total` in all.
pub async fn postgres(url: &str, schema: &str, clients: u64, total: u64) -> Result<Rate, String> {
    let setup = connect(url).await?;
    let table = format!("\"{schema}\".ceiling");
    setup
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\"; DROP TABLE IF EXISTS {table}; \
             CREATE TABLE {table} (id bigserial PRIMARY KEY, payload text NOT NULL)"
        ))
        .await
        .map_err(|e| format!("cannot create the ceiling table: {e}"))?;
    let mut clients_ready = Vec::new();
    for _ in 0..clients {
        let client = connect(url).await?;
        let insert = client
            .prepare(&format!("INSERT INTO {table} (payload) VALUES ($1)"))
            .await
            .map_err(|e| format!("cannot prepare the ceiling insert: {e}"))?;
        clients_ready.push((client, insert));
    }
    let per_client = total / clients;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (client, insert) in clients_ready {
        tasks.spawn(async move {
            for i in 0..per_client {
                client
                    .execute(&insert, &[&format!("{{\"amount\":{i}}}")])
                    .await
                    .map_err(|e| format!("a ceiling insert failed: {e}"))?;
            }
            Ok::<_, String>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| format!("a ceiling client failed: {e}"))??;
    }
    let elapsed = started.elapsed();
    setup
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .map_err(|e| format!("cannot drop the ceiling table: {e}"))?;
    Ok(Rate {
        count: per_client * clients,
        elapsed,
    })
}

/// SQLite: one connection (SQLite has one writer at a time) in WAL mode with
/// `synchronous=FULL`, as the store runs, committing `total` single-row INSERTs one
/// transaction each, in a file next to the store's.
pub fn sqlite(dir: &std::path::Path, total: u64) -> Result<Rate, String> {
    let path = dir.join("ceiling.db");
    let failed = |e: rusqlite::Error| format!("the SQLite ceiling failed: {e}");
    let connection = rusqlite::Connection::open(&path).map_err(failed)?;
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             DROP TABLE IF EXISTS ceiling; \
             CREATE TABLE ceiling (id INTEGER PRIMARY KEY, payload TEXT NOT NULL);",
        )
        .map_err(failed)?;
    let started = Instant::now();
    for i in 0..total {
        connection
            .execute(
                "INSERT INTO ceiling (payload) VALUES (?1)",
                [format!("{{\"amount\":{i}}}")],
            )
            .map_err(failed)?;
    }
    let elapsed = started.elapsed();
    drop(connection);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("ceiling.db{suffix}")));
    }
    Ok(Rate {
        count: total,
        elapsed,
    })
}
