//! What factum reports about itself: metrics through the [`metrics`] facade (the
//! application installs the exporter it wants — Prometheus, StatsD, OpenTelemetry — or
//! none, and then nothing is recorded), and spans through `tracing`.
//!
//! # Metrics
//!
//! | name | kind | labels | what |
//! | --- | --- | --- | --- |
//! | [`DECISIONS`] | counter | `decision`, `outcome` | decisions answered, by outcome: `committed`, `replayed`, `refused`, `conflict` (gave up after its retries), `failed` |
//! | [`CONFLICTS`] | counter | `decision` | appends refused because an event it relied on was committed meanwhile |
//! | [`RETRIES`] | counter | `decision` | attempts after a conflict (optimistic: after its backoff; serial lanes: in the next batch) |
//! | [`DECISION_SECONDS`] | histogram | `decision` | from submission to answer |
//! | [`LANE_BATCH_SIZE`] | histogram | `lane` | decisions committed in one lane transaction |
//! | [`LANE_QUEUE_DEPTH`] | gauge | `lane` | decisions waiting in a lane's queue when it starts a batch |
//! | [`LISTENER_LAG`] | gauge | `listener` | how far a running subscription is behind: 0 once a batch found nothing more to read; while it catches up, the positions between the log's head and its checkpoint (an upper bound: the head counts events of other queries too) |
//!
//! Stores add their own: PostgreSQL reports `factum_postgres_visibility_wait_seconds`
//! (see its crate docs).
//!
//! # Spans
//!
//! | name | fields | around |
//! | --- | --- | --- |
//! | `decide` | `decision` | one decision under the optimistic strategy, all its attempts |
//! | `decide_locked` | `decision` | one decision under the store lock |
//! | `attempt` | `attempt` | one read, decide and append |
//! | `lane` | `lane` | a serial lane's task |
//! | `lane_batch` | `lane`, `size` | deciding and committing one batch |
//! | `decide_in_lane` | `decision`, `lane` | one decision in a batch; its parent is the span the caller submitted it in |
//! | `listener_batch` | `listener`, `after` | one batch of a subscription, handled and committed |

use std::time::Instant;

/// Counter of decisions answered, labelled `decision` and `outcome`.
pub const DECISIONS: &str = "factum_decisions_total";
/// Counter of append conflicts, labelled `decision`.
pub const CONFLICTS: &str = "factum_conflicts_total";
/// Counter of attempts after a conflict, labelled `decision`.
pub const RETRIES: &str = "factum_retries_total";
/// Histogram of seconds from submission to answer, labelled `decision`.
pub const DECISION_SECONDS: &str = "factum_decision_seconds";
/// Histogram of decisions per lane transaction, labelled `lane`.
pub const LANE_BATCH_SIZE: &str = "factum_lane_batch_size";
/// Gauge of decisions queued in a lane, labelled `lane`.
pub const LANE_QUEUE_DEPTH: &str = "factum_lane_queue_depth";
/// Gauge of positions between the head and a subscription's checkpoint, labelled
/// `listener`.
pub const LISTENER_LAG: &str = "factum_listener_lag";

/// How a decision was answered, as the `outcome` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answered {
    /// It committed (or decided that nothing needs to happen).
    Committed,
    /// Answered with the first outcome of its idempotency key.
    Replayed,
    /// The domain said no.
    Refused,
    /// It kept conflicting until its retries ran out.
    Conflict,
    /// Anything else: the store, a panic, an undeclared event, a shutdown.
    Failed,
}

impl Answered {
    fn label(self) -> &'static str {
        match self {
            Answered::Committed => "committed",
            Answered::Replayed => "replayed",
            Answered::Refused => "refused",
            Answered::Conflict => "conflict",
            Answered::Failed => "failed",
        }
    }
}

/// A decision answered `answered`, `since` it was submitted.
pub(crate) fn answered(decision: &'static str, answered: Answered, since: Instant) {
    metrics::counter!(DECISIONS, "decision" => decision, "outcome" => answered.label())
        .increment(1);
    metrics::histogram!(DECISION_SECONDS, "decision" => decision)
        .record(since.elapsed().as_secs_f64());
}

/// An append of `decision` conflicted.
pub(crate) fn conflict(decision: &'static str) {
    metrics::counter!(CONFLICTS, "decision" => decision).increment(1);
}

/// `decision` is attempted again after a conflict.
pub(crate) fn retry(decision: &'static str) {
    metrics::counter!(RETRIES, "decision" => decision).increment(1);
}

/// Lane `lane` committed a transaction of `size` decisions.
pub(crate) fn lane_batch(lane: usize, size: usize) {
    metrics::histogram!(LANE_BATCH_SIZE, "lane" => lane.to_string()).record(size as f64);
}

/// Lane `lane` has `depth` decisions queued.
pub(crate) fn lane_queue(lane: usize, depth: usize) {
    metrics::gauge!(LANE_QUEUE_DEPTH, "lane" => lane.to_string()).set(depth as f64);
}

/// Subscription `listener` is `lag` positions behind the head.
pub(crate) fn listener_lag(listener: &str, lag: u64) {
    metrics::gauge!(LISTENER_LAG, "listener" => listener.to_owned()).set(lag as f64);
}
