//! The stores under test, behind one enum so a run can interleave them.

use factum::prelude::*;
use factum_postgres::PostgresOptions;

use crate::measure::Rate;
use crate::scenarios::{self, Sizes};

/// One store of the comparison, with its engine.
pub enum AnyStore {
    /// The in-memory store.
    Memory(Engine<MemoryStore>),
    /// SQLite in a file, and the directory to remove at the end.
    Sqlite(Engine<factum_sqlite::SqliteStore>, std::path::PathBuf),
    /// PostgreSQL in a schema of its own.
    Postgres(Engine<factum_postgres::PostgresStore>),
}

/// The server of the PostgreSQL runs: the one `DATABASE_URL` names, else the store's
/// default (what [`PostgresOptions::from_env`] reads).
fn database_url() -> String {
    PostgresOptions::from_env(String::new()).url
}

/// Opens the store called `name`.
pub async fn open(name: &str) -> Result<AnyStore, String> {
    match name {
        "memory" => Ok(AnyStore::Memory(Engine::new(MemoryStore::new()))),
        "sqlite" => {
            let dir = std::path::Path::new("target/factum-bench")
                .join(format!("run-{}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let store = factum_sqlite::open(dir.join("bench.db"))
                .await
                .map_err(|e| format!("cannot open SQLite in {}: {e}", dir.display()))?;
            Ok(AnyStore::Sqlite(Engine::new(store), dir))
        }
        "postgres" => {
            let url = database_url();
            let schema = format!("factum_bench_{}", std::process::id());
            let store = factum_postgres::PostgresStore::connect(&url, &schema)
                .await
                .map_err(|e| format!("cannot reach PostgreSQL at DATABASE_URL={url}: {e}"))?;
            Ok(AnyStore::Postgres(Engine::new(store)))
        }
        other => Err(format!(
            "unknown store {other:?}: use memory, sqlite or postgres"
        )),
    }
}

macro_rules! each {
    ($self:ident, $engine:ident => $body:expr) => {
        match $self {
            AnyStore::Memory($engine) => $body,
            AnyStore::Sqlite($engine, _) => $body,
            AnyStore::Postgres($engine) => $body,
        }
    };
}

impl AnyStore {
    /// The store's name in the report.
    pub fn name(&self) -> &'static str {
        match self {
            AnyStore::Memory(_) => "memory",
            AnyStore::Sqlite(..) => "sqlite",
            AnyStore::Postgres(_) => "postgres",
        }
    }

    pub async fn appends_one_by_one(&self, sizes: Sizes) -> Rate {
        each!(self, e => scenarios::appends_one_by_one(e.store(), sizes).await)
    }

    pub async fn appends_batched(&self, sizes: Sizes) -> Rate {
        each!(self, e => scenarios::appends_batched(e.store(), sizes).await)
    }

    pub async fn decisions(&self, sizes: Sizes, submitters: u64) -> Rate {
        each!(self, e => scenarios::decisions_on_distinct_keys(e, sizes, submitters).await)
    }

    /// Writes `events` deposits on a new account; on PostgreSQL then `ANALYZE`s the
    /// events, as autovacuum would have by the time a table held them: the planner picks
    /// reads by the statistics, and a table never analyzed has none.
    pub async fn preload(&self, events: u64) -> String {
        let account = each!(self, e => scenarios::preload(e.store(), events).await);
        if let AnyStore::Postgres(engine) = self {
            let analyzed = crate::ceiling::analyze(&database_url(), engine.store().schema()).await;
            analyzed.unwrap_or_else(|e| panic!("{e}"));
        }
        account
    }

    pub async fn fold(&self, account: &str, events: u64) -> Rate {
        each!(self, e => scenarios::fold(e, account, events).await)
    }

    pub async fn bulk_append(&self, events: u64) -> Rate {
        each!(self, e => scenarios::bulk_append(e.store(), events).await)
    }

    pub async fn warm_snapshot_loads(&self, account: &str, events: u64, loads: u64) -> Rate {
        each!(self, e => scenarios::warm_snapshot_loads(e, account, events, loads).await)
    }

    pub async fn decisions_on_a_long_state(&self, account: &str, decisions: u64) -> Rate {
        each!(self, e => scenarios::decisions_on_a_long_state(e, account, decisions).await)
    }

    /// The store engine's own commit rate with no event store in between (see
    /// [`crate::ceiling`]); `None` for the memory store, which commits nothing.
    pub async fn ceiling(&self, clients: u64, total: u64) -> Option<Rate> {
        let measured = match self {
            AnyStore::Memory(_) => return None,
            AnyStore::Sqlite(_, dir) => crate::ceiling::sqlite(dir, total),
            AnyStore::Postgres(engine) => {
                crate::ceiling::postgres(&database_url(), engine.store().schema(), clients, total)
                    .await
            }
        };
        Some(measured.unwrap_or_else(|e| panic!("{e}")))
    }

    /// Removes what the run created.
    pub async fn close(self) {
        match self {
            AnyStore::Memory(_) => {}
            AnyStore::Sqlite(engine, dir) => {
                drop(engine);
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    eprintln!("could not remove {}: {e}", dir.display());
                }
            }
            AnyStore::Postgres(_) if std::env::var_os("FACTUM_BENCH_KEEP").is_some() => {}
            AnyStore::Postgres(engine) => {
                if let Err(e) = engine.store().drop_schema().await {
                    eprintln!("could not drop the benchmark schema: {e}");
                }
            }
        }
    }
}

