//! The coupon rush through distributed lanes (NATS JetStream, PostgreSQL): what the
//! `factum-rush-worker` and `factum-rush-client` programs share.
//!
//! Both take `key=value` arguments: `stream`, `prefix` and `partitions` (the lanes),
//! `ack_wait_ms` and `pinned_ttl_ms` (the broker's timings); the worker also `id`,
//! `schema` (PostgreSQL at `DATABASE_URL`), `own` (comma-separated partitions) and
//! `standby_after_ms`; the client `coupon`, `uses`, `customers`, `concurrency`,
//! `timeout_ms` and `run` (a prefix for cart ids). Both connect to `NATS_URL`.
//!
//! The worker prints `connected` once it reached PostgreSQL and NATS, then waits for the
//! line `start` on its standard input (so workers started together begin pulling
//! together, whatever each took to connect), prints `ready` once it pulls its
//! partitions, and when its standard input closes it stops, printing `stats` and its
//! [`WorkerStats`](factum_nats::WorkerStats) in JSON. The client prints one [`RushSummary`] in JSON.

use std::collections::HashMap;
use std::time::Duration;

use factum_nats::LanesOptions;
use serde::{Deserialize, Serialize};

/// The `key=value` arguments of the process.
pub fn args() -> Result<HashMap<String, String>, String> {
    std::env::args()
        .skip(1)
        .map(|arg| match arg.split_once('=') {
            Some((key, value)) => Ok((key.to_owned(), value.to_owned())),
            None => Err(format!("expected key=value, got {arg}")),
        })
        .collect()
}

/// The argument `key`.
pub fn arg<'a>(args: &'a HashMap<String, String>, key: &str) -> Result<&'a str, String> {
    args.get(key)
        .map(String::as_str)
        .ok_or_else(|| format!("missing argument {key}=.."))
}

/// The argument `key` as a number.
pub fn number<T: std::str::FromStr>(
    args: &HashMap<String, String>,
    key: &str,
) -> Result<T, String> {
    let value = arg(args, key)?;
    value
        .parse()
        .map_err(|_| format!("{key}={value} is not a number"))
}

/// The lanes' options from the arguments.
pub fn lanes_options(args: &HashMap<String, String>) -> Result<LanesOptions, String> {
    Ok(LanesOptions {
        partitions: number(args, "partitions")?,
        ack_wait: Duration::from_millis(number(args, "ack_wait_ms")?),
        pinned_ttl: Duration::from_millis(number(args, "pinned_ttl_ms")?),
        ..LanesOptions::new(arg(args, "stream")?, arg(args, "prefix")?)
    })
}

/// A cart the client opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opened {
    /// The cart id.
    pub cart: String,
    /// Where its `CartOpened` is, or `None` when a command sent again found it open
    /// already (the first one committed, its answer was lost with a worker).
    pub position: Option<u64>,
}

/// A coupon application the client was told committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The cart id.
    pub cart: String,
    /// The request id (the idempotency key).
    pub request: String,
    /// Where its `CouponApplied` is.
    pub position: u64,
    /// Whether the answer replayed an earlier commit.
    pub replayed: bool,
    /// The worker that answered.
    pub worker: String,
}

/// What the client saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RushSummary {
    /// Customers that took part.
    pub customers: usize,
    /// Carts opened.
    pub opened: Vec<Opened>,
    /// Applications committed.
    pub applied: Vec<Applied>,
    /// Carts refused because the coupon was used up.
    pub used_up: Vec<String>,
    /// Commands answered (each counted once, however often it was sent).
    pub commands: u64,
    /// Commands sent again (same idempotency key) after a timeout or a failure.
    pub resent: u64,
    /// Wall time of the rush, in milliseconds.
    pub elapsed_ms: u64,
    /// Commands answered per second.
    pub per_second: f64,
}
