//! One partition's consumer loop, and the handling of one command: decide, reply,
//! acknowledge.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::broker::ensure_consumer;
use super::handler::Handled;
use super::options::PRIORITY_GROUP;
use super::wire::{Answer, DECISION_HEADER, REPLY_HEADER, Reply};
use super::worker::Shared;

/// How long to wait before pulling again after the pull stream ended or failed.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Pulls `partition`'s commands (after `start_after`: a standby worker lets the owners
/// pin their partitions first) and handles each in a task of its own, until `stop`
/// turns true; then waits for the commands it is handling.
pub(crate) async fn consume_partition<S: factum::EventStore + Clone + 'static>(
    shared: Arc<Shared<S>>,
    stream: jetstream::stream::Stream,
    mut consumer: Option<PullConsumer>,
    partition: u32,
    start_after: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut running = JoinSet::new();
    if !start_after.is_zero() && pause(start_after, &mut stop).await {
        return;
    }
    'pulling: while !*stop.borrow() {
        let pull = match consumer.take() {
            Some(pull) => pull,
            None => match ensure_consumer(&stream, &shared.options, partition).await {
                Ok(pull) => pull,
                Err(e) => {
                    tracing::warn!(partition, error = %e, "cannot get the partition's consumer");
                    if pause(RETRY_PAUSE * 4, &mut stop).await {
                        break;
                    }
                    continue;
                }
            },
        };
        let messages = pull
            .stream()
            .group(PRIORITY_GROUP)
            .expires(shared.options.pull_expires())
            .max_messages_per_batch(shared.options.pull_batch)
            .messages()
            .await;
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(partition, error = %e, "cannot pull the partition's commands");
                if pause(RETRY_PAUSE, &mut stop).await {
                    break;
                }
                continue;
            }
        };
        tracing::debug!(partition, worker = %shared.id, "pulling");
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => break 'pulling,
                Some(_) = running.join_next(), if !running.is_empty() => {}
                next = messages.next() => match next {
                    Some(Ok(message)) => {
                        running.spawn(handle(Arc::clone(&shared), partition, message));
                    }
                    Some(Err(e)) => {
                        tracing::warn!(partition, error = %e, "pulling the partition's commands");
                    }
                    None => break,
                },
            }
        }
        if pause(RETRY_PAUSE, &mut stop).await {
            break;
        }
    }
    // Stop pulling (the pin expires), then answer what was received.
    while running.join_next().await.is_some() {}
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

/// Decides one command, replies, then acknowledges it (or hands it back, when the
/// dispatcher is shutting down).
async fn handle<S: factum::EventStore + Clone + 'static>(
    shared: Arc<Shared<S>>,
    partition: u32,
    message: jetstream::Message,
) {
    let delivery = message
        .info()
        .map_or(1, |info| u64::try_from(info.delivered).unwrap_or(1));
    let stats = &shared.stats;
    stats.received.fetch_add(1, Ordering::Relaxed);
    if delivery > 1 {
        stats.redelivered.fetch_add(1, Ordering::Relaxed);
    }
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(name))
            .map(|value| value.as_str().to_owned())
    };
    let (decision, reply_to) = (header(DECISION_HEADER), header(REPLY_HEADER));
    let handled = match &decision {
        None => Handled::Answer(Answer::Malformed {
            message: format!("no {DECISION_HEADER} header"),
        }),
        Some(name) => match shared
            .handlers
            .run(name, &shared.dispatcher, &message.payload)
        {
            None => Handled::Answer(Answer::UnknownDecision),
            Some(run) => with_progress(&message, run, shared.options.ack_wait / 2).await,
        },
    };
    let decision = decision.as_deref().unwrap_or("?");
    let answer = match handled {
        Handled::NotRun => {
            stats.handed_back.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = message.ack_with(AckKind::Nak(None)).await {
                tracing::debug!(decision, error = %e, "cannot hand a command back");
            }
            return;
        }
        Handled::Answer(answer) => answer,
    };
    let terminal = match &answer {
        Answer::Committed { replayed, .. } => {
            let counter = if *replayed {
                &stats.replayed
            } else {
                &stats.committed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            false
        }
        Answer::Refused { .. } => {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            false
        }
        Answer::Failed { message } => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(decision, partition, error = %message, "a decision failed");
            false
        }
        Answer::UnknownDecision | Answer::Malformed { .. } => {
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(decision, partition, answer = ?answer, "a command was rejected");
            true
        }
    };
    if let Some(reply_to) = reply_to {
        let reply = Reply {
            worker: shared.id.clone(),
            partition,
            delivery,
            answer,
        };
        match serde_json::to_vec(&reply) {
            Ok(bytes) => {
                if let Err(e) = shared.nats.publish(reply_to, bytes.into()).await {
                    tracing::warn!(decision, error = %e, "cannot publish a reply");
                }
            }
            Err(e) => tracing::warn!(decision, error = %e, "cannot encode a reply"),
        }
    }
    // Published on the same connection after the reply: the reply goes first.
    let acked = if terminal {
        message.ack_with(AckKind::Term).await
    } else {
        message.ack().await
    };
    if let Err(e) = acked {
        // The broker delivers it again; its idempotency key makes that harmless.
        tracing::warn!(decision, error = %e, "cannot acknowledge a command");
    }
}

/// Runs `run`, telling the broker every `every` that the command is still being worked
/// on, so a command that waits long in a lane is not delivered again meanwhile.
async fn with_progress(
    message: &jetstream::Message,
    mut run: BoxFuture<'static, Handled>,
    every: Duration,
) -> Handled {
    let every = every.max(Duration::from_millis(50));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            handled = &mut run => return handled,
            _ = ticker.tick() => {
                if let Err(e) = message.ack_with(AckKind::Progress).await {
                    tracing::debug!(error = %e, "cannot signal progress");
                }
            }
        }
    }
}
