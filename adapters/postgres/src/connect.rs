//! Opening a store: the pools, the schema's migration, the statements.

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use factum::store::KeyedLocks;
use tokio_postgres::NoTls;

use crate::options::{DATABASE_URL, quote_schema, redact};
use crate::store::{Inner, Statements};
use crate::{PostgresError, PostgresOptions, PostgresStore, locks, migrate, notify, ownership};

impl PostgresStore {
    /// Connects to the server at `url` and prepares the store's tables in `schema`
    /// (creating and migrating it as needed), with the other options at their defaults
    /// (see [`PostgresOptions::new`]).
    pub async fn connect(url: &str, schema: &str) -> Result<Self, PostgresError> {
        PostgresStore::connect_with(PostgresOptions::new(url, schema)).await
    }

    /// Connects to the server named by the environment variable [`DATABASE_URL`] (or
    /// `postgres://postgres@127.0.0.1:5432/test` when it is not set), like
    /// [`PostgresStore::connect`].
    pub async fn from_env(schema: &str) -> Result<Self, PostgresError> {
        let from_env = std::env::var(DATABASE_URL).is_ok();
        let options = PostgresOptions::from_env(schema);
        PostgresStore::connect_with(options)
            .await
            .map_err(|e| match e {
                PostgresError::Connect { url, source } => PostgresError::Connect {
                    url: if from_env {
                        format!("{url} (from {DATABASE_URL})")
                    } else {
                        format!("{url} (the default; set {DATABASE_URL} to use another server)")
                    },
                    source,
                },
                other => other,
            })
    }

    /// Connects with all the options, and prepares the schema.
    pub async fn connect_with(options: PostgresOptions) -> Result<Self, PostgresError> {
        let quoted = quote_schema(&options.schema)?;
        ownership::check_name(&options.schema)?;
        let mut config: tokio_postgres::Config =
            options
                .url
                .parse()
                .map_err(|source| PostgresError::InvalidUrl {
                    url: redact(&options.url),
                    source,
                })?;
        config.application_name(&options.application_name);
        let head = notify::Head::new(config.clone(), &options.schema, &quoted);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // No ping per checkout (a round trip each): a connection the client has
                // seen close is replaced; one that died unseen fails its first statement,
                // which `live` makes harmless.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let lock_pool = match options.lock_pool_size {
            0 => None,
            size => {
                let manager = Manager::from_config(
                    config,
                    NoTls,
                    ManagerConfig {
                        // Pinged: a lock taken on a connection that died unseen would fail
                        // the locked decision, and one round trip per lock is cheap.
                        recycling_method: RecyclingMethod::Verified,
                    },
                );
                // Connected on demand: a store that never locks opens none.
                let pool = Pool::builder(manager).max_size(size).build().map_err(|e| {
                    PostgresError::Pool {
                        source: Box::new(e),
                    }
                })?;
                Some(pool)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .wait_timeout(options.pool_wait_timeout)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| PostgresError::Pool {
                source: Box::new(e),
            })?;
        let mut client = pool.get().await.map_err(|e| PostgresError::Connect {
            url: redact(&options.url),
            source: Box::new(e),
        })?;
        migrate::migrate(&mut client, &options.schema, &quoted).await?;
        drop(client);
        let sql = Statements::new(&quoted);
        Ok(PostgresStore {
            pool,
            inner: Arc::new(Inner {
                lock_pool,
                partition_locks: KeyedLocks::new(),
                global_key: locks::global_key(&options.schema),
                schema: options.schema,
                quoted,
                visibility_wait: options.visibility_wait,
                pipeline_above: options.pipeline_above,

                #[cfg(feature = "test-hooks")]
                before_commit: options.before_commit,
                #[cfg(not(feature = "test-hooks"))]
                before_commit: None,
                sql,
                head,
                large_reads: Arc::default(),
            }),
        })
    }
}
