//! The listener that publishes integration events from the log.

use std::time::Duration;

use async_nats::jetstream::{self, context::ContextBuilder, publish::PublishAck};
use factum::decide::RetryPolicy;
use factum::listen::{HandlerError, Listener, OnFailure, SubscriptionOptions};
use factum::{Catalog, EventSet, Query, QueryItem, StoredEvent};
use tracing::{debug, error, warn};

use super::message::message;
use super::{PublishError, PublishOptions};
use crate::names::is_subject;

/// What a [`Publisher`] did since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublisherStats {
    /// Events JetStream acknowledged (duplicates included).
    pub published: u64,
    /// Of those, how many the broker reported as duplicates (already in the stream
    /// within the duplicate window: a re-publish after a crash or a lost
    /// acknowledgement).
    pub duplicates: u64,
    /// Attempts that failed (each retried by the subscription, or dead-lettered).
    pub failures: u64,
}

/// Publishes integration events to JetStream, from the log, after commit: a
/// [`Listener`] to run with [`factum::listen::Subscription::listener`], ideally with
/// [`Publisher::subscription_options`].
///
/// Its query is the event types it publishes. Each event goes to
/// `<prefix>.<event type>` with the headers of [`message`](super::message) (the event id
/// as `Nats-Msg-Id`, its type, version, position, correlation and causation ids, the
/// content type) and its payload as JSON (or as stored: [`PayloadFormat`]).
/// It publishes one event at a time and waits for JetStream's acknowledgement before
/// the next, so the stream holds the events in log order.
///
/// The log is the outbox: the checkpoint in the store says what was published. A crash
/// between a publish and the checkpoint publishes those events again on restart, and
/// the broker drops them as duplicates (same `Nats-Msg-Id` within the stream's duplicate
/// window). A broker that is down, slow or restarting is a transient failure, retried
/// with backoff.
///
/// [`PayloadFormat`]: super::PayloadFormat
pub struct Publisher {
    options: PublishOptions,
    types: Vec<String>,
    jetstream: jetstream::Context,
    stats: PublisherStats,
    /// Whether the stream's duplicate window was compared with the options'.
    checked_window: bool,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("options", &self.options)
            .field("types", &self.types)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher of the event types `types` (whether or not they are marked public),
    /// through `client`, under `options`.
    ///
    /// Fails on invalid options, on an empty list, and on a type name that cannot be a
    /// subject token.
    pub fn new<I, S>(
        client: async_nats::Client,
        options: PublishOptions,
        types: I,
    ) -> Result<Self, PublishError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        options.validate()?;
        let mut types: Vec<String> = types.into_iter().map(Into::into).collect();
        types.sort();
        types.dedup();
        if types.is_empty() {
            return Err(PublishError::NoPublicTypes);
        }
        if let Some(bad) = types.iter().find(|t| !is_subject(t)) {
            return Err(PublishError::InvalidEventType {
                event_type: bad.clone(),
            });
        }
        let jetstream = ContextBuilder::new()
            .timeout(options.ack_timeout)
            .build(client);
        Ok(Publisher {
            options,
            types,
            jetstream,
            stats: PublisherStats::default(),
            checked_window: false,
        })
    }

    /// A publisher of the catalog's public event types (`#[event(public)]`).
    pub fn from_catalog(
        client: async_nats::Client,
        options: PublishOptions,
        catalog: &Catalog,
    ) -> Result<Self, PublishError> {
        let public = catalog.event_types().filter(|e| e.public).map(|e| e.name);
        Publisher::new(client, options, public)
    }

    /// A publisher of the public event types of the set `E` (an event, a group, a
    /// module's `Event` enum).
    pub fn of<E: EventSet>(
        client: async_nats::Client,
        options: PublishOptions,
    ) -> Result<Self, PublishError> {
        let public = E::infos().into_iter().filter(|e| e.public).map(|e| e.name);
        Publisher::new(client, options, public)
    }

    /// The subscription options a publisher should run with: it **stops rather than
    /// skips**.
    ///
    /// - `retry`: practically for ever (`u32::MAX` retries), backing off from 100 ms to
    ///   5 s (plus jitter): a broker outage only delays publishing; every attempt waits
    ///   up to [`PublishOptions::ack_timeout`] and logs a warning.
    /// - `on_failure`: [`OnFailure::DeadLetterAndStop`]: an event that fails for good (a
    ///   permanent failure such as an oversized message or a payload JSON cannot
    ///   express) becomes a dead letter and the subscription stops just before it, so no
    ///   later event is published out of order or without it. Fix the cause, replay the
    ///   dead letter ([`factum::listen::Subscription::replay_dead_letters`]) and run the
    ///   subscription again.
    /// - `batch`: 256 events between checkpoints (at most that many are published again
    ///   after a crash, and dropped by the broker as duplicates); `poll_interval`: 500 ms.
    pub fn subscription_options() -> SubscriptionOptions {
        SubscriptionOptions {
            batch: 256,
            retry: RetryPolicy {
                max_retries: u32::MAX,
                min_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(5),
            },
            on_failure: OnFailure::DeadLetterAndStop,
            poll_interval: Duration::from_millis(500),
        }
    }

    /// Its options.
    pub fn options(&self) -> &PublishOptions {
        &self.options
    }

    /// The event types it publishes, sorted.
    pub fn types(&self) -> &[String] {
        &self.types
    }

    /// What it did so far.
    pub fn stats(&self) -> PublisherStats {
        self.stats
    }

    /// Publishes one event and waits for JetStream's acknowledgement. The subscription
    /// calls it through [`Listener::handle`]; call it directly only to publish outside
    /// a subscription (nothing is checkpointed then).
    pub async fn publish(&self, event: &StoredEvent) -> Result<PublishAck, PublishError> {
        let outgoing = message(&self.options, event)?;
        let failed = |source| PublishError::Publish {
            subject: outgoing.subject.clone(),
            position: event.position,
            source,
        };
        let ack = self
            .jetstream
            .publish_with_headers(
                outgoing.subject.clone(),
                outgoing.headers,
                outgoing.payload.into(),
            )
            .await
            .map_err(failed)?
            .await
            .map_err(failed)?;
        if ack.stream != self.options.stream {
            return Err(PublishError::WrongStream {
                subject: outgoing.subject,
                position: event.position,
                expected: self.options.stream.clone(),
                actual: ack.stream,
            });
        }
        Ok(ack)
    }
}

