//! The pull loop: its own pull requests, one outstanding at a time, the commands they
//! bring handed to the dispatcher in delivery order, and what is left handed back.

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

use super::Ended;
use super::handle::{Done, handle, panic_text};
use super::settings::Settings;
use crate::lanes::options::PRIORITY_GROUP;
use crate::lanes::worker::Shared;

/// The pull request waiting on the server.
struct Pull {
    seq: u64,
    remaining: usize,
    deadline: Instant,
}

/// Pulls and handles until the worker or its dispatcher stops, or the pulling fails;
/// returns with nothing outstanding: no pull request open, every command received
/// answered or handed back.
pub(super) async fn run<S: factum::EventStore + Clone + 'static>(
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
