//! The commit signal over LISTEN/NOTIFY.
//!
//! After each successful append, the store notifies the schema's channel
//! ([`notify_channel`]) with the newest position it committed, coalesced, from a task of
//! its own ([`notifier`](crate::notifier); up to schema version 4 a trigger did, on the
//! commit path). The first [`watch_head`](factum::listen::ListenerStore::watch_head)
//! spawns one task holding a connection of its own (not from the pool) that LISTENs and
//! forwards each notification into the store's watch channel; when the connection drops
//! it reconnects with backoff (started over once a session has listened for 30 s), and
//! after each (re)connection reads the newest position
//! once, so commits made while it was away still wake the listeners. The store's own
//! appends advance the signal directly, too. A notification is only a hint to read: the
//! reads still go through the watermark.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use factum::Position;
use futures::StreamExt;
use futures::future::{Either, select};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_postgres::{AsyncMessage, Config};

use crate::locks::notify_key;
use crate::notifier::Notifier;
use crate::tls::Tls;

/// The watch channel's sender.
type HeadSender = watch::Sender<Option<Position>>;

/// The name of the channel the appends to `schema` notify: `factum_<schema>`, or for a
/// schema name too long for that (channel names have at most 63 bytes), its first 39
/// bytes and a hash of the whole.
pub(crate) fn notify_channel(schema: &str) -> String {
    const PREFIX: &str = "factum_";
    if PREFIX.len() + schema.len() <= 63 {
        return format!("{PREFIX}{schema}");
    }
    // Schema names are ASCII (see `quote_schema`), so any byte is a boundary.
    let head = schema.get(..39).unwrap_or(schema);
    format!("{PREFIX}{head}_{:016x}", notify_key(schema).cast_unsigned())
}

/// A store's commit signal and the task feeding it from notifications.
pub(crate) struct Head {
    sender: Arc<HeadSender>,
    listener: Mutex<Option<AbortHandle>>,
    notifier: Notifier,
    config: Config,
    tls: Tls,
    channel: String,
    quoted: String,
}

impl Drop for Head {
    fn drop(&mut self) {
        let listener = self
            .listener
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = listener.take() {
            task.abort();
        }
    }
}

impl Head {
    /// The signal of the store in `schema` (`quoted` for SQL), listening with `config`
    /// and `tls`.
    pub(crate) fn new(config: Config, tls: Tls, schema: &str, quoted: &str) -> Self {
        let notifier = Notifier::new(config.clone(), tls.clone(), notify_channel(schema));
        let config = side_connection(config, "listen");
        Head {
            sender: Arc::new(watch::channel(None).0),
            listener: Mutex::new(None),
            notifier,
            config,
            tls,
            channel: notify_channel(schema),
            quoted: quoted.to_owned(),
        }
    }

    /// After this store committed events up to `position`: wakes its own listeners (the
    /// signal moves to `position` if that is newer) and, soon, other processes' (a
    /// notification, sent without waiting for it).
    pub(crate) fn advance(&self, position: Option<Position>) {
        advance(&self.sender, position);
        if let Some(position) = position {
            self.notifier.committed(position);
        }
    }

    /// A receiver of the signal; starts the listening task if it is not running.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<Position>> {
        self.ensure_listening();
        self.sender.subscribe()
    }

    fn ensure_listening(&self) {
        spawn_once(&self.listener, &self.channel, "watch_head", || {
            listen(
                self.config.clone(),
                self.tls.clone(),
                self.channel.clone(),
                self.quoted.clone(),
                self.sender.clone(),
            )
        });
    }
}

/// `config` for a connection of the store's own beside its pool (`application_name`
/// suffixed `-<role>`), which notices a dead server sooner than the default two hours.
pub(crate) fn side_connection(mut config: Config, role: &str) -> Config {
    let name = format!(
        "{}-{role}",
        config.get_application_name().unwrap_or("factum")
    );
    config.application_name(&name);
    config.keepalives_idle(Duration::from_secs(30));
    config.connect_timeout(Duration::from_secs(10));
    config
}

