//! The commit signal's sending side: NOTIFY after the commit, coalesced, off the append
//! path.
//!
//! A transaction that NOTIFYs holds the database's one notification lock (`Lock:object`
//! on `pg_database` 0) from the start of its commit to its end, WAL flush included, so
//! appends notifying in their own transaction (a trigger, up to schema version 4) flushed
//! their commits one at a time. Instead, each successful append only records its newest
//! position here and wakes one task per store, which sends `NOTIFY` in a transaction of
//! its own on a connection of its own (opened on demand, closed after [`IDLE`] without
//! commits). While one notification is in flight, any number of further commits make one
//! more. The notification's transaction commits asynchronously (`synchronous_commit =
//! off`): it writes nothing worth a flush, so it holds the lock for a moment only.
//!
//! An append never waits for any of this, and a failed notification is never its error:
//! it is logged and sent again after a backoff. A lost notification costs a listener of
//! another process at most its poll interval: notifications are hints, reads go through
//! the watermark.
//!
//! It always notifies, whoever listens: PostgreSQL tells a session which channels it
//! listens on itself, never which ones other sessions do, and keeping a registry of
//! listeners would cost a statement per round as well.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use factum::Position;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio_postgres::{Client, Config};

use crate::notify::{reconnect_backoff, side_connection, spawn_once};
use crate::tls::Tls;

/// How long the notification connection stays open without a commit to signal.
pub(crate) const IDLE: Duration = Duration::from_secs(30);

/// What the appends tell the sending task.
#[derive(Default)]
struct Shared {
    /// Successful appends so far: a commit below the newest position must be signalled
    /// too (readers stopped at the watermark look again).
    commits: AtomicU64,
    /// The newest position this store committed (the payload, as listeners of every
    /// release parse it); 0 before any.
    newest: AtomicU64,
    /// Set when the store goes: the task sends what is pending once more and ends.
    closing: AtomicBool,
    wake: Notify,
}

/// A store's notification sender; see the [module documentation](self).
pub(crate) struct Notifier {
    shared: Arc<Shared>,
    task: Mutex<Option<AbortHandle>>,
    config: Config,
    tls: Tls,
    channel: String,
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

impl Notifier {
    /// The sender on `channel`, connecting with `config` and `tls` once there is
    /// something to send.
    pub(crate) fn new(config: Config, tls: Tls, channel: String) -> Self {
        Notifier {
            shared: Arc::default(),
            task: Mutex::new(None),
            config: side_connection(config, "notify"),
            tls,
            channel,
        }
    }

    /// Records a commit up to `position` and wakes the sending task; returns at once.
    pub(crate) fn committed(&self, position: Position) {
        self.shared.newest.fetch_max(position.0, Ordering::AcqRel);
        self.shared.commits.fetch_add(1, Ordering::AcqRel);
        self.ensure_running();
        self.shared.wake.notify_one();
    }

    fn ensure_running(&self) {
        spawn_once(&self.task, &self.channel, "an append", || {
            send_notifications(
                self.config.clone(),
                self.tls.clone(),
                self.channel.clone(),
                self.shared.clone(),
            )
        });
    }
}

/// Sends a notification whenever commits were recorded since the last one sent, until the
/// store goes.
async fn send_notifications(config: Config, tls: Tls, channel: String, shared: Arc<Shared>) {
    let backoff = reconnect_backoff;
    let mut delays = backoff();
    let mut client: Option<Client> = None;
    let mut sent = 0;
    loop {
        let commits = shared.commits.load(Ordering::Acquire);
        let closing = shared.closing.load(Ordering::Acquire);
        if commits == sent {
            if closing {
                return;
            }
            // A wake while a notification was in flight left a permit: the commits it
            // stands for are counted in `commits` and go out together.
            if tokio::time::timeout(IDLE, shared.wake.notified())
                .await
                .is_err()
            {
                client = None;
            }
            continue;
        }
        let newest = shared.newest.load(Ordering::Acquire);
        match notify(&mut client, &config, &tls, &channel, newest).await {
            Ok(()) => {
                sent = commits;
                delays = backoff();
            }
            Err(error) => {
                client = None;
                let error = crate::PostgresFailure::from(error);
                if closing {
                    tracing::warn!(%channel, error = %factum::ErrorChain(&error), "the last commit notification failed");
                    return;
                }
                let delay = delays.next().unwrap_or(Duration::from_secs(10));
                tracing::warn!(%channel, error = %factum::ErrorChain(&error), ?delay, "a commit notification failed; sending again");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// One notification of `newest` on `channel`, (re)connecting first if needed.
async fn notify(
    client: &mut Option<Client>,
    config: &Config,
    tls: &Tls,
    channel: &str,
    newest: u64,
) -> Result<(), tokio_postgres::Error> {
    let connected = match client.take() {
        Some(c) if !c.is_closed() => c,
        _ => {
            let (c, connection) = config.connect(tls.connector()).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %factum::ErrorChain(&e), "the notification sending connection ended");
                }
            });
            c
        }
    };
    // The channel holds letters, digits and underscores only (see `notify_channel`);
    // the payload is a number. One round trip; an empty store never gets here.
    connected
        .batch_execute(&format!(
            "BEGIN; SET LOCAL synchronous_commit = off; NOTIFY \"{channel}\", '{newest}'; COMMIT"
        ))
        .await?;
    *client = Some(connected);
    Ok(())
}
