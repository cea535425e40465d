//! The crate's error type.

use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

/// Why a store could not be opened, or (wrapped in
/// [`StoreError::Backend`](factum::StoreError::Backend)) why an operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// The file could not be opened or configured.
    #[error("cannot open the SQLite event store {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer factum-sqlite, with a schema this one does not know.
    #[error(
        "the SQLite event store {path} has schema version {found}, but this factum-sqlite knows \
         versions up to {supported}: open it with a newer factum-sqlite"
    )]
    SchemaTooNew {
        /// The file.
        path: PathBuf,
        /// Its schema version (`PRAGMA user_version`).
        found: i64,
        /// The newest version this code knows.
        supported: i64,
    },
    /// The file is not a factum store, nor empty: an SQLite database of another
    /// application, or not an SQLite database at all. It is refused before anything in
    /// it changes (its journal mode, its pragmas, its tables).
    #[error("{path} is not a factum event store: {found}")]
    NotAStore {
        /// The file.
        path: PathBuf,
        /// Its `PRAGMA user_version` (0 when it could not be read).
        version: i64,
        /// Its `PRAGMA application_id` (0 when it could not be read).
        application_id: i64,
        /// What the file holds instead, in words ("an SQLite database holding 2 schema
        /// objects of another application: table users, index users_by_name").
        found: String,
    },
    /// A migration step failed; the file keeps the version before that step.
    #[error("cannot migrate the SQLite event store {path} to schema version {version}")]
    Migration {
        /// The file.
        path: PathBuf,
        /// The version the failed step leads to.
        version: i64,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The file cannot be put in WAL mode, which the store needs (an in-memory database
    /// cannot, for instance).
    #[error(
        "the SQLite event store {path} needs WAL journal mode but got {mode:?}: use a file on \
         a local disk, not `:memory:`"
    )]
    NoWal {
        /// The file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// An option is out of range.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option's field name.
        option: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A worker thread could not be started.
    #[error("cannot start the store's {thread} thread")]
    Spawn {
        /// Which thread.
        thread: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A worker thread stopped (it failed, or the store is shutting down).
    #[error("the store's {0} thread is gone")]
    WorkerGone(&'static str),
    /// A worker's queue lock was poisoned by a panic.
    #[error("the store's {0} queue lock is poisoned")]
    Poisoned(&'static str),
    /// The transaction of a group commit failed: none of its requests was written.
    #[error("the group commit failed, nothing of it was written")]
    GroupCommit(#[source] Arc<SqliteError>),
    /// SQLite rolled back the whole transaction of a group commit after an error in one
    /// request (it does so on I/O errors, a full disk, a lost lock); or the transaction of
    /// a [`SqliteProjectionSink`](crate::SqliteProjectionSink)'s batch ended midway (the
    /// same causes, a projection ending it, the idle limit), and the batch must be read
    /// again from the stored checkpoint.
    #[error("SQLite abandoned the group's transaction: {0}")]
    TransactionLost(String),
    /// A stored record other than an event (an idempotency key, a snapshot) is corrupt.
    #[error("corrupt {what} record {key:?}: {reason}")]
    CorruptRecord {
        /// Which table.
        what: &'static str,
        /// Its key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A value does not fit SQLite's signed 64-bit integers.
    #[error("{what} {value} does not fit SQLite's 64-bit integers")]
    OutOfRange {
        /// What the value is.
        what: &'static str,
        /// The value.
        value: u64,
    },
    /// A caller-set `recorded_at` is too far from 1970 for microseconds in a 64-bit
    /// integer (about 292,000 years either way).
    #[error("recorded_at {0:?} is too far from 1970 for SQLite's 64-bit microseconds")]
    TimeOutOfRange(std::time::SystemTime),
    /// SQLite failed.
    #[error("SQLite failed")]
    Sqlite(#[from] rusqlite::Error),
}

impl SqliteError {
    /// Whether the same call may succeed later: SQLite was busy or locked by another
    /// connection or process, the group's transaction was abandoned (SQLite rolls one
    /// back on a busy or full database), or a group commit failed for such a reason.
    /// A store that cannot open or migrate, a corrupt record, a value out of range and a
    /// store whose threads are gone fail the same way every time.
    pub fn is_retryable(&self) -> bool {
        match self {
            SqliteError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            SqliteError::GroupCommit(e) => e.is_retryable(),
            SqliteError::TransactionLost(_) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_fails_the_same_way_every_time_is_not_retryable() {
        let corrupt = SqliteError::CorruptRecord {
            what: "event",
            key: "3".into(),
            reason: "an unknown codec".into(),
        };
        assert!(!corrupt.is_retryable());
        assert!(!SqliteError::WorkerGone("writer").is_retryable());
        let refused = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        );
        assert!(!SqliteError::Sqlite(refused).is_retryable());
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        let group = SqliteError::GroupCommit(Arc::new(SqliteError::Sqlite(busy)));
        assert!(group.is_retryable());
    }
}
