//! What travels: a command is the decision serialized as JSON, published on its
//! partition's subject with two headers; the worker's answer is a [`Reply`] in JSON,
//! published on the subject the command's [`REPLY_HEADER`] names.
//!
//! JSON keeps commands and replies readable with the `nats` CLI (`nats stream view`),
//! and any language can send them.

use serde::{Deserialize, Serialize};

/// The header naming the decision type (`D::META.name`) a command's payload decodes as.
pub const DECISION_HEADER: &str = "Factum-Decision";

/// The header naming the subject the worker publishes the answer on; a command without
/// it is decided and acknowledged without an answer.
pub const REPLY_HEADER: &str = "Factum-Reply";

/// A worker's answer to a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The id of the worker that answered.
    pub worker: String,
    /// The partition the command was on.
    pub partition: u32,
    /// Which delivery of the command this answers: 1 for the first, more after a
    /// redelivery.
    pub delivery: u64,
    /// The outcome.
    pub answer: Answer,
}

/// The outcome of a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    /// Committed (or nothing to do), or replayed from an earlier commit with the same
    /// idempotency key.
    Committed {
        /// The positions of the events it appended (of the first commit, if replayed).
        positions: Vec<u64>,
        /// Whether this is an earlier commit's outcome.
        replayed: bool,
        /// Read-decide-append attempts (0 when replayed).
        attempts: u32,
    },
    /// The domain refused, with its error's `Display` text.
    Refused {
        /// The domain error's text.
        message: String,
    },
    /// The worker does not handle this decision type.
    UnknownDecision,
    /// The command could not be read.
    Malformed {
        /// What was wrong.
        message: String,
    },
    /// The decision failed for a reason other than the domain.
    Failed {
        /// The error's text.
        message: String,
    },
}
