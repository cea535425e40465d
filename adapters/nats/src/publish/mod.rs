//! Integration events published from the log to JetStream: **the log is the outbox**.
//!
//! - [`Publisher`]: a [`factum::listen::Listener`] whose query is the public event types
//!   (`#[event(public)]`, from a [`factum::Catalog`], an event set, or an explicit
//!   list). Run it with [`factum::listen::Subscription::listener`] and
//!   [`Publisher::subscription_options`]: after commit, in position order, it publishes
//!   each event to `<prefix>.<event type>` and waits for the acknowledgement before the
//!   next one.
//! - [`message`]: the headers (`Nats-Msg-Id` = the event id, type, version, position,
//!   correlation and causation ids, content type) and the payload ([`PayloadFormat`]).
//! - [`PublishOptions`]: the stream, the subject prefix, the listener name, the
//!   duplicate window and the acknowledgement timeout.
//! - [`ensure_stream`] / [`delete_stream`]: the stream holding `<prefix>.>`.
//!
//! **What it guarantees.** Every public event committed to the log is published, in log
//! order, at least once; the broker stores it once as long as a re-publish falls within
//! the stream's duplicate window. The checkpoint is saved after each batch, so a crash
//! between a publish and the checkpoint publishes the batch's events again, and the
//! broker drops them (same `Nats-Msg-Id`). A broker that is down or slow fails the
//! attempt as a transient error; the subscription retries the same event with backoff
//! and does not move on, so nothing is skipped or reordered. An event that cannot be
//! published at all (permanent) becomes a dead letter and, with the recommended
//! options, stops the publisher at that point. A re-publish after the duplicate window
//! (an outage longer than it) is stored twice: consumers that must not see duplicates
//! at all should also keep the ids they processed.

mod error;
pub mod message;
mod options;
mod publisher;
mod stream;

pub use error::{PublishError, StreamErrorSource};
pub use message::PayloadFormat;
pub use options::PublishOptions;
pub use publisher::{Publisher, PublisherStats};
pub use stream::{delete_stream, ensure_stream};
