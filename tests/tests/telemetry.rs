//! What factum reports: metrics through the `metrics` facade, spans through `tracing`,
//! recorded by a real recorder and subscriber on the test's thread while real decisions
//! run (optimistic, with a staged conflict, and in serial lanes) and a subscription
//! tails the log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use factum::lanes::{Dispatcher, Drain, Strategy};
use factum::listen::{HandlerError, Subscription};
use factum::prelude::*;
use factum::telemetry;
use factum::{Codec, Context};
use factum_tests::races::interfering;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tracing::span;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

#[factum::events]
pub mod seats {
    pub struct SeatsAdded {
        #[tag]
        pub show: String,
        pub seats: u32,
    }
    pub struct SeatTaken {
        #[tag]
        pub show: String,
    }
}

#[derive(State, Default)]
struct Show {
    #[id]
    show: String,
    free: u32,
}

#[factum::fold]
impl Show {
    fn added(&mut self, e: &seats::SeatsAdded) {
        self.free += e.seats;
    }
    fn taken(&mut self, _: &seats::SeatTaken) {
        self.free = self.free.saturating_sub(1);
    }
}

#[derive(Decision, Clone)]
#[decision(partition = show, retries = 3, min_delay_ms = 1, max_delay_ms = 2)]
struct TakeSeat {
    show: String,
}

impl Decide for TakeSeat {
    type State = Show;
    type Event = seats::Event;
    type Error = String;
    fn state(&self) -> Show {
        Show::new(&self.show)
    }
    fn decide(&self, show: &Show) -> Result<Vec<seats::Event>, String> {
        if show.free == 0 {
            return Err(format!("{} is full", self.show));
        }
        Ok(vec![
            seats::SeatTaken {
                show: self.show.clone(),
            }
            .into(),
        ])
    }
}

#[derive(Default)]
struct Taken {
    seen: u32,
}

#[factum::listener(name = "taken-seats")]
impl Taken {
    async fn taken(&mut self, _: &seats::SeatTaken) -> Result<(), HandlerError> {
        self.seen += 1;
        Ok(())
    }
}

fn added(show: &str, seats: u32) -> NewEvent {
    let event = seats::SeatsAdded {
        show: show.into(),
        seats,
    };
    NewEvent::encode(&event, Codec::Json).unwrap()
}

/// A span's name and its parent's.
type Opened = (String, Option<String>);

/// A metric's name, labels and value.
type Recorded = (String, Vec<(String, String)>, DebugValue);

/// Each span's name with its parent's, as the subscriber saw them open.
#[derive(Clone, Default)]
struct Parents(Arc<Mutex<Vec<Opened>>>);

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Parents {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: LayerContext<'_, S>) {
        let parent = ctx
            .span(id)
            .and_then(|span| span.parent())
            .map(|parent| parent.name().to_owned());
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        seen.push((attrs.metadata().name().to_owned(), parent));
    }
}

/// The recorded value of metric `name` with `labels`.
fn value<'a>(
    metrics: &'a [Recorded],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a DebugValue> {
    metrics
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
}

