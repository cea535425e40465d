//! Distributed lanes: decisions routed by partition key through JetStream subjects to
//! the worker that owns the partition.
//!
//! - [`partition`]: the partition function (FNV-1a 64 of the key, modulo the number of
//!   partitions: the same in every process, build and Rust version) and the subjects.
//! - [`LanesOptions`]: the stream, subjects, partitions and timings clients and workers
//!   share.
//! - [`LanesClient`]: sends a decision to its partition's subject with a reply subject,
//!   and waits for the worker's answer ([`RemoteOutcome`], or a [`LanesError`]: a domain
//!   refusal, an unknown decision, a timeout, ...).
//! - [`Worker`]: one durable pull consumer per partition with the `pinned_client`
//!   priority policy; decides through a [`factum::lanes::Dispatcher`], replies, then
//!   acknowledges. A worker stops pulling when it stops (or dies): the broker pins the
//!   partition to a standby worker after [`LanesOptions::pinned_ttl`] and redelivers
//!   unacknowledged commands after [`LanesOptions::ack_wait`].
//! - [`wire`]: the headers and the reply format.
//!
//! **What it guarantees.** One worker at a time pulls a partition, so one key's
//! decisions are decided in one process's serial lane (warm states, group commit, no
//! conflicts). The guarantee of the log does not rest on that: a worker that lost its pin
//! while still finishing a decision (a long pause) is stopped by the append condition
//! like any other concurrent writer. A command is acknowledged only after its answer was
//! committed (or refused) and replied, so a worker dying loses nothing: its commands are
//! redelivered, and an idempotency key makes a redelivered command that had committed
//! answer `replayed` instead of committing twice. Decisions sent this way should
//! therefore have an idempotency key (`#[decision(idempotency = ..)]`); one without is
//! decided again on redelivery.

mod broker;
mod client;
mod consume;
mod error;
mod handler;
mod options;
pub mod partition;
mod server;
pub mod wire;
mod worker;

pub use broker::{delete_stream, ensure_consumer, ensure_stream};
pub use client::{LanesClient, RemoteOutcome};
pub use error::LanesError;
pub use options::{LanesOptions, PRIORITY_GROUP};
pub use partition::{command_subject, partition_of};
pub use server::{MIN_SERVER_VERSION, check_server};
pub use worker::{Worker, WorkerBuilder, WorkerStats};
