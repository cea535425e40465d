//! The group commit: the requests taken from the queue at one wake, run in one
//! transaction, answered after its commit.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use factum::{AppendError, Appended, Snapshot, StoreError};
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::check::exempt;
use super::group::Group;
use super::{BatchResult, Command, Execute, Prepared};
use crate::error::SqliteError;
use crate::head::{self, HeadSender};

/// The writer's loop: wait for a request, take all queued ones, commit them as one group.
pub(super) fn serve(
    conn: &Connection,
    queue: &Receiver<Command>,
    max_group: usize,
    signal: &HeadSender,
) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < max_group {
            match queue.try_recv() {
                Ok(command) => group.push(command),
                Err(_) => break,
            }
        }
        if std::panic::catch_unwind(AssertUnwindSafe(|| commit_group(conn, group, signal))).is_err()
        {
            // The group's callers got errors when their replies were dropped.
            tracing::error!("the writer panicked during a group commit; the group is lost");
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
    }
    tracing::debug!("the store was dropped; the writer thread stops");
}

enum Work {
    Execute(Execute),
    Append(Vec<Prepared>),
    Snapshot(Snapshot),
}

enum Reply {
    Execute(oneshot::Sender<Result<i64, StoreError>>),
    Append(oneshot::Sender<BatchResult>),
    Snapshot(oneshot::Sender<Result<(), StoreError>>),
}

enum Done {
    Execute(Result<i64, StoreError>),
    Append(Vec<Result<Appended, AppendError>>),
    Snapshot(Result<(), StoreError>),
}

fn commit_group(conn: &Connection, group: Vec<Command>, signal: &HeadSender) {
    let mut works = Vec::with_capacity(group.len());
    let mut replies = Vec::with_capacity(group.len());
    for command in group {
        match command {
            Command::Execute { work, reply } => {
                works.push(Work::Execute(work));
                replies.push(Reply::Execute(reply));
            }
            Command::Append { batch, reply } => {
                works.push(Work::Append(batch));
                replies.push(Reply::Append(reply));
            }
            Command::SaveSnapshot { snapshot, reply } => {
                works.push(Work::Snapshot(snapshot));
                replies.push(Reply::Snapshot(reply));
            }
        }
    }
    let size = works.len();
    match transaction(conn, works) {
        Ok(done) => {
            tracing::trace!(requests = size, "group committed");
            let newest = done
                .iter()
                .filter_map(|done| match done {
                    Done::Append(results) => results
                        .iter()
                        .filter_map(|r| r.as_ref().ok().and_then(Appended::last))
                        .max(),
                    _ => None,
                })
                .max();
            head::advance(signal, newest);
            for (reply, done) in replies.into_iter().zip(done) {
                // A caller that stopped waiting is no reason to fail the others.
                let _ = match (reply, done) {
                    (Reply::Append(reply), Done::Append(results)) => {
                        reply.send(Ok(results)).is_ok()
                    }
                    (Reply::Snapshot(reply), Done::Snapshot(result)) => reply.send(result).is_ok(),
                    (Reply::Execute(reply), Done::Execute(result)) => reply.send(result).is_ok(),
                    // `transaction` answers each work in order with its own kind.
                    _ => false,
                };
            }
        }
        Err(error) => {
            tracing::warn!(
                requests = size,
                %error,
                "a group commit failed; nothing of it was written"
            );
            let error = Arc::new(error);
            let store_error = || StoreError::backend(SqliteError::GroupCommit(error.clone()));
            for reply in replies {
                let _ = match reply {
                    Reply::Execute(reply) => reply.send(Err(store_error())).is_ok(),
                    Reply::Append(reply) => reply.send(Err(store_error())).is_ok(),
                    Reply::Snapshot(reply) => reply.send(Err(store_error())).is_ok(),
                };
            }
        }
    }
}

/// Runs the group in one transaction; an error means nothing was written.
fn transaction(conn: &Connection, works: Vec<Work>) -> Result<Vec<Done>, SqliteError> {
    if !conn.is_autocommit() {
        // Left open by a panic: start clean.
        let _ = conn.execute_batch("ROLLBACK");
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let mut group = Group::new(conn)?;
        let mut done = Vec::with_capacity(works.len());
        for work in works {
            done.push(match work {
                Work::Append(batch) => {
                    let mut results: Vec<Result<Appended, AppendError>> =
                        Vec::with_capacity(batch.len());
                    for (index, prepared) in batch.into_iter().enumerate() {
                        let result = match exempt(index, &prepared.request.builds_on, &results) {
                            Ok(exempt) => group.append(prepared, &exempt)?,
                            Err(e) => Err(e),
                        };
                        results.push(result);
                    }
                    Done::Append(results)
                }
                Work::Snapshot(snapshot) => Done::Snapshot(group.save_snapshot(&snapshot)?),
                Work::Execute(work) => Done::Execute(group.execute(work)?),
            });
        }
        drop(group);
        conn.execute_batch("COMMIT")?;
        Ok(done)
    })();
    if result.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}
