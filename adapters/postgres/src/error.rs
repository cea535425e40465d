//! Errors of connecting to PostgreSQL and preparing the schema, and how a failed
//! statement of the store's operations reaches the caller.

use std::fmt;

use factum::StoreError;
use thiserror::Error;
use tokio_postgres::error::DbError;

/// Why a [`PostgresStore`](crate::PostgresStore) could not be opened or its schema
/// prepared or dropped.
///
/// Failures of the store's operations (reads, appends, snapshots) are
/// [`factum::StoreError`]s instead, as the [`factum::EventStore`] trait says.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The schema name is not a plain SQL identifier.
    #[error(
        "invalid schema name {0:?}: use 1 to 63 ASCII letters, digits and underscores, not starting with a digit"
    )]
    InvalidSchema(String),
    /// The schema is PostgreSQL's own (`pg_catalog`, `information_schema`, `pg_toast`,
    /// any name starting with `pg_`) or `public`, the database's default schema, which
    /// other applications share: a store never takes it, and so can never drop it. Refused
    /// before any SQL runs.
    #[error("schema {schema} cannot hold a factum store: {reason}; choose a schema of its own")]
    ReservedSchema {
        /// The schema.
        schema: String,
        /// Why it is reserved.
        reason: &'static str,
    },
    /// The schema exists and holds objects, but no factum store (it has no
    /// `factum_migrations` table): it belongs to someone else. Opening a store in it, or
    /// dropping it, is refused before anything in it changes. `drop_schema()` also
    /// refuses an existing schema that holds nothing: it is no store either.
    #[error("schema {schema} is not a factum store: it holds {found}; choose another schema")]
    ForeignSchema {
        /// The schema.
        schema: String,
        /// What it holds, as PostgreSQL describes its objects ("table s.users, function
        /// s.one()", the first few and a count).
        found: String,
    },
    /// The connection URL does not parse.
    #[error("invalid PostgreSQL URL {url}")]
    InvalidUrl {
        /// The URL, without its password.
        url: String,
        /// What the parser said.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The URL asks for TLS (`sslmode=require`), and this build has none: without the
    /// `rustls` feature, the store refuses to connect rather than connect in plaintext.
    #[error(
        "{url} asks for TLS (sslmode=require), but factum-postgres was built without TLS: \
         enable its `rustls` feature"
    )]
    TlsNotEnabled {
        /// The URL, without its password.
        url: String,
    },
    /// TLS could not be set up (before any connection): no trusted root certificate, or a
    /// crypto provider without a safe protocol version.
    #[error("cannot set up TLS for PostgreSQL: {reason}")]
    Tls {
        /// What is missing, and how to provide it.
        reason: String,
    },
    /// The connection pool could not be built.
    #[error("cannot build the PostgreSQL connection pool")]
    Pool {
        /// What the pool builder said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server could not be reached, or refused the connection.
    #[error("cannot connect to PostgreSQL at {url}")]
    Connect {
        /// The URL, without its password (and where it came from, for `from_env`).
        url: String,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A migration step failed; the step's transaction was rolled back.
    #[error("migrating schema {schema} to version {version} failed")]
    Migration {
        /// The schema.
        schema: String,
        /// The version the failed step would have reached.
        version: i32,
        /// What PostgreSQL said.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The schema was migrated by a newer version of this crate.
    #[error(
        "schema {schema} is at version {found}, newer than version {known}, the newest this \
         factum-postgres knows: upgrade factum-postgres, or use another schema"
    )]
    SchemaTooNew {
        /// The schema.
        schema: String,
        /// The version recorded in the schema's migrations table.
        found: i32,
        /// The newest version this crate knows.
        known: i32,
    },
    /// The store was opened with
    /// [`PostgresOptions::migrate_on_connect`](crate::PostgresOptions::migrate_on_connect)
    /// off, and its schema does not exist (or is empty): it was never migrated.
    #[error(
        "schema {schema} holds no factum store: run the migration first \
         (PostgresStore::migrate), or connect with migrate_on_connect"
    )]
    SchemaMissing {
        /// The schema.
        schema: String,
    },
    /// The store was opened with
    /// [`PostgresOptions::migrate_on_connect`](crate::PostgresOptions::migrate_on_connect)
    /// off, and its schema is at a version older than this crate's [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).
    #[error(
        "schema {schema} is at version {found}, older than version {needed}, which this \
         factum-postgres needs: run the migration first (PostgresStore::migrate), or connect \
         with migrate_on_connect"
    )]
    SchemaTooOld {
        /// The schema.
        schema: String,
        /// The version recorded in the schema's migrations table.
        found: i32,
        /// The version this crate needs, [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).
        needed: i32,
    },
    /// Another statement failed.
    #[error("PostgreSQL failed")]
    Query(#[from] tokio_postgres::Error),
}

