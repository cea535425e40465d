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

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::StatusCode;
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::broker::ensure_consumer;
use super::handler::Handled;
use super::options::{LanesOptions, PRIORITY_GROUP};
use super::wire::{Answer, DECISION_HEADER, REPLY_HEADER, Reply};
use super::worker::Shared;

/// How long to wait before pulling again after the pulling failed.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// The timings of a partition's consumer as the broker has them (an existing consumer
/// keeps the configuration it was created with).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    /// Redelivery after this long without an acknowledgement.
    pub(crate) ack_wait: Duration,
    /// The pin expires after this long without a pull.
    pub(crate) pinned_ttl: Duration,
    /// Deliveries of a command at most (`<= 0`: no limit).
    pub(crate) max_deliver: i64,
}

impl Settings {
    /// The settings of `consumer`, warning where they differ from `options`.
    pub(crate) fn of(consumer: &PullConsumer, options: &LanesOptions, partition: u32) -> Self {
        let config = &consumer.cached_info().config;
        let settings = Settings {
            ack_wait: if config.ack_wait.is_zero() {
                Duration::from_secs(30)
            } else {
                config.ack_wait
            },
            pinned_ttl: if config.priority_timeout.is_zero() {
                options.pinned_ttl
            } else {
                config.priority_timeout
            },
            max_deliver: config.max_deliver,
        };
        if settings.ack_wait != options.ack_wait
            || settings.pinned_ttl != options.pinned_ttl
            || settings.max_deliver != options.max_deliver
        {
            tracing::warn!(
                partition,
                consumer = %consumer.cached_info().name,
                ack_wait = ?settings.ack_wait,
                pinned_ttl = ?settings.pinned_ttl,
                max_deliver = settings.max_deliver,
                "the partition's consumer exists with other timings than the options; \
                 using the consumer's (delete the stream to change them)"
            );
        }
        settings
    }

    /// How long one pull request waits: a third of the pin TTL (at least 100 ms).
    fn pull_expires(&self) -> Duration {
        (self.pinned_ttl / 3).max(Duration::from_millis(100))
    }

    /// How often a command being decided (or waiting to be) is reported in progress.
    fn progress_every(&self) -> Duration {
        (self.ack_wait / 2).max(Duration::from_millis(50))
    }

    /// Whether `delivery` is the last the broker makes.
    fn is_last(&self, delivery: u64) -> bool {
        u64::try_from(self.max_deliver).is_ok_and(|max| max > 0 && delivery >= max)
    }
}

/// Why a partition's loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// The worker stops, or its dispatcher does: pull no more.
    Stopped,
    /// The pulling failed (the consumer was deleted, the connection broke): try again.
    Retry,
}

/// What handling one command came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Done {
    Handled,
    /// The dispatcher is shutting down: stop pulling.
    DispatcherStopped,
}

