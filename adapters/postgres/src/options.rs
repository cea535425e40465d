//! How to open a store: the server, the schema, the pool.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use factum::Position;

use crate::PostgresError;

/// The environment variable [`PostgresStore::from_env`](crate::PostgresStore::from_env)
/// reads the server's URL from.
pub const DATABASE_URL: &str = "DATABASE_URL";

/// The URL used when [`DATABASE_URL`] is not set.
///
/// Exported with the `test-hooks` feature only: for tests, not a stable API.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A test hook run inside an append's transaction right before it commits, with the
/// positions the transaction is about to commit.
///
/// Exported with the `test-hooks` feature only: for tests, not a stable API.
pub type BeforeCommit =
    Arc<dyn Fn(&[Position]) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Everything [`PostgresStore::connect_with`](crate::PostgresStore::connect_with) needs.
///
/// ```
/// use std::time::Duration;
/// use factum_postgres::PostgresOptions;
///
/// let options = PostgresOptions {
///     pool_size: 4,
///     visibility_wait: Duration::from_millis(500),
///     ..PostgresOptions::new("postgres://postgres@127.0.0.1:5432/test", "shop")
/// };
/// assert_eq!(options.schema, "shop");
/// ```
#[derive(Clone)]
pub struct PostgresOptions {
    /// The server, as a `postgres://` URL or a `key=value` connection string. Ignored
    /// when [`config`](PostgresOptions::config) is set (then only named in messages).
    pub url: String,
    /// The server as a [`tokio_postgres::Config`] an application already has, used
    /// instead of [`url`](PostgresOptions::url) when set (see
    /// [`PostgresOptions::from_config`]). The store still sets its `application_name`.
    pub config: Option<tokio_postgres::Config>,
    /// The schema holding the store's tables; created (and migrated) on connect, unless
    /// [`migrate_on_connect`](PostgresOptions::migrate_on_connect) is off. A plain
    /// identifier: ASCII letters, digits and underscores, not starting with a digit, at
    /// most 63 bytes. Stores in different schemas are independent, also in their locks.
    ///
    /// The schema must be the store's own: PostgreSQL's schemas (`pg_catalog`,
    /// `information_schema`, any name starting with `pg_`) and `public` (the database's
    /// default, shared with other applications) are refused with
    /// [`PostgresError::ReservedSchema`] before
    /// any SQL runs, and an existing schema holding anything but a factum store with
    /// [`PostgresError::ForeignSchema`] before any
    /// migration. An existing empty schema becomes a store.
    pub schema: String,
    /// The most connections the pool opens. Each running read stream or append holds
    /// one, and so does each [`PgProjectionSink`](crate::PgProjectionSink) while it runs a
    /// batch (from its first event to its commit).
    pub pool_size: usize,
    /// How long an operation waits, at most, for a connection of the pool when all
    /// `pool_size` are in use, before it fails with a
    /// [`StoreError::Backend`](factum::StoreError::Backend) (a pool timeout) instead of
    /// waiting on: an exhausted pool (too small for the sinks and streams holding
    /// connections at once) shows as errors rather than a hang. `None` waits without end.
    /// 30 seconds unless set. Connections for partition locks are not bound by it.
    pub pool_wait_timeout: Option<Duration>,
    /// The most connections held for partition locks
    /// ([`PartitionLocks::lock_partition`](factum::PartitionLocks::lock_partition)), in a pool of
    /// their own beside the `pool_size` connections of reads and appends, so that holding
    /// (or waiting for) many locks never starves those. Each partition key this store holds
    /// or waits for on the server takes one (callers waiting for a key this store already
    /// holds queue in process, without a connection), so it bounds how many partitions
    /// this store works on at once: past it, `lock_partition` waits for a connection.
    /// `0` turns partition locks off: `lock_partition` returns `Ok(None)` and callers run
    /// their decisions optimistically.
    pub lock_pool_size: usize,
    /// The `application_name` the connections report (seen in `pg_stat_activity`).
    pub application_name: String,
    /// How long a read waits, at most, for older transactions to finish before it
    /// returns what is safe to return without them (see
    /// [the crate documentation](crate#no-reader-skips-an-event)): enough to make an append visible to the reads that start after it
    /// returned, unless some transaction holding a transaction id runs longer than this.
    pub visibility_wait: Duration,
    /// The most requests a batch
    /// ([`EventStore::append_batch`](factum::EventStore::append_batch)) sends through the
    /// SQL function `append_batch` in one round trip; a larger batch takes the pipelined
    /// path, a few round trips of prepared statements whatever its size, cheaper per
    /// request. Both give the same results. 4 unless set: where the two cost about the
    /// same, measured on a local server.
    pub pipeline_above: usize,
    /// Whether opening the store creates and migrates its schema (the default, `true`). Off,
    /// opening only checks that the schema is at this crate's [`SCHEMA_VERSION`] and fails
    /// with [`PostgresError::SchemaMissing`] or [`PostgresError::SchemaTooOld`] otherwise:
    /// for deployments that migrate as a step of their own, with
    /// [`PostgresStore::migrate`](crate::PostgresStore::migrate) (and maybe a role allowed
    /// to change the schema), before the application starts.
    ///
    /// [`SCHEMA_VERSION`]: crate::SCHEMA_VERSION
    pub migrate_on_connect: bool,
    /// The TLS settings of every connection the store opens, with the `rustls` feature:
    /// `None` (the default) verifies the server against the platform's trusted roots
    /// when the URL says `sslmode=require`, and connects in plaintext otherwise; a
    /// `ClientConfig` of the application's (its own roots, a private CA, client
    /// certificates) is used for `sslmode=require` and `prefer` (the default mode: TLS
    /// when the server offers it). `sslmode=disable` always connects in plaintext.
    #[cfg(feature = "rustls")]
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Run right before an append commits. With the `test-hooks` feature only: for tests,
    /// not a stable API.
    #[cfg(feature = "test-hooks")]
    pub before_commit: Option<BeforeCommit>,
}

