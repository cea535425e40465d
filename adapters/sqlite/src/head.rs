//! The commit signal: the newest position committed through this process's stores on a
//! file, for [`ListenerStore::watch_head`](factum::listen::ListenerStore::watch_head).
//!
//! The writer thread updates it after each group it commits. It is in-process: commits
//! by another process on the same file are not signalled, and subscriptions find them by
//! polling (see [`SubscriptionOptions::poll_interval`](factum::listen::SubscriptionOptions::poll_interval)).
//! Every store this process opened on one file shares one signal, as they share one table
//! of partition locks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use factum::Position;
use tokio::sync::watch;

/// The signal of one file.
pub(crate) type HeadSender = watch::Sender<Option<Position>>;

/// The signal of the file at `path` (which must exist), shared by every store of this
/// process open on it; a new one starts at `head`, the newest position in the file.
pub(crate) fn shared(path: &Path, head: Option<Position>) -> Arc<HeadSender> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<HeadSender>>>> = OnceLock::new();
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mut open = OPEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    open.retain(|_, signal| signal.strong_count() > 0);
    if let Some(signal) = open.get(&path).and_then(Weak::upgrade) {
        // Another store on the file may have missed commits of other processes: the file
        // knows best.
        advance(&signal, head);
        return signal;
    }
    let signal = Arc::new(watch::channel(head).0);
    open.insert(path, Arc::downgrade(&signal));
    signal
}

/// Moves the signal to `position` if that is newer, waking the receivers.
pub(crate) fn advance(signal: &HeadSender, position: Option<Position>) {
    let Some(position) = position else {
        return;
    };
    signal.send_if_modified(|head| {
        let newer = head.is_none_or(|h| h < position);
        if newer {
            *head = Some(position);
        }
        newer
    });
}
