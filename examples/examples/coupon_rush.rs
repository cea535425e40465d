//! The coupon rush: a coupon with 100 uses, 1,000 customers arriving at once, each
//! opening a cart and applying the coupon to it, while 8 other carts get 50 items each.
//! The shop serves 16 customer requests at once (`--submitters N`); the others wait
//! for a free submitter. Every decision, the customers' and the background
//! carts', goes through one [`Dispatcher`](factum::lanes::Dispatcher) per run, under
//! the run's strategy:
//!
//! 1. **optimistic**: [`ApplyCoupon`](factum_examples::coupons::ApplyCoupon) validates
//!    against every application of the coupon; customers who lose a race retry;
//! 2. **optimistic + exclusion**:
//!    [`ApplyCouponTolerant`](factum_examples::coupons::ApplyCouponTolerant) leaves
//!    applications out of its validation query (`exclude = [CouponApplied]`), so
//!    applications never conflict with each other and the coupon may be overbooked, by
//!    at most one per concurrent submitter;
//! 3. **serial lanes**: applications queue on the coupon's lane, are decided one after
//!    another on warm states and committed in batches;
//! 4. **store lock**: each application holds the store's lock on the coupon around its
//!    read, decide and append.
//!
//! Each run starts on a fresh store. By default that is the embedded SQLite store
//! (durable: WAL, `synchronous=FULL`), one file per run under `./target/factum-demo/`,
//! removed at the start and kept afterwards for inspection. `--postgres` runs on the
//! PostgreSQL server at `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! instead, in a fresh schema per run, dropped at the end unless `--keep` is given.
//! `--memory` runs on the in-memory store, with appends that take 1 ms to reach it
//! ([`Latency`]) so that concurrent customers race as they would against a database;
//! `--latency MS` sets that delay for any store (default 0 for SQLite and PostgreSQL).
//!
//! After a run the store is closed and opened again (SQLite, PostgreSQL), and the audit
//! ([`factum_examples::rush::audit`]) reads the log back and checks it against what every
//! command was told. A command is **lost** when it got no answer, or an answer that is
//! neither an acknowledged commit nor a domain refusal (a conflict after the last retry,
//! a store error), or when the log does not hold its events where it was told they are.
//! An event is **duplicated** when no command was told of it, or when it is a second
//! application of the coupon to one cart.
//!
//! The table shows, per run: decisions answered per second (opens, applications and
//! background items, from the first arrival to the last answer); the median and 99th
//! percentile latency of an application, from handing it to the dispatcher to its
//! answer (the wait for a free submitter is not included); conflicts; retries; coupons
//! applied (in the log); lost commands and duplicated events.
//!
//! **Conflicts** are the engine's count ([`Engine::stats`](factum::Engine::stats)) of
//! appends the store refused because their condition no longer held. **Retries** sum,
//! over the commands that committed, their attempts beyond the first
//! ([`Outcome::attempts`](factum::Outcome) − 1). Every conflict is followed by a retry
//! (or, after the last allowed, by giving up), but a customer who conflicts, retries and
//! then finds the coupon used up is refused, and a refusal carries no attempts: its
//! conflicts count, its retries do not. So conflicts ≥ retries, and the gap is the work
//! spent on customers who got no coupon. The notes under the table give the attempts of
//! the unluckiest commit: `ApplyCoupon` allows 51, and with many more submitters
//! (`--submitters 64`) some optimistic customers run out of them, which counts as lost.
//!
//! Run with `cargo run -p factum-examples --example coupon_rush -- [--postgres [--keep] |
//! --memory] [--latency MS] [--submitters N]`. Exits non-zero if a strict run (all but
//! the exclusion) does not apply the coupon exactly 100 times, the tolerant run applies
//! it fewer than 100 times or more than 100 plus the submitters, any command is lost or
//! any event duplicated, or the engine's counters disagree with the answers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use factum_examples::latency::Latency;
use factum_examples::rush::audit::audit;
use factum_examples::rush::scenario;
use factum_examples::rush::table::{Summary, notes, table};
use factum_examples::rush::{Run, Rush};
use factum_postgres::{DATABASE_URL, PostgresStore};
use indicatif::{ProgressBar, ProgressStyle};

