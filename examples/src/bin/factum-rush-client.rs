//! The client of the distributed coupon rush: issues a coupon, then customers (a few at
//! a time) each open a cart and apply the coupon, every command through NATS to the
//! worker owning its partition. A command that gets no answer in time (its worker died)
//! is sent again with the same idempotency key until it is answered. Prints a
//! [`RushSummary`] in JSON. See [`factum_examples::distributed`] for its arguments.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use factum::Decision;
use factum_examples::coupons::{ApplyCoupon, IssueCoupon, OpenCart};
use factum_examples::distributed::{
    Applied, Opened, RushSummary, arg, args, lanes_options, number,
};
use factum_nats::{LanesClient, LanesError, RemoteOutcome, async_nats, nats_url};

/// How long a command is sent again before the client gives up.
const GIVE_UP: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(summary) => match serde_json::to_string(&summary) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("factum-rush-client: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("factum-rush-client: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Rush {
    client: LanesClient,
    coupon: String,
    run: String,
    timeout: Duration,
    resent: AtomicU64,
    commands: AtomicU64,
    summary: Mutex<RushSummary>,
}

async fn run() -> Result<RushSummary, String> {
    let args = args()?;
    let options = lanes_options(&args)?;
    let customers: usize = number(&args, "customers")?;
    let concurrency: usize = number(&args, "concurrency")?;
    let uses: u32 = number(&args, "uses")?;
    let url = nats_url();
    let nats = async_nats::connect(&url)
        .await
        .map_err(|e| format!("cannot reach NATS at {url}: {e} (set NATS_URL)"))?;
    let client = LanesClient::new(nats, options)
        .await
        .map_err(|e| e.to_string())?;
    let rush = Arc::new(Rush {
        client,
        coupon: arg(&args, "coupon")?.to_owned(),
        run: arg(&args, "run")?.to_owned(),
        timeout: Duration::from_millis(number(&args, "timeout_ms")?),
        resent: AtomicU64::new(0),
        commands: AtomicU64::new(0),
        summary: Mutex::new(RushSummary {
            customers,
            ..RushSummary::default()
        }),
    });
    let started = Instant::now();
    let issue = IssueCoupon {
        coupon: rush.coupon.clone(),
        uses,
    };
    match rush.send(&issue).await? {
        (Ok(_), _) => {}
        (Err(e), true) if e.refusal().is_some_and(|r| r.contains("already issued")) => {}
        (Err(e), _) => return Err(format!("issuing the coupon: {e}")),
    }

    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks: tokio::task::JoinSet<Result<(), String>> = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (rush, next) = (Arc::clone(&rush), Arc::clone(&next));
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= customers {
                    return Ok(());
                }
                rush.customer(i).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    let elapsed = started.elapsed();
    let mut summary =
        std::mem::take(&mut *rush.summary.lock().unwrap_or_else(PoisonError::into_inner));
    summary.commands = rush.commands.load(Ordering::Relaxed);
    summary.resent = rush.resent.load(Ordering::Relaxed);
    summary.elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    summary.per_second = summary.commands as f64 / elapsed.as_secs_f64().max(1e-3);
    Ok(summary)
}

impl Rush {
    /// Sends `command` until it is answered (a commit or a refusal); returns the answer
    /// and whether the command had to be sent again.
    async fn send<D: Decision + serde::Serialize>(
        &self,
        command: &D,
    ) -> Result<(Result<RemoteOutcome, LanesError>, bool), String> {
        let started = Instant::now();
        let mut again = false;
        loop {
            match self.client.request_within(command, self.timeout).await {
                Err(e) if e.is_retryable() => {
                    if started.elapsed() > GIVE_UP {
                        return Err(format!("{}: no answer for {GIVE_UP:?}: {e}", D::META.name));
                    }
                    if !matches!(e, LanesError::Timeout { .. }) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    self.resent.fetch_add(1, Ordering::Relaxed);
                    again = true;
                }
                answer => {
                    self.commands.fetch_add(1, Ordering::Relaxed);
                    return Ok((answer, again));
                }
            }
        }
    }

    fn record(&self, f: impl FnOnce(&mut RushSummary)) {
        f(&mut self.summary.lock().unwrap_or_else(PoisonError::into_inner));
    }

    async fn customer(&self, i: usize) -> Result<(), String> {
        let cart = format!("{}-c{i}", self.run);
        let position = match self.send(&OpenCart { cart: cart.clone() }).await? {
            (Ok(outcome), _) => outcome.positions.first().map(|p| p.0),
            // Sent again after its worker died: the first one had committed.
            (Err(e), true) if e.refusal().is_some_and(|r| r.contains("already open")) => None,
            (Err(e), _) => return Err(format!("opening {cart}: {e}")),
        };
        self.record(|s| {
            s.opened.push(Opened {
                cart: cart.clone(),
                position,
            })
        });
        let apply = ApplyCoupon::new(&self.coupon, &cart);
        match self.send(&apply).await? {
            (Ok(outcome), _) => {
                let position = outcome
                    .positions
                    .first()
                    .ok_or_else(|| format!("applying to {cart}: committed without an event"))?
                    .0;
                self.record(|s| {
                    s.applied.push(Applied {
                        cart: cart.clone(),
                        request: apply.request.to_string(),
                        position,
                        replayed: outcome.replayed,
                        worker: outcome.worker,
                    })
                });
            }
            (Err(e), _) if e.refusal().is_some_and(|r| r.contains("is used up")) => {
                self.record(|s| s.used_up.push(cart.clone()));
            }
            (Err(e), _) => return Err(format!("applying to {cart}: {e}")),
        }
        Ok(())
    }
}