impl PostgresOptions {
    /// Options for the server at `url` and the tables in `schema`, with a pool of 16
    /// connections (waited for up to 30 seconds), up to 8 more for partition locks, a
    /// visibility wait of 2 seconds, and the schema migrated on connect.
    pub fn new(url: impl Into<String>, schema: impl Into<String>) -> Self {
        PostgresOptions {
            url: url.into(),
            config: None,
            schema: schema.into(),
            pool_size: 16,
            pool_wait_timeout: Some(Duration::from_secs(30)),
            lock_pool_size: 8,
            application_name: "factum".to_owned(),
            visibility_wait: Duration::from_secs(2),
            pipeline_above: crate::append::PIPELINE_ABOVE,
            migrate_on_connect: true,
            #[cfg(feature = "rustls")]
            tls: None,
            #[cfg(feature = "test-hooks")]
            before_commit: None,
        }
    }

    /// Options for the server `config` describes and the tables in `schema`, the other
    /// options as [`PostgresOptions::new`] sets them, but the `application_name` the
    /// config's own if it has one. [`url`](PostgresOptions::url) becomes a description
    /// of the config, without its password, for messages.
    ///
    /// ```
    /// use factum_postgres::PostgresOptions;
    ///
    /// let mut config = tokio_postgres::Config::new();
    /// config.host("db.internal").user("shop").password("secret").dbname("shop");
    /// let options = PostgresOptions::from_config(config, "shop");
    /// assert_eq!(options.url, "host=db.internal user=shop dbname=shop");
    /// ```
    pub fn from_config(config: tokio_postgres::Config, schema: impl Into<String>) -> Self {
        let mut options = PostgresOptions::new(describe(&config), schema);
        if let Some(name) = config.get_application_name() {
            name.clone_into(&mut options.application_name);
        }
        options.config = Some(config);
        options
    }