/// Where the SQLite runs keep their files.
const DEMO_DIR: &str = "target/factum-demo";
/// How long connecting to PostgreSQL may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which store the runs use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres { keep: bool },
    Memory,
}

/// Runs `run` on a fresh store of `backend`: its summary, and where its log is.
async fn run_on(
    backend: Backend,
    rush: &Rush,
    run: Run,
    latency: Duration,
    bar: &ProgressBar,
) -> Result<(Summary, String), String> {
    match backend {
        Backend::Memory => {
            let store = Latency::new(factum::MemoryStore::new(), latency);
            let observed = scenario::run(store.clone(), rush, run, bar).await?;
            let audit = audit(&store, rush, &observed).await;
            Ok((Summary::new(rush, &observed, &audit), "in memory".into()))
        }
        Backend::Sqlite => {
            let path = Path::new(DEMO_DIR).join(format!("coupon_rush-{}.db", run.slug()));
            let store = fresh_sqlite(&path).await?;
            // The run takes the store and drops it (and the dispatcher's lanes) when done.
            let observed = scenario::run(Latency::new(store, latency), rush, run, bar).await?;
            let reopened = factum_sqlite::open(&path)
                .await
                .map_err(|e| format!("reopening {} failed: {e}", path.display()))?;
            let audit = audit(&reopened, rush, &observed).await;
            let kept = format!("log in {}", path.display());
            Ok((Summary::new(rush, &observed, &audit), kept))
        }
        Backend::Postgres { keep } => {
            let random = uuid::Uuid::now_v7().simple().to_string();
            let schema = format!("coupon_rush_{}_{}", run.slug(), &random[20..]);
            let store = connect(&schema).await?;
            let observed = scenario::run(Latency::new(store, latency), rush, run, bar).await;
            let reopened = connect(&schema).await?;
            let summary = match observed {
                Ok(observed) => {
                    let audit = audit(&reopened, rush, &observed).await;
                    Ok(Summary::new(rush, &observed, &audit))
                }
                Err(e) => Err(e),
            };
            let kept = if keep {
                format!("log in schema {schema}")
            } else {
                match reopened.drop_schema().await {
                    Ok(()) => format!("schema {schema} dropped"),
                    Err(e) => format!("could not drop schema {schema}: {e}"),
                }
            };
            summary.map(|summary| (summary, kept))
        }
    }
}

