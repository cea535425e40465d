//! The distributed contender: the contention workloads sent through NATS JetStream by a
//! `factum_nats::LanesClient` to two `factum_nats::Worker`s running in this process.

use std::time::Duration;

use factum::EngineStats;
use factum::lanes::{Dispatcher, Drain, LaneOptions};
use factum::prelude::*;
use factum_nats::async_nats;
use factum_nats::lanes::{check_server, delete_stream};
use factum_nats::{LanesClient, LanesOptions, Worker, WorkerStats, partition_of};

use crate::domain::{Redeem, issue};
use crate::profile::Profile;
use crate::scenarios::{RunFigures, Workload, figures_of, submit_all};

/// How long connecting to the NATS server may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The connections to the NATS server at `NATS_URL`, opened once for the whole
/// benchmark: one for the client, one for each of the two workers (as if they were three
/// processes).
pub struct Nats {
    /// The server's URL.
    pub url: String,
    /// The server's version.
    pub version: String,
    client: async_nats::Client,
    workers: [async_nats::Client; 2],
}

/// Connects to the NATS server at `NATS_URL` (default `nats://127.0.0.1:4222`) and checks
/// that it can run distributed lanes: version 2.11 or newer, JetStream on (a probe stream
/// is created and deleted). The error says why not, naming the URL.
pub async fn connect() -> Result<Nats, String> {
    let url = factum_nats::nats_url();
    let open = || async {
        match tokio::time::timeout(CONNECT_TIMEOUT, async_nats::connect(&url)).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(format!("cannot reach NATS at NATS_URL={url}: {e}")),
            Err(_) => Err(format!(
                "cannot reach NATS at NATS_URL={url}: no answer within {CONNECT_TIMEOUT:?}"
            )),
        }
    };
    let client = open().await?;
    check_server(&client).map_err(|e| format!("NATS_URL={url}: {e}"))?;
    let unique = uuid::Uuid::now_v7().simple();
    let probe = LanesOptions::new(
        format!("FACTUM_BENCH_PROBE_{unique}"),
        format!("factum-bench.probe.{unique}"),
    );
    let probed = tokio::time::timeout(CONNECT_TIMEOUT, async {
        LanesClient::new(client.clone(), probe.clone()).await?;
        delete_stream(&client, &probe).await
    })
    .await;
    match probed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("NATS_URL={url}: no JetStream stream: {e}")),
        Err(_) => return Err(format!("NATS_URL={url}: JetStream does not answer")),
    }
    let workers = [open().await?, open().await?];
    Ok(Nats {
        version: client.server_info().version,
        url,
        client,
        workers,
    })
}

/// Fresh lanes options for one run: a stream and a subject prefix of its own, otherwise
/// the defaults (16 partitions, pulls of 64, 512 unacknowledged commands per partition).
fn run_options() -> LanesOptions {
    let unique = uuid::Uuid::now_v7().simple();
    LanesOptions::new(
        format!("FACTUM_BENCH_{unique}"),
        format!("factum-bench.{unique}"),
    )
}

