//! The schema, its migrations (versioned with `PRAGMA user_version`), and connection
//! setup.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::SqliteOptions;
use crate::error::SqliteError;

/// `PRAGMA application_id` of a factum store: "fact" in ASCII.
pub(crate) const APPLICATION_ID: i64 = 0x6661_6374;

/// The migration steps: step `i` takes a file from version `i` to version `i + 1`.
///
/// Never edit a released step; add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "
    -- The log. `position` is the rowid: gap-free, assigned by the single writer inside its
    -- transaction, so positions are in commit order.
    CREATE TABLE events (
        position        INTEGER PRIMARY KEY,
        type            TEXT    NOT NULL,
        version         INTEGER NOT NULL,
        codec           TEXT    NOT NULL,
        payload         BLOB    NOT NULL,
        -- The tags as given, for reading back: a JSON array of [key, value] pairs.
        tags            TEXT    NOT NULL,
        event_id        BLOB    NOT NULL,
        correlation_id  BLOB,
        causation_id    BLOB,
        idempotency_key TEXT,
        -- Microseconds since the Unix epoch.
        recorded_at     INTEGER NOT NULL
    ) STRICT;

    -- Type queries: one ordered range per type.
    CREATE INDEX events_by_type ON events (type, position);

    -- Tag queries: one ordered range per tag, key and value apart.
    CREATE TABLE event_tags (
        tag_key   TEXT    NOT NULL,
        tag_value TEXT    NOT NULL,
        position  INTEGER NOT NULL,
        PRIMARY KEY (tag_key, tag_value, position)
    ) STRICT, WITHOUT ROWID;

    -- Each idempotency key and the positions of the append that recorded it (adjacent:
    -- the events of one append are).
    CREATE TABLE idempotency_keys (
        key            TEXT    PRIMARY KEY,
        first_position INTEGER NOT NULL,
        last_position  INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE snapshots (
        key      TEXT    PRIMARY KEY,
        query    TEXT    NOT NULL,
        position INTEGER NOT NULL,
        codec    TEXT    NOT NULL,
        payload  BLOB    NOT NULL
    ) STRICT;
    ",
    // 2: what listeners keep: checkpoints and dead letters.
    "
    -- How far each listener has consumed the log (0: start over).
    CREATE TABLE listener_checkpoints (
        listener TEXT    PRIMARY KEY,
        position INTEGER NOT NULL
    ) STRICT;

    -- Events a listener gave up on. AUTOINCREMENT: an id is never handed out twice, even
    -- after the newest letter was removed.
    CREATE TABLE dead_letters (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        listener    TEXT    NOT NULL,
        position    INTEGER NOT NULL,
        event_type  TEXT    NOT NULL,
        error       TEXT    NOT NULL,
        attempts    INTEGER NOT NULL,
        -- Microseconds since the Unix epoch.
        recorded_at INTEGER NOT NULL
    ) STRICT;

    -- One letter per listener and position: an event failing again replaces it.
    CREATE UNIQUE INDEX dead_letters_by_listener ON dead_letters (listener, position);
    ",
];

/// The schema version this code writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens a connection to `path` and applies the per-connection settings.
pub(crate) fn connect(path: &Path, options: &SqliteOptions) -> Result<Connection, SqliteError> {
    let open_error = |source| SqliteError::Open {
        path: path.to_owned(),
        source,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(open_error)?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(open_error)?;
    // Statements are cached per connection: a query shape seen before skips the parser.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Sets up the write connection: WAL mode, the durability asked for, and the schema
/// migrated to [`SCHEMA_VERSION`].
pub(crate) fn prepare_writer(
    conn: &Connection,
    path: &Path,
    options: &SqliteOptions,
) -> Result<(), SqliteError> {
    let open_error = |source| SqliteError::Open {
        path: path.to_owned(),
        source,
    };
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(open_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteError::NoWal {
            path: path.to_owned(),
            mode,
        });
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {};",
        options.synchronous.pragma()
    ))
    .map_err(open_error)?;
    migrate(conn, path)
}

/// Sets up a read connection: it refuses writes.
pub(crate) fn prepare_reader(conn: &Connection, path: &Path) -> Result<(), SqliteError> {
    conn.execute_batch("PRAGMA query_only = ON;")
        .map_err(|source| SqliteError::Open {
            path: path.to_owned(),
            source,
        })
}

fn versions(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    let version = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let application_id = conn.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    Ok((version, application_id))
}

/// Brings the file to [`SCHEMA_VERSION`], one step per transaction; refuses a file of a
/// newer version or of another application.
pub(crate) fn migrate(conn: &Connection, path: &Path) -> Result<(), SqliteError> {
    loop {
        let (version, application_id) = versions(conn).map_err(|source| SqliteError::Open {
            path: path.to_owned(),
            source,
        })?;
        check(path, version, application_id)?;
        // A file of version 0 must be empty: another application's tables are not ours
        // to add to.
        if version == 0
            && has_tables(conn).map_err(|source| SqliteError::Open {
                path: path.to_owned(),
                source,
            })?
        {
            return Err(SqliteError::NotAStore {
                path: path.to_owned(),
                version,
                application_id,
            });
        }
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        let next = version + 1;
        let migration_error = |source| SqliteError::Migration {
            path: path.to_owned(),
            version: next,
            source,
        };
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(migration_error)?;
        // Another process may have migrated between our look and our lock.
        let step = versions(conn).and_then(|(current, application_id)| {
            if current != version {
                return Ok(false);
            }
            let index = usize::try_from(version).unwrap_or(usize::MAX);
            let sql = MIGRATIONS.get(index).copied().unwrap_or("");
            conn.execute_batch(sql)?;
            if application_id == 0 {
                conn.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID};"))?;
            }
            conn.execute_batch(&format!("PRAGMA user_version = {next};"))?;
            Ok(true)
        });
        match step.and_then(|stepped| conn.execute_batch("COMMIT").map(|()| stepped)) {
            Ok(true) => {
                tracing::info!(path = %path.display(), version = next, "migrated the event store")
            }
            Ok(false) => {}
            Err(e) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                return Err(migration_error(e));
            }
        }
    }
}

fn has_tables(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%')",
        [],
        |row| row.get(0),
    )
}

fn check(path: &Path, version: i64, application_id: i64) -> Result<(), SqliteError> {
    if version > 0 && application_id != APPLICATION_ID {
        return Err(SqliteError::NotAStore {
            path: path.to_owned(),
            version,
            application_id,
        });
    }
    if version > SCHEMA_VERSION {
        return Err(SqliteError::SchemaTooNew {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < 0 {
        return Err(SqliteError::NotAStore {
            path: path.to_owned(),
            version,
            application_id,
        });
    }
    Ok(())
}
