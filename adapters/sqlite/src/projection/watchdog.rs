//! The watchdog rolling back a batch left idle, so that it does not hold the file's
//! write lock.

use std::sync::{Mutex, TryLockError, Weak};
use std::time::Duration;

use super::unit::Unit;

/// Rolls back the transaction of a sink left idle for longer than its idle limit (a
/// batch abandoned midway), so that it does not hold the file's write lock; ends with
/// the sink.
pub(super) async fn watchdog<P>(unit: Weak<Mutex<Unit<P>>>) {
    loop {
        let Some(tick) = unit.upgrade().map(|unit| watch(&unit)) else {
            return;
        };
        tokio::time::sleep(tick).await;
    }
}

/// One look of the watchdog; returns when to look again.
fn watch<P>(unit: &Mutex<Unit<P>>) -> Duration {
    let mut unit = match unit.try_lock() {
        Ok(unit) => unit,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        // Held: a call is running, the batch is not idle.
        Err(TryLockError::WouldBlock) => return Duration::from_millis(10),
    };
    let limit = unit.idle_limit;
    if unit.in_tx && unit.idle_since.elapsed() >= limit {
        tracing::warn!(projection = %unit.name, ?limit, "a projection batch was idle past its limit: rolling it back");
        unit.lose();
    }
    (limit / 4).clamp(Duration::from_millis(5), Duration::from_millis(500))
}
