//! A worker of the distributed coupon rush: decides the coupon and cart commands of the
//! partitions it owns (and stands by for the others) on PostgreSQL, through NATS.
//! See [`factum_examples::distributed`] for its arguments and output.

use std::io::{Read, Write};
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
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::stdin().read_to_end(&mut sink)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
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
