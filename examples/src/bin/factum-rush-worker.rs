//! A worker of the distributed coupon rush: decides the coupon and cart commands of the
//! partitions it owns (and stands by for the others) on PostgreSQL, through NATS.
//! See [`factum_examples::distributed`] for its arguments and output.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use factum::lanes::Dispatcher;
use factum::prelude::*;
use factum_examples::coupons::{ApplyCoupon, IssueCoupon, OpenCart};
use factum_examples::distributed::{arg, args, lanes_options, number};
use factum_nats::{Worker, async_nats, nats_url};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("factum-rush-worker: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let args = args()?;
    let options = lanes_options(&args)?;
    let id = arg(&args, "id")?.to_owned();
    let own = arg(&args, "own")?
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<u32>()
                .map_err(|_| format!("own: {p} is not a partition"))
        })
        .collect::<Result<Vec<u32>, String>>()?;
    let standby_after = Duration::from_millis(number(&args, "standby_after_ms")?);
    let store = factum_postgres::PostgresStore::from_env(arg(&args, "schema")?)
        .await
        .map_err(|e| format!("{e} (set DATABASE_URL)"))?;
    let url = nats_url();
    let nats = async_nats::connect(&url)
        .await
        .map_err(|e| format!("cannot reach NATS at {url}: {e} (set NATS_URL)"))?;
    // Its standard input, line by line: `start`, then its end (stop).
    let (lines, mut input) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // Connected: wait for the word to start, so that workers started together begin
    // pulling together (however long each took to get here), and each pins its own
    // partitions before any stands by for the others'.
    say("connected")?;
    match input.recv().await.as_deref() {
        Some("start") => {}
        Some(other) => return Err(format!("expected `start`, got {other:?}")),
        None => return Ok(()),
    }
    let worker = Worker::builder(nats, Dispatcher::new(Engine::new(store)), options)
        .id(id)
        .partitions(own)
        .standby(true)
        .standby_after(standby_after)
        .handle::<IssueCoupon>()
        .handle::<OpenCart>()
        .handle::<ApplyCoupon>()
        .start()
        .await
        .map_err(|e| e.to_string())?;
    say("ready")?;
    // Runs until its standard input closes.
    while input.recv().await.is_some() {}
    let stats = worker.shutdown().await;
    let stats = serde_json::to_string(&stats).map_err(|e| e.to_string())?;
    say(&format!("stats {stats}"))
}

fn say(line: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())
}
