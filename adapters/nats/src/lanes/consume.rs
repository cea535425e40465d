//! One partition's consumer loop, and the handling of one command: decide, reply,
//! acknowledge.
//!
//! The loop sends its own pull requests (one outstanding at a time, on an inbox of its
//! own), so it knows what the broker may still deliver: on a stop it sends no more, hands
//! back (nak) whatever arrives until the last request ended, and nothing stays delivered
//! but unanswered until `ack_wait`. Commands are handed to the dispatcher in delivery
//! order, from one `FuturesUnordered` the loop owns (a pushed future is first polled in
//! push order, and its first poll queues the decision on its lane), at most
//! [`LanesOptions::max_in_flight`](super::LanesOptions::max_in_flight) at a time; the
//! others wait in a buffer, kept alive by progress signals.

mod handle;
mod pull;
mod settings;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer};
use tokio::sync::watch;

use super::broker::ensure_consumer;
use super::worker::Shared;
use pull::run;

/// How long to wait before pulling again after the pulling failed.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Why a partition's loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// The worker stops, or its dispatcher does: pull no more.
    Stopped,
    /// The pulling failed (the consumer was deleted, the connection broke): try again.
    Retry,
}

/// Pulls `partition`'s commands (after `start_after`: a standby worker lets the owners
/// pin their partitions first) and handles them, until `stop` turns true or the
/// dispatcher shuts down; then hands back what it had not begun and finishes the rest.
pub(crate) async fn consume_partition<S: factum::EventStore + Clone + 'static>(
    shared: Arc<Shared<S>>,
    stream: jetstream::stream::Stream,
    mut consumer: Option<PullConsumer>,
    partition: u32,
    start_after: Duration,
    mut stop: watch::Receiver<bool>,
) {
    if !start_after.is_zero() && pause(start_after, &mut stop).await {
        return;
    }
    let mut pin = None;
    while !*stop.borrow() {
        let pull = match consumer.take() {
            Some(pull) => pull,
            None => match ensure_consumer(&stream, &shared.options, partition).await {
                Ok(pull) => pull,
                Err(e) => {
                    tracing::warn!(partition, error = %factum::ErrorChain(&e), "cannot get the partition's consumer");
                    if pause(RETRY_PAUSE * 4, &mut stop).await {
                        break;
                    }
                    continue;
                }
            },
        };
        tracing::debug!(partition, worker = %shared.id, "pulling");
        match run(&shared, &pull, partition, &mut stop, &mut pin).await {
            Ended::Stopped => break,
            Ended::Retry => {
                if pause(RETRY_PAUSE, &mut stop).await {
                    break;
                }
            }
        }
    }
    tracing::debug!(partition, worker = %shared.id, "stopped pulling");
}

/// Waits `duration`; true if `stop` turned true meanwhile.
async fn pause(duration: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(duration) => false,
        _ = stop.wait_for(|stop| *stop) => true,
    };
    stopped || *stop.borrow()
}
