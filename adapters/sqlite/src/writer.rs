//! The writer thread and group commit.
//!
//! One thread owns the write connection. Appends, batches and snapshot saves reach it
//! over a channel and get their answers over oneshot channels. Each time it wakes, it
//! takes every request already queued (up to [`SqliteOptions::max_group`]) and commits
//! them in **one** transaction, so one disk sync serves them all. Inside it, each append
//! is checked on its own, in arrival order, exactly as if appended alone: idempotency keys
//! first, then its condition against everything stored before it (including the requests
//! ahead of it in the group), then its events are inserted under a savepoint, so a request
//! that fails undoes only its own work. A request of a batch that builds on earlier
//! requests of it ([`AppendRequest::builds_on`]) fails with [`AppendError::Dependency`]
//! when one of them failed; otherwise its condition check skips the positions they wrote
//! (each a contiguous range). Answers go out only after the commit; if the commit fails,
//! every request of the group gets the error and nothing was written.

mod check;
mod commit;
mod group;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;

use factum::{AppendError, AppendRequest, Appended, Snapshot, StoreError};
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::SqliteOptions;
use crate::error::SqliteError;
use crate::head::{self, HeadSender};
use crate::row::position_from_sql;
use crate::schema;
use crate::sql::CompiledQuery;

pub(crate) use check::recorded_positions;
use commit::serve;

/// The answer to a batch of appends.
type BatchResult = Result<Vec<Result<Appended, AppendError>>, StoreError>;

/// One append, its condition's query compiled by the caller (off the writer thread).
pub(crate) struct Prepared {
    request: AppendRequest,
    query: Option<CompiledQuery>,
}

impl Prepared {
    /// Prepares `request` for the writer.
    pub(crate) fn new(request: AppendRequest) -> Self {
        let query = request
            .condition
            .as_ref()
            .map(|c| CompiledQuery::new(&c.query));
        Prepared { request, query }
    }
}

/// Work run by the writer inside a group's transaction, under a savepoint of its own
/// (an error undoes it alone), answered with a number after the commit.
pub(crate) type Execute = Box<dyn FnOnce(&Connection) -> Result<i64, StoreError> + Send>;

enum Command {
    Execute {
        work: Execute,
        reply: oneshot::Sender<Result<i64, StoreError>>,
    },
    Append {
        batch: Vec<Prepared>,
        reply: oneshot::Sender<BatchResult>,
    },
    SaveSnapshot {
        snapshot: Snapshot,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// The handle on the writer thread. Dropping it closes the queue and waits for the
/// thread to finish the group it is committing, so the file is closed afterwards.
#[derive(Debug)]
pub(crate) struct Writer {
    commands: Sender<Command>,
    thread: Option<JoinHandle<()>>,
    /// The commit signal of the file, advanced after each group that appended.
    pub(crate) head: Arc<HeadSender>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Close the queue: the thread ends its loop once the queued requests are done.
        drop(std::mem::replace(&mut self.commands, mpsc::channel().0));
        if let Some(thread) = self.thread.take() {
            join("writer", thread);
        }
    }
}

/// Waits for a worker thread to end, unless this is that thread.
pub(crate) fn join(what: &str, thread: JoinHandle<()>) {
    if thread.thread().id() == std::thread::current().id() {
        return;
    }
    if thread.join().is_err() {
        tracing::error!(thread = what, "a store thread panicked");
    }
}

fn gone() -> StoreError {
    StoreError::backend(SqliteError::WorkerGone("writer"))
}

impl Writer {
    /// Starts the writer thread: it opens the file, sets WAL mode and durability, and
    /// migrates the schema before this returns.
    pub(crate) async fn start(path: &Path, options: &SqliteOptions) -> Result<Writer, SqliteError> {
        let (commands, queue) = mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let path: PathBuf = path.to_owned();
        let options = options.clone();
        let name = "factum-sqlite-writer".to_owned();
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let conn = schema::connect(&path, &options);
                let conn = conn.and_then(|conn| {
                    schema::prepare_writer(&conn, &path, &options)?;
                    Ok(conn)
                });
                let conn = conn.and_then(|conn| {
                    let newest =
                        crate::reader::head(&conn).map_err(|source| SqliteError::Open {
                            path: path.clone(),
                            source,
                        })?;
                    let signal = head::shared(&path, newest.and_then(position_from_sql));
                    Ok((conn, signal))
                });
                match conn {
                    Ok((conn, signal)) => {
                        let _ = ready_tx.send(Ok(signal.clone()));
                        serve(&conn, &queue, options.max_group, &signal);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|source| SqliteError::Spawn {
                thread: name,
                source,
            })?;
        let mut writer = Writer {
            commands,
            thread: Some(thread),
            head: Arc::new(tokio::sync::watch::channel(None).0),
        };
        writer.head = ready_rx
            .await
            .map_err(|_| SqliteError::WorkerGone("writer"))??;
        Ok(writer)
    }

    /// Appends the batch through the next group commit.
    pub(crate) async fn append_batch(&self, batch: Vec<Prepared>) -> BatchResult {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::Append { batch, reply })
            .map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }

    /// Runs `work` in the next group commit, under a savepoint of its own, and returns its
    /// answer once the group committed.
    pub(crate) async fn execute(&self, work: Execute) -> Result<i64, StoreError> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::Execute { work, reply })
            .map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }

    /// Saves a snapshot through the next group commit.
    pub(crate) async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::SaveSnapshot { snapshot, reply })
            .map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }
}
