//! Opening a store: the pools, the schema's migration, the statements.

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use factum::store::KeyedLocks;
use tokio_postgres::Config;

use crate::options::{DATABASE_URL, quote_schema, redact};
use crate::store::{Inner, Statements};
use crate::tls::{self, Tls};
use crate::{PostgresError, PostgresOptions, PostgresStore, locks, migrate, notify, ownership};

/// The server as the options name it: how every connection of the store is opened.
struct Server {
    config: Config,
    tls: Tls,
    /// The URL without its password, for messages.
    url: String,
    schema: String,
    quoted: String,
}

impl Server {
    fn new(options: &PostgresOptions) -> Result<Self, PostgresError> {
        let quoted = quote_schema(&options.schema)?;
        ownership::check_name(&options.schema)?;
        let url = redact(&options.url);
        let mut config: Config = match &options.config {
            Some(config) => config.clone(),
            None => options
                .url
                .parse()
                .map_err(|source| PostgresError::InvalidUrl {
                    url: url.clone(),
                    source,
                })?,
        };
        config.application_name(&options.application_name);
        let tls = tls::connector(&mut config, options, &url)?;
        Ok(Server {
            config,
            tls,
            url,
            schema: options.schema.clone(),
            quoted,
        })
    }

    fn connect_failed(
        &self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> PostgresError {
        PostgresError::Connect {
            url: self.url.clone(),
            source: Box::new(source),
        }
    }

    /// The store's main pool, as the options size it.
    fn pool(&self, options: &PostgresOptions) -> Result<Pool, PostgresError> {
        let manager = Manager::from_config(
            self.config.clone(),
            self.tls.connector(),
            ManagerConfig {
                // No ping per checkout (a round trip each): a connection the client has
                // seen close is replaced; one that died unseen fails its first statement,
                // which `live` makes harmless.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .wait_timeout(options.pool_wait_timeout)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| PostgresError::Pool {
                source: Box::new(e),
            })
    }

    /// The pool of the partition locks' connections, if they are on.
    fn lock_pool(&self, options: &PostgresOptions) -> Result<Option<Pool>, PostgresError> {
        let size = match options.lock_pool_size {
            0 => return Ok(None),
            size => size,
        };
        let manager = Manager::from_config(
            self.config.clone(),
            self.tls.connector(),
            ManagerConfig {
                // Pinged: a lock taken on a connection that died unseen would fail
                // the locked decision, and one round trip per lock is cheap.
                recycling_method: RecyclingMethod::Verified,
            },
        );
        // Connected on demand: a store that never locks opens none.
        let pool =
            Pool::builder(manager)
                .max_size(size)
                .build()
                .map_err(|e| PostgresError::Pool {
                    source: Box::new(e),
                })?;
        Ok(Some(pool))
    }

    /// One connection of its own (`application_name` suffixed `-<role>`), outside any
    /// pool; it closes when the client is dropped.
    async fn connect_one(
        &self,
        role: &'static str,
    ) -> Result<tokio_postgres::Client, PostgresError> {
        let config = notify::side_connection(self.config.clone(), role);
        let (client, connection) = config
            .connect(self.tls.connector())
            .await
            .map_err(|e| self.connect_failed(e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %factum::ErrorChain(&e), role, "a side connection ended");
            }
        });
        Ok(client)
    }
}

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

    /// Connects with all the options, and prepares the schema (or, with
    /// [`PostgresOptions::migrate_on_connect`] off, checks that it is prepared).
    pub async fn connect_with(options: PostgresOptions) -> Result<Self, PostgresError> {
        let server = Server::new(&options)?;
        let pool = server.pool(&options)?;
        PostgresStore::open(server, pool, options).await
    }

    /// Opens the store on a pool the application already has: its connections run the
    /// store's reads, appends, snapshots, listeners' checkpoints and projections (and the
    /// schema's migration, or its check). The pool keeps its own size, timeouts and
    /// recycling: [`PostgresOptions::pool_size`] and
    /// [`PostgresOptions::pool_wait_timeout`] are not used, nor is
    /// [`PostgresOptions::application_name`] on its connections.
    ///
    /// The store still opens connections of its own, all of them with the server and TLS
    /// settings of `options` (its [`url`](PostgresOptions::url) or
    /// [`config`](PostgresOptions::config)), which should name the same server as the
    /// pool: the partition locks' pool (up to [`PostgresOptions::lock_pool_size`]
    /// connections, opened on demand; `0` opens none), the LISTEN connection of
    /// [`watch_head`](factum::listen::ListenerStore::watch_head) (from its first call) and
    /// the NOTIFY connection after appends (open while appends come).
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use factum_postgres::deadpool_postgres::{Manager, Pool};
    /// use factum_postgres::{PostgresOptions, PostgresStore};
    ///
    /// let config: tokio_postgres::Config = "postgres://shop@db.internal/shop".parse()?;
    /// let pool = Pool::builder(Manager::new(config.clone(), tokio_postgres::NoTls))
    ///     .max_size(32)
    ///     .build()?;
    /// let store = PostgresStore::connect_with_pool(pool, PostgresOptions::from_config(config, "shop"))
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_with_pool(
        pool: Pool,
        options: PostgresOptions,
    ) -> Result<Self, PostgresError> {
        let server = Server::new(&options)?;
        PostgresStore::open(server, pool, options).await
    }

    /// Brings the schema of `options` to [`SCHEMA_VERSION`](crate::SCHEMA_VERSION),
    /// creating it if needed, and returns: the migration as a step of its own, for a
    /// deployment that opens its stores with [`PostgresOptions::migrate_on_connect`] off.
    /// It opens one connection (`application_name` suffixed `-migrate`) and closes it
    /// when done. Safe to run from several processes at once, and again: a schema already
    /// at the version is left as it is.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), factum_postgres::PostgresError> {
    /// use factum_postgres::{PostgresOptions, PostgresStore};
    ///
    /// let options = PostgresOptions::new("postgres://deployer@db.internal/shop", "shop");
    /// PostgresStore::migrate(&options).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn migrate(options: &PostgresOptions) -> Result<(), PostgresError> {
        let server = Server::new(options)?;
        let mut client = server.connect_one("migrate").await?;
        migrate::migrate(&mut client, &server.schema, &server.quoted).await
    }

    /// The store on `pool`, its schema prepared (or checked) on one of its connections.
    async fn open(
        server: Server,
        pool: Pool,
        options: PostgresOptions,
    ) -> Result<Self, PostgresError> {
        let lock_pool = server.lock_pool(&options)?;
        let mut client = pool.get().await.map_err(|e| server.connect_failed(e))?;
        if options.migrate_on_connect {
            migrate::migrate(&mut client, &server.schema, &server.quoted).await?;
        } else {
            migrate::check(&client, &server.schema, &server.quoted).await?;
        }
        drop(client);
        let Server {
            config,
            tls,
            schema,
            quoted,
            ..
        } = server;
        let head = notify::Head::new(config, tls.clone(), &schema, &quoted);
        let sql = Statements::new(&quoted);
        Ok(PostgresStore {
            pool,
            inner: Arc::new(Inner {
                lock_pool,
                tls,
                partition_locks: KeyedLocks::new(),
                global_key: locks::global_key(&schema),
                schema,
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