impl PostgresError {
    /// Whether the same call may succeed later: connecting (the server may come up), a
    /// schema not migrated yet (the deploy's migration step may still be running), and a
    /// statement that failed for a reason that may pass ([`PostgresFailure::is_retryable`]).
    /// A bad URL or schema, a failed migration or a schema newer than this crate fail the
    /// same way every time.
    pub fn is_retryable(&self) -> bool {
        match self {
            PostgresError::Connect { .. }
            | PostgresError::SchemaMissing { .. }
            | PostgresError::SchemaTooOld { .. } => true,
            PostgresError::Query(e) => retryable(e),
            PostgresError::InvalidSchema(_)
            | PostgresError::ReservedSchema { .. }
            | PostgresError::ForeignSchema { .. }
            | PostgresError::InvalidUrl { .. }
            | PostgresError::TlsNotEnabled { .. }
            | PostgresError::Tls { .. }
            | PostgresError::Pool { .. }
            | PostgresError::Migration { .. }
            | PostgresError::SchemaTooNew { .. } => false,
        }
    }
}

/// A statement of the store's operations (appends, reads, snapshots, listeners,
/// projections, locks) that failed, as the [`StoreError::Backend`] it becomes holds it.
///
/// Its text carries what the server said — SQLSTATE, message, detail and hint — where
/// [`tokio_postgres::Error`]'s says only "db error"; for a failure of the connection,
/// what the client saw. [`PostgresFailure::code`] and [`PostgresFailure::db_error`] give
/// the parts; the error itself is its [`source`](std::error::Error::source).
///
/// ```no_run
/// # async fn example(store: factum_postgres::PostgresStore, events: Vec<factum::NewEvent>) {
/// use factum::{AppendError, EventStore, StoreError};
/// use factum_postgres::PostgresFailure;
///
/// if let Err(AppendError::Store(StoreError::Backend(e))) = store.append(events, None).await
///     && let Some(failure) = e.downcast_ref::<PostgresFailure>()
/// {
///     eprintln!("SQLSTATE {:?}: {failure}", failure.code());
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct PostgresFailure(tokio_postgres::Error);

impl PostgresFailure {
    /// The SQLSTATE the server sent, if the server refused the statement.
    pub fn code(&self) -> Option<&str> {
        self.0.code().map(tokio_postgres::error::SqlState::code)
    }

    /// What the server said, if it refused the statement.
    pub fn db_error(&self) -> Option<&DbError> {
        self.0.as_db_error()
    }

    /// The client library's error.
    pub fn into_inner(self) -> tokio_postgres::Error {
        self.0
    }

    pub(crate) fn inner(&self) -> &tokio_postgres::Error {
        &self.0
    }

    /// Whether the same statement may succeed when run again: the connection failed (no
    /// SQLSTATE, or class 08), the transaction lost a serialization race or a deadlock
    /// (40001, 40P01), the server ran short of resources or is shutting down (class 53,
    /// 57P01–57P03), or a lock or statement timed out (55P03, 57014). A refused
    /// statement (a constraint, a syntax or permission error) fails the same way every
    /// time.
    pub fn is_retryable(&self) -> bool {
        retryable(&self.0)
    }
}

/// See [`PostgresFailure::is_retryable`].
pub(crate) fn retryable(e: &tokio_postgres::Error) -> bool {
    let Some(code) = e.code() else {
        return true;
    };
    let code = code.code();
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03"
        )
}

impl From<tokio_postgres::Error> for PostgresFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        PostgresFailure(e)
    }
}

impl fmt::Display for PostgresFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(db) = self.0.as_db_error() else {
            // "error communicating with the server", and then what the I/O layer said.
            write!(f, "{}", self.0)?;
            if let Some(source) = std::error::Error::source(&self.0) {
                write!(f, ": {source}")?;
            }
            return Ok(());
        };
        write!(
            f,
            "PostgreSQL {} {}: {}",
            db.severity(),
            db.code().code(),
            db.message()
        )?;
        if let Some(detail) = db.detail() {
            write!(f, "; detail: {detail}")?;
        }
        if let Some(hint) = db.hint() {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PostgresFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// A failed statement as the store's error, its text carrying the server's (see
/// [`PostgresFailure`]).
pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    StoreError::backend(PostgresFailure(e))
}