    /// Options for the server named by [`DATABASE_URL`] (or
    /// `postgres://postgres@127.0.0.1:5432/test` when it is not set) and the tables in
    /// `schema`.
    pub fn from_env(schema: impl Into<String>) -> Self {
        PostgresOptions::new(database_url(), schema)
    }
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("PostgresOptions");
        debug
            .field("url", &redact(&self.url))
            .field("config", &self.config.is_some())
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("pool_wait_timeout", &self.pool_wait_timeout)
            .field("lock_pool_size", &self.lock_pool_size)
            .field("application_name", &self.application_name)
            .field("visibility_wait", &self.visibility_wait)
            .field("pipeline_above", &self.pipeline_above)
            .field("migrate_on_connect", &self.migrate_on_connect);
        #[cfg(feature = "rustls")]
        debug.field("tls", &self.tls.is_some());
        #[cfg(feature = "test-hooks")]
        debug.field("before_commit", &self.before_commit.is_some());
        debug.finish()
    }
}

/// The URL in [`DATABASE_URL`], or [`DEFAULT_DATABASE_URL`].
///
/// Exported with the `test-hooks` feature only: for tests, not a stable API.
pub fn database_url() -> String {
    std::env::var(DATABASE_URL).unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// `config` as a `key=value` string naming its hosts, ports, user and database (never
/// its password), for messages.
pub(crate) fn describe(config: &tokio_postgres::Config) -> String {
    let mut parts = Vec::new();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    if !hosts.is_empty() {
        parts.push(format!("host={}", hosts.join(",")));
    }
    let addresses: Vec<String> = config
        .get_hostaddrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    if !addresses.is_empty() {
        parts.push(format!("hostaddr={}", addresses.join(",")));
    }
    let ports: Vec<String> = config.get_ports().iter().map(ToString::to_string).collect();
    if !ports.is_empty() {
        parts.push(format!("port={}", ports.join(",")));
    }
    if let Some(user) = config.get_user() {
        parts.push(format!("user={user}"));
    }
    if let Some(dbname) = config.get_dbname() {
        parts.push(format!("dbname={dbname}"));
    }
    if parts.is_empty() {
        return "(an empty tokio_postgres::Config)".to_owned();
    }
    parts.join(" ")
}

/// `url` with any password replaced by `***`, for messages.
pub(crate) fn redact(url: &str) -> String {
    // postgres://user:password@host/db
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((credentials, host)) = rest.rsplit_once('@')
        && let Some((user, _)) = credentials.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    // key=value form: hide password=...
    if url.contains("password") {
        return url
            .split_whitespace()
            .map(|part| {
                if part.starts_with("password=") {
                    "password=***"
                } else {
                    part
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    url.to_owned()
}

/// The schema name if it is a plain identifier (see [`PostgresOptions::schema`]), and
/// its quoted form for SQL.
pub(crate) fn quote_schema(schema: &str) -> Result<String, PostgresError> {
    let mut chars = schema.chars();
    let valid = schema.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(PostgresError::InvalidSchema(schema.to_owned()));
    }
    Ok(format!("\"{schema}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert_eq!(quote_schema("shop").ok().as_deref(), Some("\"shop\""));
        assert_eq!(
            quote_schema("Factum_Test_9").ok().as_deref(),
            Some("\"Factum_Test_9\"")
        );
        assert!(quote_schema(&"a".repeat(63)).is_ok());
        for bad in [
            "",
            "9lives",
            "a-b",
            "a b",
            "a\"b",
            "a;drop",
            "ä",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(quote_schema(bad), Err(PostgresError::InvalidSchema(_))),
                "{bad:?} must be rejected"
            );
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("host=h password=secret user=u"),
            "host=h password=*** user=u"
        );
    }
}
