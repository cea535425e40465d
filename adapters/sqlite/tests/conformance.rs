//! The factum store conformance suite, each case against a fresh store in a new file.

use factum::conformance::Guarded;
use factum_sqlite::{SqliteOptions, SqliteStore};
use tempfile::TempDir;

/// A store together with the temporary directory of its file, removed when the last
/// clone is dropped.
type TempStore = Guarded<SqliteStore, TempDir>;

async fn make_with(options: SqliteOptions) -> TempStore {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = factum_sqlite::open_with(dir.path().join("events.db"), options)
        .await
        .expect("a fresh SQLite store");
    Guarded::new(store, dir)
}

/// The default options.
async fn make() -> TempStore {
    make_with(SqliteOptions::default()).await
}

factum::conformance_tests!(make);

/// The listener cases: checkpoints, dead letters, the commit signal, a subscription.
mod listening {
    use super::make;

    factum::listener_conformance_tests!(make);
}

/// Small pages, groups and pools: reads of more than a few events page, every queue is
/// a contention point. (Pages of 16: the contention case reads its course thousands of
/// times; `tests/reads.rs` compares reads with pages of 1 and 7 against the memory
/// store.)
mod tiny {
    use super::*;

    async fn make_tiny() -> TempStore {
        make_with(SqliteOptions {
            readers: 1,
            read_page_size: 16,
            max_group: 2,
            ..SqliteOptions::default()
        })
        .await
    }

    factum::conformance_tests!(make_tiny);
}