/// A store opened for one run of a contention scenario, removed after it.
pub enum Fresh {
    /// A new in-memory store.
    Memory(MemoryStore),
    /// A new SQLite file, and its directory.
    Sqlite(factum_sqlite::SqliteStore, std::path::PathBuf),
    /// A new PostgreSQL schema.
    Postgres(factum_postgres::PostgresStore),
}

/// Opens a new, empty store of kind `name`; `run` makes its file or schema name unique.
pub async fn fresh(name: &str, run: u64) -> Result<Fresh, String> {
    let id = format!("{}_{run}", std::process::id());
    match name {
        "memory" => Ok(Fresh::Memory(MemoryStore::new())),
        "sqlite" => {
            let dir = std::path::Path::new("target/factum-bench").join(format!("fresh-{id}"));
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let store = factum_sqlite::open(dir.join("bench.db"))
                .await
                .map_err(|e| format!("cannot open SQLite in {}: {e}", dir.display()))?;
            Ok(Fresh::Sqlite(store, dir))
        }
        "postgres" => {
            let url = database_url();
            let schema = format!("factum_bench_{id}");
            let store = factum_postgres::PostgresStore::connect(&url, &schema)
                .await
                .map_err(|e| format!("cannot reach PostgreSQL at DATABASE_URL={url}: {e}"))?;
            Ok(Fresh::Postgres(store))
        }
        other => Err(format!(
            "unknown store {other:?}: use memory, sqlite or postgres"
        )),
    }
}

impl Fresh {
    /// Runs one contention scenario on it (`nats`: for the distributed contender).
    pub async fn contention(
        &self,
        workload: scenarios::Workload,
        strategy: scenarios::Contender,
        lanes: factum::lanes::LaneOptions,
        profile: Option<std::sync::Arc<crate::profile::Profile>>,
        nats: Option<&crate::distributed::Nats>,
    ) -> scenarios::RunFigures {
        match self {
            Fresh::Memory(s) => {
                scenarios::contention(s.clone(), workload, strategy, lanes, profile, nats).await
            }
            Fresh::Sqlite(s, _) => {
                scenarios::contention(s.clone(), workload, strategy, lanes, profile, nats).await
            }
            Fresh::Postgres(s) => {
                scenarios::contention(s.clone(), workload, strategy, lanes, profile, nats).await
            }
        }
    }

    /// Removes what it created.
    pub async fn close(self) {
        match self {
            Fresh::Memory(_) => {}
            Fresh::Sqlite(store, dir) => {
                drop(store);
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    eprintln!("could not remove {}: {e}", dir.display());
                }
            }
            Fresh::Postgres(_) if std::env::var_os("FACTUM_BENCH_KEEP").is_some() => {}
            Fresh::Postgres(store) => {
                if let Err(e) = store.drop_schema().await {
                    eprintln!("could not drop the benchmark schema: {e}");
                }
            }
        }
    }
}
