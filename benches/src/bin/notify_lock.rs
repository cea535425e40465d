//! `factum-bench-notify`: what NOTIFY on the commit path costs appending commits.
//!
//! ```text
//! cargo run --release -p factum-benches --bin factum-bench-notify -- [--rounds N]
//!     [--tasks N] [--seconds S]
//! ```
//!
//! Two PostgreSQL stores on the same server, in schemas of their own (dropped at the
//! end): `trigger`, where this tool re-creates schema version 3's statement trigger
//! (every appending transaction NOTIFYs before it commits), and `after-commit`, as the
//! store leaves it (the appending process notifies after its commits, coalesced). Each
//! round runs both, in alternating order: `--tasks` concurrent appenders (default 8) on
//! distinct keys, each appending one event guarded by its own key, for `--seconds`
//! (default 3). While each runs, another connection samples the wait events of its
//! store's connections every 5 ms. The report gives each round's commits/s and their
//! ratio, the median ratio, and each store's top wait events. PostgreSQL is reached at
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use factum::model::Payload;
use factum::{AppendCondition, Codec, EventStore, Metadata, NewEvent, Query, QueryItem, Tag};
use factum_postgres::{PostgresOptions, PostgresStore};
use tokio_postgres::NoTls;

/// Version 3's commit signal (`migrations/0003_listeners.sql`), for schema `{schema}`.
const OLD_TRIGGER: &str = "
CREATE OR REPLACE FUNCTION {schema}.notify_appended() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    newest bigint;
BEGIN
    SELECT max(position) INTO newest FROM appended;
    IF newest IS NOT NULL THEN
        PERFORM pg_notify('{channel}', newest::text);
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS events_notify ON {schema}.events;
CREATE TRIGGER events_notify
    AFTER INSERT ON {schema}.events
    REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.notify_appended();
";

