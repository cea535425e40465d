//! Errors of connecting to PostgreSQL and preparing the schema.

use thiserror::Error;

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
    /// The connection URL does not parse.
    #[error("invalid PostgreSQL URL {url}: {source}")]
    InvalidUrl {
        /// The URL, without its password.
        url: String,
        /// What the parser said.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The connection pool could not be built.
    #[error("cannot build the PostgreSQL connection pool: {0}")]
    Pool(String),
    /// The server could not be reached, or refused the connection.
    #[error("cannot connect to PostgreSQL at {url}: {source}")]
    Connect {
        /// The URL, without its password (and where it came from, for `from_env`).
        url: String,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A migration step failed; the step's transaction was rolled back.
    #[error("migrating schema {schema} to version {version} failed: {source}")]
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
    /// Another statement failed.
    #[error("PostgreSQL failed: {0}")]
    Query(#[from] tokio_postgres::Error),
}
