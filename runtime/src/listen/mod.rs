//! Listeners, projections and policies: consumers of the log after commit.
//!
//! A [`Listener`] declares what it consumes (its [`Query`](crate::Query), derived from
//! its handlers by `#[factum::listener]`) and handles events one at a time, in position
//! order. A [`Subscription`] runs it from its checkpoint, kept in the store
//! ([`ListenerStore`]): it catches up, then tails the log, woken by the store's commit
//! signal ([`ListenerStore::watch_head`]) and polling at an interval for commits the
//! signal does not carry. Delivery is at least once with [`AtLeastOnce`], the checkpoint
//! saved after each batch; durable adapters offer sinks that commit a projection's
//! writes with its checkpoint in one transaction, so its effect is exactly once.
//!
//! A handler that fails is retried with backoff ([`SubscriptionOptions::retry`]); after
//! the last attempt the event becomes a [`DeadLetter`] (listener, position, type, error,
//! attempts), which the application lists with [`ListenerStore::dead_letters`] and
//! replays with [`Subscription::replay_dead_letters`]. The subscription then goes on or
//! stops, as [`OnFailure`] says. No event is skipped without a trace.
//!
//! A record the store cannot read back as an event at all
//! ([`StoreError::Corrupt`](crate::StoreError::Corrupt): a row naming an unknown codec,
//! a malformed tag) fails the same way, at once and without retries (reading it again
//! gives the same bytes): a dead letter naming its position, its type as far as the
//! store could read it, and why; then the subscription reads on after it, or stops just
//! before it. [`Listener::give_up`] is not asked, as there is no event to give it.
//! Replaying such a letter while the row is still unreadable keeps the letter; once the
//! row is repaired, a replay (or, past the checkpoint, the normal run) handles it.
//!
//! A **policy** is a listener whose handler takes decisions: see [`policy`].

mod handler;
pub mod policy;
mod sink;
mod subscription;

pub use crate::store::{DeadLetter, ListenerStore, NewDeadLetter};
pub use handler::{HandlerError, IntoHandled, Listener};
pub use sink::{AtLeastOnce, Sink};
pub use subscription::{OnFailure, Progress, Subscription, SubscriptionError, SubscriptionOptions};