/// The timed part of a distributed run on `store` (fresh, its coupons issued): starts two
/// workers, each with a dispatcher of its own (`lanes`) over a clone of `store`, owning
/// the even and the odd partitions and standing by for the others; warms every partition
/// up with one redemption (untimed; `profile` is reset after it); then sends the
/// workload's decisions from `submitters` tasks through one [`LanesClient`], each
/// awaiting its reply. Retries and lane batches are the workers' engines' counts. The
/// stream is deleted at the end.
pub async fn timed_decisions<S>(
    store: S,
    workload: Workload,
    lanes: LaneOptions,
    coupon: impl Fn(u64) -> String + Clone + Send + 'static,
    nats: &Nats,
    profile: Option<&Profile>,
) -> RunFigures
where
    S: EventStore + Clone + 'static,
{
    let options = run_options();
    let partitions = options.partitions;
    let mut workers: Vec<Worker<S>> = Vec::with_capacity(nats.workers.len());
    for (w, connection) in (0u32..).zip(&nats.workers) {
        let dispatcher = Dispatcher::with_options(Engine::new(store.clone()), lanes);
        let started = Worker::builder(connection.clone(), dispatcher, options.clone())
            .id(format!("bench-worker-{w}"))
            .partitions((0..partitions).filter(|p| p % 2 == w))
            .standby(true)
            .handle::<Redeem>()
            .start()
            .await;
        workers.push(started.unwrap_or_else(|e| {
            panic!("cannot start a lanes worker on NATS_URL={}: {e}", nats.url)
        }));
    }
    let client = LanesClient::new(nats.client.clone(), options.clone())
        .await
        .unwrap_or_else(|e| panic!("cannot start a lanes client on NATS_URL={}: {e}", nats.url));

    // Untimed: one redemption on every partition, each on a coupon of its own, so that
    // every partition's consumer is pinned to its owner and has delivered before the
    // clock starts.
    let mut warm: Vec<Option<String>> = vec![None; partitions as usize];
    let base = format!("warm-lanes-{}", uuid::Uuid::now_v7().simple());
    let mut i = 0u64;
    while warm.iter().any(Option::is_none) {
        let coupon = format!("{base}-{i}");
        let slot = &mut warm[partition_of(&coupon, partitions) as usize];
        if slot.is_none() {
            *slot = Some(coupon);
        }
        i += 1;
    }
    let warm: Vec<String> = warm.into_iter().flatten().collect();
    let issued = store
        .append(warm.iter().map(|c| issue(c, 1)).collect(), None)
        .await;
    issued.unwrap_or_else(|e| panic!("issuing the lanes' warm-up coupons failed: {e}"));
    let warm_ups = warm.into_iter().map(|coupon| {
        let client = client.clone();
        async move {
            let decision = Redeem {
                coupon,
                request: uuid::Uuid::now_v7(),
            };
            client.request(&decision).await
        }
    });
    for done in futures::future::join_all(warm_ups).await {
        done.unwrap_or_else(|e| panic!("a warm-up decision through NATS failed: {e}"));
    }
    if let Some(profile) = profile {
        profile.reset();
    }

    let before: Vec<EngineStats> = workers
        .iter()
        .map(|w| w.dispatcher().engine().stats())
        .collect();
    let (latencies, failed, elapsed) = submit_all(
        workload,
        coupon,
        "a decision through NATS",
        move |decision| {
            let client = client.clone();
            async move { client.request(&decision).await.map(|_| ()) }
        },
    )
    .await;
    // Every reply is sent after its commit, so the counts are complete.
    let stats = workers
        .iter()
        .zip(&before)
        .map(|(w, before)| w.dispatcher().engine().stats().since(before))
        .fold(EngineStats::default(), |sum, s| EngineStats {
            committed: sum.committed + s.committed,
            conflicts: sum.conflicts + s.conflicts,
            batches: sum.batches + s.batches,
            events_read: sum.events_read + s.events_read,
            ..sum
        });

    let stopped = futures::future::join_all(workers.into_iter().map(|worker| async move {
        let dispatcher = worker.dispatcher().clone();
        let id = worker.id().to_owned();
        let stats = worker.shutdown().await;
        dispatcher.shutdown(Drain::Finish).await;
        (id, stats)
    }))
    .await;
    for (id, s) in stopped {
        if s.redelivered + s.replayed + s.failed + s.rejected + s.handed_back > 0 {
            let WorkerStats {
                redelivered,
                replayed,
                failed,
                rejected,
                handed_back,
                ..
            } = s;
            eprintln!(
                "    {id}: {redelivered} redelivered, {replayed} replayed, {failed} failed, \
                 {rejected} rejected, {handed_back} handed back"
            );
        }
    }
    if let Err(e) = delete_stream(&nats.client, &options).await {
        eprintln!(
            "could not delete the benchmark's stream {}: {e}",
            options.stream
        );
    }
    figures_of(workload, &stats, failed, elapsed, latencies)
}