struct Args {
    rounds: usize,
    tasks: usize,
    seconds: f64,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        rounds: 5,
        tasks: 8,
        seconds: 3.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--rounds" => args.rounds = parse(&value("--rounds")?)?,
            "--tasks" => args.tasks = parse(&value("--tasks")?)?,
            "--seconds" => args.seconds = parse(&value("--seconds")?)?,
            "--help" | "-h" => {
                println!(
                    "factum-bench-notify [--rounds N (5)] [--tasks N (8)] [--seconds S (3)]\n\
                     Commits/s of concurrent appenders with version 3's NOTIFY trigger vs \
                     the after-commit notification, interleaved, with wait-event samples."
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn parse<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("not a number: {value}"))
}

fn main() {
    let args = args().unwrap_or_else(|e| {
        eprintln!("factum-bench-notify: {e}");
        std::process::exit(2);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start tokio: {e}"));
    runtime.block_on(run(args));
}

/// The server: the one `DATABASE_URL` names, else the store's default (what
/// [`PostgresOptions::from_env`] reads).
fn database_url() -> String {
    PostgresOptions::from_env(String::new()).url
}

async fn raw() -> tokio_postgres::Client {
    let url = database_url();
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {url}: {e}"));
    tokio::spawn(connection);
    client
}

/// A store in a fresh schema, its connections named `app`.
async fn store(schema: &str, app: &str, tasks: usize) -> PostgresStore {
    let mut options = PostgresOptions::from_env(schema);
    options.application_name = app.to_owned();
    options.pool_size = tasks;
    PostgresStore::connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("cannot open the store in {schema}: {e}"))
}

fn event(key: &str) -> NewEvent {
    NewEvent {
        event_type: "Deposited".to_owned(),
        version: 1,
        tags: vec![Tag::new("account", key)],
        payload: Payload {
            codec: Codec::Json,
            bytes: br#"{"amount":1}"#.to_vec(),
        },
        metadata: Metadata::new(),
        recorded_at: None,
    }
}

/// Commits per second of `tasks` appenders for `seconds`, and the wait events sampled
/// meanwhile among the connections named `app`.
async fn measure(
    store: &PostgresStore,
    app: &str,
    tag: &str,
    tasks: usize,
    seconds: f64,
) -> (f64, HashMap<String, u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let sampler = {
        let stop = stop.clone();
        let app = app.to_owned();
        tokio::spawn(async move {
            let client = raw().await;
            let mut waits = HashMap::new();
            while !stop.load(Ordering::Relaxed) {
                let rows = client
                    .query(
                        "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU/none') \
                         FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'",
                        &[&app],
                    )
                    .await
                    .unwrap_or_default();
                for row in rows {
                    *waits.entry(row.get::<_, String>(0)).or_insert(0) += 1;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            waits
        })
    };
    let started = Instant::now();
    let appenders: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            let stop = stop.clone();
            let commits = commits.clone();
            let failures = failures.clone();
            let key = format!("{tag}-{t}");
            tokio::spawn(async move {
                let query = Query::item(QueryItem::any().with_tags([Tag::new("account", &key)]));
                let mut after = None;
                while !stop.load(Ordering::Relaxed) {
                    let condition = AppendCondition::new(query.clone(), after);
                    match store.append(vec![event(&key)], Some(condition)).await {
                        Ok(appended) => {
                            after = appended.last();
                            commits.fetch_add(1, Ordering::Relaxed);
                        }
                        // Another client may terminate connections (a test on the
                        // same server): counted, not fatal; the next append retries.
                        Err(e) => {
                            if failures.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("an append failed (counted, going on): {e}");
                            }
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for a in appenders {
        a.await
            .unwrap_or_else(|e| panic!("an appender panicked: {e}"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let waits = sampler.await.unwrap_or_default();
    (commits.load(Ordering::Relaxed) as f64 / elapsed, waits)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn top(waits: &HashMap<String, u64>) -> String {
    let total: u64 = waits.values().sum();
    let mut sorted: Vec<_> = waits.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1));
    sorted
        .iter()
        .take(4)
        .map(|(w, n)| format!("{w} {:.0} %", **n as f64 * 100.0 / total.max(1) as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn run(args: Args) {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let old_schema = format!("factum_bench_notify_trigger_{}", &id[20..]);
    let new_schema = format!("factum_bench_notify_after_{}", &id[20..]);
    let old_app = format!("factum-bench-trigger-{}", &id[20..]);
    let new_app = format!("factum-bench-after-{}", &id[20..]);
    let old = store(&old_schema, &old_app, args.tasks).await;
    let new = store(&new_schema, &new_app, args.tasks).await;
    let admin = raw().await;
    admin
        .batch_execute(
            &OLD_TRIGGER
                .replace("{schema}", &format!("\"{old_schema}\""))
                .replace("{channel}", &format!("factum_{old_schema}")),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot re-create the old trigger: {e}"));
    // Warm both pools up.
    measure(&old, &old_app, "warm", args.tasks, 0.5).await;
    measure(&new, &new_app, "warm", args.tasks, 0.5).await;

    let mut ratios = Vec::new();
    let (mut old_waits, mut new_waits) = (HashMap::new(), HashMap::new());
    println!(
        "{} appenders on distinct keys, {} s per store and round",
        args.tasks, args.seconds
    );
    println!("round  trigger commits/s  after-commit commits/s  after/trigger");
    for round in 0..args.rounds {
        let tag = format!("r{round}");
        let run_old = || measure(&old, &old_app, &tag, args.tasks, args.seconds);
        let run_new = || measure(&new, &new_app, &tag, args.tasks, args.seconds);
        let ((o, ow), (n, nw)) = if round % 2 == 0 {
            let o = run_old().await;
            (o, run_new().await)
        } else {
            let n = run_new().await;
            (run_old().await, n)
        };
        for (w, c) in ow {
            *old_waits.entry(w).or_insert(0) += c;
        }
        for (w, c) in nw {
            *new_waits.entry(w).or_insert(0) += c;
        }
        println!("{round:>5}  {o:>17.0}  {n:>22.0}  {:>13.2}", n / o);
        ratios.push(n / o);
    }
    println!("median after/trigger: {:.2}", median(ratios));
    println!("trigger waits:      {}", top(&old_waits));
    println!("after-commit waits: {}", top(&new_waits));
    drop(old);
    drop(new);
    for schema in [old_schema, new_schema] {
        if let Err(e) = admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await
        {
            eprintln!("could not drop schema {schema}: {e}");
        }
    }
}