/// Opens a new SQLite store at `path`, removing the files a previous run left there.
async fn fresh_sqlite(path: &Path) -> Result<factum_sqlite::SqliteStore, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", file.display())),
        }
    }
    factum_sqlite::open(path)
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// The PostgreSQL store in `schema` on the server at `DATABASE_URL`.
async fn connect(schema: &str) -> Result<PostgresStore, String> {
    let help = format!(
        "--postgres needs a running PostgreSQL server at {DATABASE_URL} (default \
         postgres://postgres@127.0.0.1:5432/test)"
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, PostgresStore::from_env(schema)).await {
        Ok(Ok(store)) => Ok(store),
        Ok(Err(e)) => {
            // The innermost cause says why (connection refused, authentication failed).
            let mut message = e.to_string();
            let mut root = std::error::Error::source(&e);
            while let Some(deeper) = root.and_then(|cause| cause.source()) {
                root = Some(deeper);
            }
            if let Some(root) = root.map(ToString::to_string)
                && !message.contains(&root)
            {
                message = format!("{message} ({root})");
            }
            Err(format!("{message}. {help}"))
        }
        Err(_) => Err(format!(
            "the PostgreSQL server did not answer within {} s. {help}",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// A progress bar for one run, counting answered commands.
fn progress(rush: &Rush, run: Run) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix:>22} [{bar:32}] {pos:>4}/{len} decisions {elapsed:>3}",
    )
    .map(|style| style.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = ProgressBar::new(rush.commands() as u64)
        .with_style(style)
        .with_prefix(run.name());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

const USAGE: &str =
    "usage: coupon_rush [--postgres [--keep] | --memory] [--latency MS] [--submitters N]
       coupon_rush describe [--mermaid | --doc | --warnings] [--deny-warnings]";

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    if let Some(code) = factum::catalog::cli::run(
        &factum_examples::coupons::catalog(),
        std::env::args().skip(1),
    ) {
        return code;
    }
    let (mut postgres, mut memory, mut keep, mut latency_ms) = (false, false, false, None);
    let mut rush = Rush::seed();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--postgres" => postgres = true,
            "--memory" => memory = true,
            "--keep" => keep = true,
            "--latency" => match args.next().map(|a| a.parse::<u64>()) {
                Some(Ok(ms)) => latency_ms = Some(ms),
                _ => {
                    eprintln!("{USAGE}: --latency takes milliseconds");
                    return ExitCode::FAILURE;
                }
            },
            "--submitters" => match args.next().map(|a| a.parse::<usize>()) {
                Some(Ok(n)) if n > 0 => rush.submitters = n,
                _ => {
                    eprintln!("{USAGE}: --submitters takes a number above 0");
                    return ExitCode::FAILURE;
                }
            },
            other => {
                eprintln!("{USAGE} (unexpected {other:?})");
                return ExitCode::FAILURE;
            }
        }
    }
    let backend = match (postgres, memory, keep) {
        (true, true, _) | (false, _, true) => {
            eprintln!("{USAGE}: one store at most, and --keep only with --postgres");
            return ExitCode::FAILURE;
        }
        (true, false, keep) => Backend::Postgres { keep },
        (false, true, false) => Backend::Memory,
        (false, false, false) => Backend::Sqlite,
    };
    let latency = Duration::from_millis(latency_ms.unwrap_or(match backend {
        Backend::Memory => 1,
        Backend::Sqlite | Backend::Postgres { .. } => 0,
    }));

    let store = match backend {
        Backend::Sqlite => format!("embedded SQLite (a file per run under {DEMO_DIR}/)"),
        Backend::Postgres { .. } => format!("PostgreSQL at {DATABASE_URL} (a schema per run)"),
        Backend::Memory => "the in-memory store".to_owned(),
    };
    let delay = if latency.is_zero() {
        String::new()
    } else {
        format!(
            ", appends taking {} ms more to reach it",
            latency.as_millis()
        )
    };
    let arrive = if rush.arrivals_over.is_zero() {
        "at once".to_owned()
    } else {
        format!("within {} ms", rush.arrivals_over.as_millis())
    };
    println!(
        "coupon rush: {} customers arrive {arrive}, each opens a cart and applies {} \
         ({} uses);\n{} submitters serve them; meanwhile {} other carts get {} items each.\n\
         On {store}{delay}.\n",
        rush.customers,
        rush.coupon,
        rush.uses,
        rush.submitters,
        rush.background_carts,
        rush.items_per_cart,
    );

    let mut summaries = Vec::new();
    for run in Run::ALL {
        let bar = progress(&rush, run);
        let result = run_on(backend, &rush, run, latency, &bar).await;
        bar.finish_and_clear();
        match result {
            Ok((summary, kept)) => {
                println!(
                    "{:>22}: {} decisions in {:.2} s; {kept}",
                    run.name(),
                    summary.decisions,
                    summary.elapsed.as_secs_f64()
                );
                summaries.push(summary);
            }
            Err(e) => {
                eprintln!("error: {}: {e}", run.name());
                return ExitCode::FAILURE;
            }
        }
    }

    println!("\n{}", table(&summaries));
    for note in notes(&summaries) {
        println!("  {note}");
    }
    let problems: Vec<String> = summaries.iter().flat_map(Summary::problems).collect();
    println!();
    if problems.is_empty() {
        println!(
            "ok: every strict run applied the coupon exactly {} times, the tolerant one \
             within its bound; no command lost or duplicated",
            rush.uses
        );
        ExitCode::SUCCESS
    } else {
        for problem in problems {
            eprintln!("error: {problem}");
        }
        ExitCode::FAILURE
    }
}