/// The pull request waiting on the server.
struct Pull {
    seq: u64,
    remaining: usize,
    deadline: Instant,
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

/// Pulls and handles until the worker or its dispatcher stops, or the pulling fails;
/// returns with nothing outstanding: no pull request open, every command received
/// answered or handed back.
async fn run<S: factum::EventStore + Clone + 'static>(
    shared: &Arc<Shared<S>>,
    pull: &PullConsumer,
    partition: u32,
    stop: &mut watch::Receiver<bool>,
    pin: &mut Option<String>,
) -> Ended {
    let settings = Settings::of(pull, &shared.options, partition);
    let info = pull.cached_info();
    let api = format!(
        "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
        info.stream_name, info.name
    );
    let inbox = shared.nats.new_inbox();
    let mut responses = match shared.nats.subscribe(format!("{inbox}.*")).await {
        Ok(responses) => responses,
        Err(e) => {
            tracing::warn!(partition, error = %factum::ErrorChain(&e), "cannot subscribe to the pull inbox");
            return Ended::Retry;
        }
    };
    let options = &shared.options;
    let mut buffer: VecDeque<jetstream::Message> = VecDeque::new();
    let mut running: FuturesUnordered<BoxFuture<'static, Done>> = FuturesUnordered::new();
    let mut request: Option<Pull> = None;
    let mut seq = 0_u64;
    let mut ending: Option<Ended> = None;
    let mut progress = tokio::time::interval_at(
        Instant::now() + settings.progress_every(),
        settings.progress_every(),
    );
    progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if ending.is_none() {
            // In delivery order: each is queued on its lane when first polled, and
            // `FuturesUnordered` polls new futures in the order they were pushed.
            while running.len() < options.max_in_flight {
                let Some(message) = buffer.pop_front() else {
                    break;
                };
                let handling = handle(Arc::clone(shared), partition, message, settings);
                running.push(
                    AssertUnwindSafe(handling)
                        .catch_unwind()
                        .map(move |done| {
                            done.unwrap_or_else(|panic| {
                                tracing::error!(
                                    partition,
                                    panic = panic_text(panic.as_ref()),
                                    "handling a command panicked"
                                );
                                Done::Handled
                            })
                        })
                        .boxed(),
                );
            }
            if request.is_none() {
                seq += 1;
                let body = serde_json::json!({
                    "batch": options.pull_batch,
                    "expires": u64::try_from(settings.pull_expires().as_nanos()).unwrap_or(u64::MAX),
                    "group": PRIORITY_GROUP,
                    "id": pin.clone(),
                });
                let sent = shared
                    .nats
                    .publish_with_reply(
                        api.clone(),
                        format!("{inbox}.{seq}"),
                        body.to_string().into(),
                    )
                    .await;
                match sent {
                    Ok(()) => {
                        request = Some(Pull {
                            seq,
                            remaining: options.pull_batch,
                            // Soon after its expiry: a lost word from the server must
                            // not keep the pin without pulls for the pin TTL.
                            deadline: Instant::now() + settings.pull_expires() * 2,
                        });
                    }
                    Err(e) => {
                        tracing::warn!(partition, error = %factum::ErrorChain(&e), "cannot send a pull request");
                        ending = Some(Ended::Retry);
                    }
                }
            }
        }
        if ending.is_some() {
            hand_back(shared, &mut buffer, None).await;
            if request.is_none() && running.is_empty() {
                break;
            }
        }
        let deadline = request.as_ref().map(|pull| pull.deadline);
        tokio::select! {
            // (Mapped: the guard it returns must not live across the other branches.)
            _ = stop.wait_for(|stop| *stop).map(|_| ()), if ending.is_none() => {
                ending = Some(Ended::Stopped);
            }
            Some(done) = running.next(), if !running.is_empty() => {
                if done == Done::DispatcherStopped && ending.is_none() {
                    tracing::info!(partition, worker = %shared.id,
                        "the dispatcher shuts down: no more pulling");
                    ending = Some(Ended::Stopped);
                }
            }
            response = responses.next() => match response {
                // Closed (the connection is gone): nothing more arrives.
                None => {
                    request = None;
                    ending.get_or_insert(Ended::Retry);
                }
                Some(message) => {
                    // A status comes on the request's own subject; a command on the
                    // subject it was published to, in order after the request's
                    // earlier ones: it counts against the request waiting now.
                    let current = match message.status {
                        Some(status) if status != StatusCode::OK => {
                            let of = message
                                .subject
                                .strip_prefix(inbox.as_str())
                                .and_then(|rest| rest.strip_prefix('.'))
                                .and_then(|seq| seq.parse::<u64>().ok());
                            request.as_ref().is_some_and(|pull| Some(pull.seq) == of)
                        }
                        _ => true,
                    };
                    match message.status {
                        Some(StatusCode::IDLE_HEARTBEAT) => {}
                        Some(status) if status != StatusCode::OK => {
                            let description = message.description.as_deref().unwrap_or_default();
                            if status == StatusCode::PIN_ID_MISMATCH {
                                *pin = None;
                            }
                            if status == StatusCode::TIMEOUT
                                || status == StatusCode::PIN_ID_MISMATCH
                                || (status == StatusCode::REQUEST_TERMINATED
                                    && !description.contains("Consumer Deleted"))
                            {
                                tracing::trace!(partition, %status, description, "pull ended");
                            } else {
                                tracing::warn!(partition, %status, description,
                                    "the broker ended a pull request");
                                ending.get_or_insert(Ended::Retry);
                            }
                            if current {
                                request = None;
                            }
                        }
                        _ => {
                            if let Some(id) = message
                                .headers
                                .as_ref()
                                .and_then(|headers| headers.get_last(async_nats::header::NATS_PIN_ID))
                            {
                                *pin = Some(id.as_str().to_owned());
                            }
                            if current && let Some(pull) = request.as_mut() {
                                pull.remaining = pull.remaining.saturating_sub(1);
                                if pull.remaining == 0 {
                                    request = None;
                                }
                            }
                            buffer.push_back(jetstream::Message {
                                message,
                                context: shared.jetstream.clone(),
                            });
                        }
                    }
                }
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                // The server's word that the request ended got lost.
                request = None;
            }
            _ = progress.tick(), if !buffer.is_empty() => {
                for message in &buffer {
                    if let Err(e) = message.ack_with(AckKind::Progress).await {
                        tracing::debug!(error = %factum::ErrorChain(&*e), "cannot signal progress");
                    }
                }
            }
        }
    }
    ending.unwrap_or(Ended::Retry)
}

/// Hands the buffered commands back to the broker, in order, to be delivered again
/// (after `delay`) to whoever holds the partition then.
async fn hand_back<S>(
    shared: &Shared<S>,
    buffer: &mut VecDeque<jetstream::Message>,
    delay: Option<Duration>,
) {
    for message in buffer.drain(..) {
        shared.stats.handed_back.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = message.ack_with(AckKind::Nak(delay)).await {
            tracing::debug!(error = %factum::ErrorChain(&*e), "cannot hand a command back");
        }
    }
}

/// Waits `duration`; true if `stop` turned true meanwhile.
async fn pause(duration: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(duration) => false,
        _ = stop.wait_for(|stop| *stop) => true,
    };
    stopped || *stop.borrow()
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// Decides one command, replies, then acknowledges it; or hands it back: to be decided
/// again later after a failure that may pass, or when the dispatcher is shutting down.
async fn handle<S: factum::EventStore + Clone + 'static>(
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