impl Publisher {
    /// Warns (once) when the stream remembers message ids for less time than
    /// [`PublishOptions::duplicate_window`]: a re-publish after a longer outage would be
    /// stored twice.
    async fn check_duplicate_window(&mut self) {
        match self.jetstream.get_stream(&self.options.stream).await {
            Ok(stream) => {
                self.checked_window = true;
                let window = stream.cached_info().config.duplicate_window;
                if window < self.options.duplicate_window {
                    warn!(listener = %self.options.name, stream = %self.options.stream, duplicate_window = ?window, wanted = ?self.options.duplicate_window, "the stream's duplicate window is shorter than the options': events re-published after a longer outage are stored twice (see ensure_stream)");
                }
            }
            Err(e) => {
                debug!(listener = %self.options.name, error = %factum::ErrorChain(&e), "cannot read the stream's duplicate window")
            }
        }
    }
}

impl Listener for Publisher {
    fn name(&self) -> &str {
        &self.options.name
    }

    fn query(&self) -> Query {
        Query::item(QueryItem::types(self.types.iter().cloned()))
    }

    async fn handle(&mut self, event: &StoredEvent) -> Result<(), HandlerError> {
        if !self.checked_window {
            self.check_duplicate_window().await;
        }
        match self.publish(event).await {
            Ok(ack) => {
                self.stats.published += 1;
                if ack.duplicate {
                    self.stats.duplicates += 1;
                }
                debug!(listener = %self.options.name, position = %event.position, event_type = %event.event_type, sequence = ack.sequence, duplicate = ack.duplicate, "published an integration event");
                Ok(())
            }
            Err(e) if e.is_retryable() => {
                self.stats.failures += 1;
                warn!(listener = %self.options.name, position = %event.position, error = %factum::ErrorChain(&e), "publishing an integration event failed; it will be retried");
                Err(HandlerError::transient(e))
            }
            Err(e) => {
                self.stats.failures += 1;
                error!(listener = %self.options.name, position = %event.position, error = %factum::ErrorChain(&e), "an integration event cannot be published");
                Err(HandlerError::permanent(e))
            }
        }
    }
}
