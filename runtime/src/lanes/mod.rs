//! Concurrency strategies: serial lanes with group commit, the store lock, and the
//! dispatcher that picks one per decision.
//!
//! A serial lane takes the decisions queued on it (routed by partition key), decides
//! them one after another on states it keeps warm, and commits them in one store
//! transaction ([`EventStore::append_batch`](crate::store::EventStore::append_batch)).
//! Each decision is decided on the states including the events of the decisions before
//! it in the batch, and its append is still guarded by its own condition, which
//! ignores those events ([`AppendRequest::builds_on`](crate::store::AppendRequest)):
//! a decision that would break the rule is refused alone, with its domain error, and
//! never reaches the store.
//!
//! What a lane guarantees, and what it relies on:
//! - **DCB holds.** Each append is guarded by the whole query of the states it decided
//!   on, after the position they are known to be complete to. A writer outside the lane
//!   (another process, another strategy) makes that append conflict; the lane then drops
//!   the states involved and decides again on fresh ones, within the decision's retry
//!   limit and without backoff (the next batch is the retry).
//! - **A decision's own state.** A warm state stands in for the state a decision's
//!   `Decide::state` built only when it was folded from an equal one
//!   ([`StateId::same_start`](crate::StateId::same_start), every field compared): a
//!   command that puts its clock, a window or a limit into its state gets a state
//!   folded from exactly that, read afresh when the warm one started elsewhere. Every
//!   strategy gives the same answer for the same log and command.
//! - **Exclusions do not apply in a lane.** A warm state that skipped excluded events
//!   written by others would drift for good, so the lane validates what its states
//!   read: a decision with `exclude = [..]` is exact in a lane (its tolerance matters
//!   only where it runs optimistically).
//! - **Answers follow commits.** A decision is answered once its batch committed; a
//!   refusal or a no-op decided on events of earlier requests of the batch waits for
//!   those to commit and is decided again if one failed. Since nothing appended guards
//!   a refusal or a no-op, the lane checks them against the log after the batch (one
//!   read for all of them): one decided on warm states that another writer has moved
//!   past is decided again on fresh ones. A decision whose `decide` (or
//!   a fold) panics is answered [`DecideError::Panicked`](crate::DecideError) and the
//!   lane goes on.
//! - **Read your own commits.** After a commit, a lane assumes a read of the store
//!   sees everything up to it. The in-memory and SQLite stores always do; the PostgreSQL
//!   store does unless an older append stalls longer than its `visibility_wait`, which
//!   it logs as a warning.
//! - **Provisional positions stay inside the batch.** States fold a batch's events
//!   before they commit, with provisional positions and times; a state whose fold
//!   handlers read the stored event (`State::READS_STORED`) is not decided on again
//!   until the batch settled, and is then read afresh.
//! - **Idempotency.** Duplicates are answered from the log (one lookup per batch);
//!   duplicates queued together commit once. A decision that decides nothing records
//!   no key, so a repeat of it is decided again (as under every strategy).

mod dispatcher;
mod job;
mod lane;
mod options;
mod router;
mod settle;
mod taken;
mod warm;

pub use crate::decide::Strategy;
pub use dispatcher::{Dispatcher, Drain};
pub use options::LaneOptions;
