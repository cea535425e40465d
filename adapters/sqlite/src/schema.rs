//! The schema, its migrations (versioned with `PRAGMA user_version`), and connection
//! setup.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};

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
    // Before the first change: WAL mode rewrites the header of any database.
    identify(conn, path)?;
    let mode = wal_mode(conn, options.busy_timeout).map_err(open_error)?;
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

/// Switches to WAL mode, the answer being the journal mode now in force. Two openers
/// switching a new file at once both hold a shared lock and want an exclusive one:
/// SQLite answers one of them "busy" at once, without its busy handler (which would
/// wait forever), so the switch is retried here until `busy_timeout`.
fn wal_mode(conn: &Connection, busy_timeout: Duration) -> rusqlite::Result<String> {
    let deadline = Instant::now() + busy_timeout;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)) {
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            answer => return answer,
        }
    }
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
        // Another process may have migrated between our look and our lock. A file still
        // at version 0 must be empty, looked at under the lock: another application's
        // tables are not ours to add to (`identify` saw none; this catches one created
        // since), while another opener's first migration has committed by now.
        let mut foreign = None;
        let step = versions(conn).and_then(|(current, application_id)| {
            if current != version {
                return Ok(false);
            }
            if current == 0 {
                foreign = schema_objects(conn)?;
                if foreign.is_some() {
                    return Ok(false);
                }
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
        if let (Ok(false), Some(found)) = (&step, foreign) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(not_a_store(path, version, application_id, found));
        }
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

/// Refuses a file that is neither a factum store nor empty, reading only: nothing in it
/// changes (a refused file is left byte for byte as it was, with no `-wal` or `-shm`
/// beside it).
///
/// A store is marked by its `PRAGMA application_id` (every factum store has it, set by its
/// first migration). Empty is a 0-byte file, or a database with no schema objects, no
/// schema version and no application id: it becomes a store.
fn identify(conn: &Connection, path: &Path) -> Result<(), SqliteError> {
    // One read transaction: another opener's first migration (objects, version and id
    // together) is either wholly seen or not at all.
    let began = conn.execute_batch("BEGIN").is_ok();
    let identified = identify_in(conn, path);
    if began && !conn.is_autocommit() {
        let _ = conn.execute_batch("COMMIT");
    }
    identified
}

fn identify_in(conn: &Connection, path: &Path) -> Result<(), SqliteError> {
    let (version, application_id) = match versions(conn) {
        Ok(found) => found,
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) => {
            return Err(not_a_store(
                path,
                0,
                0,
                "a file that is not an SQLite database".to_owned(),
            ));
        }
        Err(source) => {
            return Err(SqliteError::Open {
                path: path.to_owned(),
                source,
            });
        }
    };
    if application_id == APPLICATION_ID {
        return check(path, version, application_id);
    }
    if application_id != 0 {
        return Err(not_a_store(
            path,
            version,
            application_id,
            format!(
                "an SQLite database of another application (application id {application_id:#x})"
            ),
        ));
    }
    if version != 0 {
        return Err(not_a_store(
            path,
            version,
            application_id,
            format!(
                "an SQLite database with schema version {version} and no factum application id"
            ),
        ));
    }
    let objects = schema_objects(conn).map_err(|source| SqliteError::Open {
        path: path.to_owned(),
        source,
    })?;
    match objects {
        Some(found) => Err(not_a_store(path, version, application_id, found)),
        None => Ok(()),
    }
}

fn not_a_store(path: &Path, version: i64, application_id: i64, found: String) -> SqliteError {
    SqliteError::NotAStore {
        path: path.to_owned(),
        version,
        application_id,
        found,
    }
}

/// The schema objects (tables, indexes, views, triggers) of the database, described, or
/// `None` if it has none.
fn schema_objects(conn: &Connection) -> rusqlite::Result<Option<String>> {
    const SHOWN: usize = 4;
    let mut stmt = conn.prepare(
        "SELECT type, name, count(*) OVER () FROM sqlite_schema \
         WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid LIMIT ?1",
    )?;
    let mut total = 0i64;
    let mut names = Vec::new();
    let mut rows = stmt.query([SHOWN as i64])?;
    while let Some(row) = rows.next()? {
        let kind: String = row.get(0)?;
        let name: String = row.get(1)?;
        total = row.get(2)?;
        names.push(format!("{kind} {name}"));
    }
    if names.is_empty() {
        return Ok(None);
    }
    let more = if total > SHOWN as i64 { ", ..." } else { "" };
    Ok(Some(format!(
        "an SQLite database holding {total} schema object{} of another application: {}{more}",
        if total == 1 { "" } else { "s" },
        names.join(", ")
    )))
}

fn check(path: &Path, version: i64, application_id: i64) -> Result<(), SqliteError> {
    if version > 0 && application_id != APPLICATION_ID {
        return Err(not_a_store(
            path,
            version,
            application_id,
            format!(
                "an SQLite database with schema version {version} and application id \
                 {application_id:#x}, not factum's"
            ),
        ));
    }
    if version > SCHEMA_VERSION {
        return Err(SqliteError::SchemaTooNew {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < 0 {
        return Err(not_a_store(
            path,
            version,
            application_id,
            format!("an SQLite database with the negative schema version {version}"),
        ));
    }
    Ok(())
}