#[test]
fn decisions_lanes_and_listeners_report_their_metrics_and_spans() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let parents = Parents::default();
    let subscriber = tracing_subscriber::registry().with(parents.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(async {
                // Optimistic: one conflict staged between a read and its append, retried.
                let store = MemoryStore::new();
                store.append(vec![added("a", 2)], None).await.unwrap();
                let engine = Engine::new(interfering(store.clone(), 1, || added("a", 0)));
                let take = TakeSeat { show: "a".into() };
                let outcome = engine.decide(&take).await.unwrap();
                assert_eq!(outcome.attempts, 2);
                engine.decide(&take).await.unwrap();
                engine.decide(&take).await.unwrap_err();

                // Serial lanes, submitted inside a caller's span.
                store.append(vec![added("b", 5)], None).await.unwrap();
                let dispatcher = Dispatcher::new(Engine::new(store.clone()));
                let callers = [
                    tracing::info_span!("request_a"),
                    tracing::info_span!("request_b"),
                ];
                let mut submitted = Vec::new();
                for n in 0..6 {
                    let d = dispatcher.clone();
                    let take = TakeSeat { show: "b".into() };
                    submitted.push(tokio::spawn(tracing::Instrument::instrument(
                        async move {
                            d.decide_using(take, Strategy::SerialLanes, Context::default())
                                .await
                        },
                        callers[n % 2].clone(),
                    )));
                }
                let mut refused = 0;
                for task in submitted {
                    if task.await.unwrap().is_err() {
                        refused += 1;
                    }
                }
                assert_eq!(refused, 1, "5 seats for 6");
                // One submitted outside any span: a child of its lane's batch.
                let alone = dispatcher
                    .decide_using(
                        TakeSeat { show: "b".into() },
                        Strategy::SerialLanes,
                        Context::default(),
                    )
                    .await;
                assert!(alone.is_err(), "no seat left for it");
                // One after the shutdown: answered Stopped, and counted as failed.
                dispatcher.shutdown(Drain::Finish).await;
                let stopped = dispatcher.decide(TakeSeat { show: "b".into() }).await;
                assert!(matches!(stopped, Err(factum::DecideError::Stopped { .. })));

                // A subscription tailing the log.
                let mut subscription = Subscription::listener(store.clone(), Taken::default());
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let mut committed = subscription.committed();
                let running = tokio::spawn(async move {
                    subscription
                        .run(async {
                            let _ = stopped.await;
                        })
                        .await
                });
                let head = store.head().await.unwrap().unwrap();
                committed
                    .wait_for(|at| *at >= Position(head.0 - 1))
                    .await
                    .unwrap();
                stop.send(()).unwrap();
                running.await.unwrap().unwrap();
            });
        });
    });

    let metrics: Vec<Recorded> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.name().to_owned(), labels, value)
        })
        .collect();
    let take = TakeSeat::META.name;
    let count = |outcome: &str| {
        value(
            &metrics,
            telemetry::DECISIONS,
            &[("decision", take), ("outcome", outcome)],
        )
    };
    // 2 optimistic + 5 in lanes committed; 1 optimistic + 2 in lanes refused; the one
    // after the shutdown failed.
    assert_eq!(
        count("committed"),
        Some(&DebugValue::Counter(7)),
        "{metrics:?}"
    );
    assert_eq!(
        count("refused"),
        Some(&DebugValue::Counter(3)),
        "{metrics:?}"
    );
    assert_eq!(
        count("failed"),
        Some(&DebugValue::Counter(1)),
        "{metrics:?}"
    );
    let conflicts = value(&metrics, telemetry::CONFLICTS, &[("decision", take)]);
    assert_eq!(conflicts, Some(&DebugValue::Counter(1)), "{metrics:?}");
    let retries = value(&metrics, telemetry::RETRIES, &[("decision", take)]);
    assert_eq!(retries, Some(&DebugValue::Counter(1)), "{metrics:?}");
    match value(&metrics, telemetry::DECISION_SECONDS, &[("decision", take)]) {
        Some(DebugValue::Histogram(seconds)) => assert_eq!(seconds.len(), 11),
        other => panic!("decision latencies: {other:?}"),
    }
    match value(&metrics, telemetry::LANE_BATCH_SIZE, &[]) {
        Some(DebugValue::Histogram(sizes)) => {
            let committed: f64 = sizes.iter().map(|s| s.into_inner()).sum();
            assert_eq!(
                committed, 5.0,
                "the five seats, in however many batches: {sizes:?}"
            )
        }
        other => panic!("lane batch sizes: {other:?}"),
    }
    assert!(value(&metrics, telemetry::LANE_QUEUE_DEPTH, &[]).is_some());
    assert!(
        matches!(
            value(&metrics, telemetry::LISTENER_LAG, &[("listener", "taken-seats")]),
            Some(DebugValue::Gauge(lag)) if lag.into_inner() == 0.0
        ),
        "caught up: {metrics:?}"
    );

    let spans = parents.0.lock().unwrap().clone();
    let parent_of = |name: &str| -> HashMap<Option<String>, usize> {
        let mut parents = HashMap::new();
        for (_, parent) in spans.iter().filter(|(n, _)| n == name) {
            *parents.entry(parent.clone()).or_default() += 1;
        }
        parents
    };
    assert_eq!(
        parent_of("decide_in_lane"),
        HashMap::from([
            (Some("request_a".to_owned()), 3),
            (Some("request_b".to_owned()), 3),
            (Some("lane_batch".to_owned()), 1),
        ]),
        "each decision in the lane is a child of its caller's span: {spans:?}"
    );
    assert_eq!(
        parent_of("attempt").get(&Some("decide".to_owned())),
        Some(&4)
    );
    assert!(spans.iter().any(|(n, _)| n == "lane_batch"), "{spans:?}");
    assert!(
        spans.iter().any(|(n, _)| n == "listener_batch"),
        "{spans:?}"
    );
}
