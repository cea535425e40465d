//! The handling of one command: decide, reply, acknowledge (or hand it back).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::time::Instant;

use super::settings::Settings;
use crate::lanes::handler::Handled;
use crate::lanes::wire::{Answer, DECISION_HEADER, REPLY_HEADER, Reply};
use crate::lanes::worker::Shared;

/// What handling one command came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Done {
    Handled,
    /// The dispatcher is shutting down: stop pulling.
    DispatcherStopped,
}

pub(super) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// Decides one command, replies, then acknowledges it; or hands it back: to be decided
/// again later after a failure that may pass, or when the dispatcher is shutting down.
pub(super) async fn handle<S: factum::EventStore + Clone + 'static>(
    shared: Arc<Shared<S>>,
    partition: u32,
    message: jetstream::Message,
    settings: Settings,
) -> Done {
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
    let reply_to = reply_to.filter(|subject| {
        let accepted = shared.options.accepts_reply_subject(subject);
        if !accepted {
            tracing::warn!(
                partition,
                reply = %subject,
                prefix = %shared.options.reply_prefix,
                "a command names a reply subject outside the reply prefix: not answered"
            );
        }
        accepted
    });
    let handled = match &decision {
        None => Handled::Answer(Answer::Malformed {
            message: format!("no {DECISION_HEADER} header"),
        }),
        Some(name) => match shared
            .handlers
            .run(name, &shared.dispatcher, &message.payload)
        {
            None => Handled::Answer(Answer::UnknownDecision),
            Some(run) => {
                // Its first poll (now, in the loop's order) queues it on its lane.
                let run = AssertUnwindSafe(run).catch_unwind().map(|ran| {
                    ran.unwrap_or_else(|panic| {
                        Handled::Answer(Answer::Failed {
                            message: format!("deciding panicked: {}", panic_text(panic.as_ref())),
                        })
                    })
                });
                with_progress(&message, run.boxed(), settings.progress_every()).await
            }
        },
    };
    let decision = decision.as_deref().unwrap_or("?");
    let answer = match handled {
        Handled::NotRun => {
            stats.handed_back.fetch_add(1, Ordering::Relaxed);
            // Later: by then this worker has stopped pulling and the pin has moved.
            if let Err(e) = message
                .ack_with(AckKind::Nak(Some(settings.pinned_ttl)))
                .await
            {
                tracing::debug!(decision, error = %factum::ErrorChain(&*e), "cannot hand a command back");
            }
            return Done::DispatcherStopped;
        }
        Handled::Retry(why) if !settings.is_last(delivery) => {
            stats.retried.fetch_add(1, Ordering::Relaxed);
            let delay = shared.options.retry_delay_after(delivery);
            tracing::warn!(decision, partition, delivery, error = %why, retry_in = ?delay,
                "a decision failed; it is delivered again later");
            if let Err(e) = message.ack_with(AckKind::Nak(Some(delay))).await {
                tracing::debug!(decision, error = %factum::ErrorChain(&*e), "cannot hand a command back");
            }
            return Done::Handled;
        }
        Handled::Retry(why) => Answer::Failed {
            message: format!("{why} (delivery {delivery}, the last)"),
        },
        Handled::Answer(answer) => answer,
    };
    match &answer {
        Answer::Committed { replayed, .. } => {
            let counter = if *replayed {
                &stats.replayed
            } else {
                &stats.committed
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Answer::Refused { .. } => {
            stats.refused.fetch_add(1, Ordering::Relaxed);
        }
        Answer::Failed { message } => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(decision, partition, delivery, error = %message, "a decision failed");
        }
        Answer::UnknownDecision | Answer::Malformed { .. } => {
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(decision, partition, answer = ?answer, "a command was rejected");
        }
    }
    // Not delivered again: unknown, unreadable, or failed for good.
    let terminal = matches!(
        answer,
        Answer::UnknownDecision | Answer::Malformed { .. } | Answer::Failed { .. }
    );
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
                    tracing::warn!(decision, error = %factum::ErrorChain(&e), "cannot publish a reply");
                }
            }
            Err(e) => {
                tracing::warn!(decision, error = %factum::ErrorChain(&e), "cannot encode a reply")
            }
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
        tracing::warn!(decision, error = %factum::ErrorChain(&*e), "cannot acknowledge a command");
    }
    Done::Handled
}

/// Runs `run`, telling the broker every `every` that the command is still being worked
/// on, so a command that waits long in a lane is not delivered again meanwhile.
async fn with_progress(
    message: &jetstream::Message,
    mut run: BoxFuture<'static, Handled>,
    every: Duration,
) -> Handled {
    let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
    loop {
        tokio::select! {
            biased;
            handled = &mut run => return handled,
            _ = ticker.tick() => {
                if let Err(e) = message.ack_with(AckKind::Progress).await {
                    tracing::debug!(error = %factum::ErrorChain(&*e), "cannot signal progress");
                }
            }
        }
    }
}
