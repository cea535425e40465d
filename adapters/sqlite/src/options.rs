//! How a store is opened: durability, threads, page and group sizes.

use std::time::Duration;

/// How hard SQLite works to make a commit durable before the append returns.
///
/// The store always runs in WAL mode; this sets `PRAGMA synchronous` on its write
/// connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Synchronous {
    /// `synchronous=FULL` (the default): every commit is synced to disk before the append
    /// returns, so an acknowledged append survives a power loss or an OS crash.
    #[default]
    Full,
    /// `synchronous=NORMAL`: commits are synced at WAL checkpoints only, which is faster.
    ///
    /// What it risks: on a **power loss or an OS crash**, the most recent commits can be
    /// lost — appends that were already acknowledged (and decisions that were reported
    /// as committed) may be missing after a restart. An **application crash** loses
    /// nothing, since the commits are in the operating system's hands, and the file stays
    /// consistent in every case: whole appends are kept or lost, never a part of one, and
    /// positions stay gap-free. Choose it only when losing the last moments of history
    /// on a machine crash is acceptable.
    Normal,
}

impl Synchronous {
    /// The value of `PRAGMA synchronous` it stands for.
    pub fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Options for [`open_with`](crate::open_with).
///
/// Change the fields you need and take the rest from the default:
///
/// ```
/// use factum_sqlite::{SqliteOptions, Synchronous};
///
/// let options = SqliteOptions { synchronous: Synchronous::Normal, ..SqliteOptions::default() };
/// assert_eq!(options.readers, SqliteOptions::default().readers);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Durability of each commit: [`Synchronous::Full`] unless you opt out.
    pub synchronous: Synchronous,
    /// Reader threads, each with its own connection (at least 1). Reads run on them, beside
    /// the single writer thread.
    pub readers: usize,
    /// Events fetched per page of a read (at least 1): a read holds at most one page in
    /// memory and never occupies a reader for longer than one page.
    pub read_page_size: usize,
    /// The most requests (appends, batches, snapshot saves) the writer commits in one
    /// transaction (at least 1).
    pub max_group: usize,
    /// How long a connection waits for a lock held by another process before it fails.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            readers: 4,
            read_page_size: 1024,
            max_group: 512,
            busy_timeout: Duration::from_secs(5),
        }
    }
}