/// Spawns the task `task` makes into `slot` unless the one there still runs; outside a
/// tokio runtime, says that `what` (the caller) leaves other processes' side to polling.
pub(crate) fn spawn_once<F>(
    slot: &Mutex<Option<AbortHandle>>,
    channel: &str,
    what: &str,
    task: impl FnOnce() -> F,
) where
    F: Future<Output = ()> + Send + 'static,
{
    let mut running = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if running.as_ref().is_some_and(|t| !t.is_finished()) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(
            channel,
            "{what} outside a tokio runtime: commits of other processes are signalled by polling only"
        );
        return;
    };
    *running = Some(runtime.spawn(task()).abort_handle());
}

fn advance(sender: &HeadSender, position: Option<Position>) {
    let Some(position) = position else {
        return;
    };
    // Every commit wakes the listeners, even one below the newest position seen: a
    // transaction that drew a lower position commits after a higher one, and readers
    // that stopped before its position (the watermark) must look again.
    sender.send_modify(|head| {
        if head.is_none_or(|h| h < position) {
            *head = Some(position);
        }
    });
}

/// The delays between attempts of the side connections (listening, notifying) to
/// reconnect: 100 ms doubling to 10 s, with jitter, never giving up.
pub(crate) fn reconnect_backoff() -> backon::ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .without_max_times()
        .build()
}

/// How long a session must have listened for its end to start the reconnection backoff
/// over.
const STEADY: Duration = Duration::from_secs(30);

/// Listens forever, reconnecting with backoff.
async fn listen(
    config: Config,
    tls: Tls,
    channel: String,
    quoted: String,
    sender: Arc<HeadSender>,
) {
    let backoff = reconnect_backoff;
    let mut delays = backoff();
    loop {
        let mut listening = None;
        let ended = session(&config, &tls, &channel, &quoted, &sender, &mut listening).await;
        if listening.is_some_and(|since: Instant| since.elapsed() >= STEADY) {
            // It worked for a while: start the backoff over. (A session that dies right
            // after LISTEN, over and over, keeps backing off.)
            delays = backoff();
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(10));
        match ended {
            Ok(()) => {
                tracing::warn!(%channel, ?delay, "the notification connection closed; reconnecting")
            }
            Err(error) => {
                let error = crate::PostgresFailure::from(error);
                tracing::warn!(%channel, error = %factum::ErrorChain(&error), ?delay, "the notification connection failed; reconnecting")
            }
        }
        tokio::time::sleep(delay).await;
    }
}

/// One connection's life: LISTEN, read the newest position, forward notifications until
/// the connection ends (`Ok` when it closed, `Err` when it failed).
async fn session(
    config: &Config,
    tls: &Tls,
    channel: &str,
    quoted: &str,
    sender: &HeadSender,
    listening: &mut Option<Instant>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls.connector()).await?;
    let (payloads, mut received) = futures::channel::mpsc::unbounded::<String>();
    let drive = async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message? {
                AsyncMessage::Notification(n) => {
                    let _ = payloads.unbounded_send(n.payload().to_owned());
                }
                AsyncMessage::Notice(notice) => {
                    tracing::debug!(%notice, "a notice on the notification connection");
                }
                _ => {}
            }
        }
        Ok(())
    };
    let work = async {
        client
            .batch_execute(&format!("LISTEN \"{channel}\""))
            .await?;
        // Commits made before the LISTEN (or while disconnected) notified nobody.
        let newest: Option<i64> = client
            .query_one(&format!("SELECT max(position) FROM {quoted}.events"), &[])
            .await?
            .try_get(0)?;
        *listening = Some(Instant::now());
        tracing::debug!(%channel, "listening for commits");
        advance(
            sender,
            newest.and_then(|p| u64::try_from(p).ok()).map(Position),
        );
        while let Some(payload) = received.next().await {
            match payload.parse::<u64>() {
                Ok(position) => advance(sender, Some(Position(position))),
                Err(_) => {
                    tracing::debug!(%channel, %payload, "ignoring a notification that is not a position")
                }
            }
        }
        Ok(())
    };
    match select(std::pin::pin!(drive), std::pin::pin!(work)).await {
        Either::Left((ended, _)) | Either::Right((ended, _)) => ended,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_fit_postgres_identifiers() {
        assert_eq!(notify_channel("shop"), "factum_shop");
        let long = "a".repeat(63);
        let channel = notify_channel(&long);
        assert_eq!(channel.len(), 63);
        assert_ne!(channel, notify_channel(&format!("{}b", "a".repeat(62))));
        assert!(
            channel
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        );
    }
}
