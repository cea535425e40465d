//! A batch takes one of two paths: up to `PostgresOptions::pipeline_above` requests, one
//! call of the SQL function `append_batch`; past it, pipelined prepared statements. Both
//! must give the same results and write the same log: the same batches run here through
//! each path (forced by the option) on stores in the same state, and at the default
//! threshold on both sides of it.

mod common;

use factum::{
    AppendCondition, AppendError, AppendRequest, Appended, EventStore, NewEvent, Position, Query,
    QueryItem, StoredEvent, Tag,
};
use factum_postgres::{PIPELINE_ABOVE, PostgresStore};

/// Every batch goes through the function.
const FUNCTION: usize = usize::MAX;
/// Every batch (of at least one request) is pipelined.
const PIPELINED: usize = 0;

type Results = Vec<Result<Appended, AppendError>>;

fn event(event_type: &str, tags: &[(&str, &str)]) -> NewEvent {
    common::event(event_type, tags)
}

fn keyed(event_type: &str, tags: &[(&str, &str)], key: &str) -> NewEvent {
    let mut e = event(event_type, tags);
    e.metadata.idempotency_key = Some(key.to_owned());
    e
}

fn on(tags: &[(&str, &str)], after: Option<Position>) -> Option<AppendCondition> {
    let tags = tags.iter().map(|(k, v)| Tag::new(*k, *v));
    Some(AppendCondition::new(
        Query::item(QueryItem::any().with_tags(tags)),
        after,
    ))
}

fn of_type(event_type: &str, after: Option<Position>) -> Option<AppendCondition> {
    Some(AppendCondition::new(
        Query::item(QueryItem::types([event_type])),
        after,
    ))
}

/// What the stores hold before the batch: three events, two keys.
async fn prepare(store: &PostgresStore) {
    let appends = [
        vec![event("Seat", &[("course", "stored")])],
        vec![
            keyed("Paid", &[("order", "o1")], "key-b"),
            keyed("Paid", &[("order", "o1")], "key-d"),
        ],
    ];
    for (n, mut events) in appends.into_iter().enumerate() {
        for (m, e) in events.iter_mut().enumerate() {
            // The same ids in every store, for the logs to compare equal.
            e.metadata.id = uuid::Uuid::from_u128((n * 10 + m + 1) as u128);
        }
        store
            .append(events, None)
            .await
            .unwrap_or_else(|e| panic!("preparing the store failed: {e}"));
    }
}

/// A batch with every kind of outcome; the comments say what each request gets.
fn scenario() -> Vec<AppendRequest> {
    let mut nul = event("Seat", &[("course", "nul")]);
    nul.tags.push(Tag::new("bad", "a\0b"));
    vec![
        // 0: ok, two events.
        AppendRequest::new(
            vec![
                event("Seat", &[("course", "c1")]),
                event("Seat", &[("course", "c1")]),
            ],
            on(&[("course", "c1")], None),
        ),
        // 1: conflict with request 0 (in the batch).
        AppendRequest::new(
            vec![event("Seat", &[("course", "c1")])],
            on(&[("course", "c1")], None),
        ),
        // 2: ok: builds on 0, whose events are exempt.
        AppendRequest::new(
            vec![event("Seat", &[("course", "c1")])],
            on(&[("course", "c1")], None),
        )
        .building_on([0]),
        // 3: conflict with the stored event, never exempt.
        AppendRequest::new(
            vec![event("Seat", &[("course", "stored")])],
            on(&[("course", "stored")], None),
        )
        .building_on([0]),
        // 4: dependency: 3 failed.
        AppendRequest::new(vec![event("Seat", &[("course", "c4")])], None).building_on([2, 3]),
        // 5: empty.
        AppendRequest::new(Vec::new(), None),
        // 6: dependency on the empty one.
        AppendRequest::new(vec![event("Seat", &[("course", "c6")])], None).building_on([5]),
        // 7: unstorable (a NUL in a tag), refused alone.
        AppendRequest::new(vec![nul], None),
        // 8: ok with two keys.
        AppendRequest::new(
            vec![
                keyed("Paid", &[("order", "o2")], "key-c"),
                keyed("Paid", &[("order", "o2")], "key-a"),
            ],
            None,
        ),
        // 9: duplicate, in byte order the first of its keys recorded: key-a (request 8),
        // before key-b (stored), although it is also conflicting.
        AppendRequest::new(
            vec![
                keyed("Paid", &[("order", "o9")], "key-b"),
                keyed("Paid", &[("order", "o9")], "key-a"),
            ],
            of_type("Seat", None),
        ),
        // 10: duplicate of a stored key (key-d).
        AppendRequest::new(vec![keyed("Paid", &[("order", "o10")], "key-d")], None),
        // 11: ok: a condition matching no stored event.
        AppendRequest::new(
            vec![event("Seat", &[("course", "c11")])],
            of_type("Never", None),
        ),
        // 12: conflict: a condition on everything, after the stored events: request 0's
        // first event is the lowest.
        AppendRequest::new(
            vec![event("Seat", &[("course", "c12")])],
            Some(AppendCondition::new(Query::all(), Some(Position(3)))),
        ),
        // 13: ok: the condition on everything, building on every accepted request so far.
        AppendRequest::new(
            vec![event("Seat", &[("course", "c13")])],
            Some(AppendCondition::new(Query::all(), Some(Position(3)))),
        )
        .building_on([11, 8, 2, 0]),
        // 14: dependency: builds on itself.
        AppendRequest::new(vec![event("Seat", &[("course", "c14")])], None).building_on([14]),
        // 15: dependency: builds on a later request, and on one past the end.
        AppendRequest::new(vec![event("Seat", &[("course", "c15")])], None).building_on([16]),
        AppendRequest::new(vec![event("Seat", &[("course", "c16")])], None).building_on([1000]),
        // 17: conflict on a type, with a position after request 0's events: request 2's.
        AppendRequest::new(
            vec![event("Seat", &[("course", "c17")])],
            of_type("Seat", Some(Position(5))),
        ),
        // 18: a key recorded by a failed request (9) is not recorded: ok.
        AppendRequest::new(vec![keyed("Paid", &[("order", "o18")], "key-e")], None),
        // 19: duplicate of key-e from request 18, within the batch.
        AppendRequest::new(vec![keyed("Paid", &[("order", "o19")], "key-e")], None),
        // 20: refused: a condition on a query of no item guards nothing.
        AppendRequest::new(
            vec![event("Seat", &[("course", "c20")])],
            Some(AppendCondition::new(Query::none(), None)),
        ),
        // 21: dependency on the refused one.
        AppendRequest::new(vec![event("Seat", &[("course", "c21")])], None).building_on([20]),
    ]
}

/// The batch's results and the whole log, on a fresh store taking `pipeline_above`.
async fn run(what: &str, pipeline_above: usize, batch: Vec<AppendRequest>) -> (Results, Log) {
    let (store, _guard) = common::store_with(what, |o| o.pipeline_above = pipeline_above).await;
    prepare(&store).await;
    let results = store
        .append_batch(batch)
        .await
        .unwrap_or_else(|e| panic!("a batch failed as a whole ({what}): {e}"));
    let log = common::read_all(&store)
        .await
        .iter()
        .map(Logged::from)
        .collect();
    (results, log)
}

type Log = Vec<Logged>;

/// A stored event without its recording time.
#[derive(Debug, PartialEq)]
struct Logged {
    position: Position,
    event_type: String,
    tags: Vec<Tag>,
    metadata: factum::Metadata,
}

impl From<&StoredEvent> for Logged {
    fn from(e: &StoredEvent) -> Self {
        Logged {
            position: e.position,
            event_type: e.event_type.clone(),
            tags: e.tags.clone(),
            metadata: e.metadata.clone(),
        }
    }
}

fn describe(results: &Results) -> Vec<String> {
    results.iter().map(|r| format!("{r:?}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_paths_give_the_same_results_and_log() {
    let batch = scenario();
    let (by_function, function_log) = run("paths_fn", FUNCTION, batch.clone()).await;
    let (pipelined, pipelined_log) = run("paths_pipe", PIPELINED, batch.clone()).await;
    assert_eq!(describe(&by_function), describe(&pipelined));
    assert_eq!(function_log, pipelined_log);

    // And the results are the expected ones (positions: 1 stored, 2-3 keyed stored).
    let ok = |i: usize| match &by_function[i] {
        Ok(a) => a.positions.clone(),
        other => panic!("request {i} should commit, got {other:?}"),
    };
    let err = |i: usize| match &by_function[i] {
        Err(e) => e,
        Ok(a) => panic!("request {i} should fail, committed {a:?}"),
    };
    let conflict = |i: usize, at: Position| {
        assert!(
            matches!(err(i), AppendError::Conflict { position, .. } if *position == at),
            "request {i}: {:?}",
            err(i)
        );
    };
    let dependency = |i: usize, on: usize| {
        assert!(
            matches!(err(i), AppendError::Dependency { index } if *index == on),
            "request {i}: {:?}",
            err(i)
        );
    };
    let duplicate = |i: usize, key: &str, at: &[Position]| {
        assert!(
            matches!(err(i), AppendError::Duplicate { key: k, positions } if k == key && positions == at),
            "request {i}: {:?}",
            err(i)
        );
    };
    // Positions are drawn for the whole batch at once, from 4, in request order; a
    // request failing its checks leaves a gap; refused ones (dependency, empty, a
    // condition guarding nothing, unstorable) draw none.
    assert_eq!(ok(0), [Position(4), Position(5)]);
    conflict(1, Position(4));
    assert_eq!(ok(2), [Position(7)]);
    conflict(3, Position(1));
    dependency(4, 3);
    assert!(matches!(err(5), AppendError::Empty), "{:?}", err(5));
    dependency(6, 5);
    assert!(matches!(err(7), AppendError::Unstorable(_)), "{:?}", err(7));
    let eighth = ok(8);
    assert_eq!(eighth, [Position(9), Position(10)]);
    duplicate(9, "key-a", &eighth);
    duplicate(10, "key-d", &[Position(2), Position(3)]);
    assert_eq!(ok(11), [Position(14)]);
    conflict(12, Position(4));
    assert_eq!(ok(13), [Position(16)]);
    dependency(14, 14);
    dependency(15, 16);
    dependency(16, 1000);
    conflict(17, Position(7));
    let eighteenth = ok(18);
    assert_eq!(eighteenth, [Position(18)]);
    duplicate(19, "key-e", &eighteenth);
    assert!(
        matches!(err(20), AppendError::EmptyCondition),
        "{:?}",
        err(20)
    );
    dependency(21, 20);
    let positions: Vec<Position> = function_log.iter().map(|e| e.position).collect();
    let expected: Vec<Position> = [1, 2, 3, 4, 5, 7, 9, 10, 14, 16, 18]
        .into_iter()
        .map(Position)
        .collect();
    assert_eq!(positions, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_at_the_threshold_and_past_it_agree() {
    // The first requests of the scenario, at the default threshold (the function) and
    // one past it (pipelined), each run both ways.
    let full = scenario();
    for size in [1, PIPELINE_ABOVE, PIPELINE_ABOVE + 1] {
        let batch: Vec<AppendRequest> = full.iter().take(size).cloned().collect();
        let (default, default_log) = run("paths_default", PIPELINE_ABOVE, batch.clone()).await;
        let (by_function, function_log) = run("paths_fn", FUNCTION, batch.clone()).await;
        let (pipelined, pipelined_log) = run("paths_pipe", PIPELINED, batch).await;
        assert_eq!(
            describe(&default),
            describe(&by_function),
            "{size} requests"
        );
        assert_eq!(describe(&default), describe(&pipelined), "{size} requests");
        assert_eq!(default_log, function_log, "{size} requests");
        assert_eq!(default_log, pipelined_log, "{size} requests");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_paths_agree_on_batches_without_writes() {
    // Only failing requests: nothing is written either way.
    let batch = vec![
        AppendRequest::new(
            vec![event("Seat", &[("course", "stored")])],
            on(&[("course", "stored")], None),
        ),
        AppendRequest::new(vec![keyed("Paid", &[("order", "o")], "key-b")], None),
        AppendRequest::new(Vec::new(), None),
    ];
    for pipeline_above in [FUNCTION, PIPELINED] {
        let (store, _guard) =
            common::store_with("paths_none", |o| o.pipeline_above = pipeline_above).await;
        prepare(&store).await;
        let results = store
            .append_batch(batch.clone())
            .await
            .unwrap_or_else(|e| panic!("a batch failed as a whole: {e}"));
        assert!(
            matches!(
                results[..],
                [
                    Err(AppendError::Conflict { .. }),
                    Err(AppendError::Duplicate { .. }),
                    Err(AppendError::Empty)
                ]
            ),
            "{results:?}"
        );
        assert_eq!(common::read_all(&store).await.len(), 3);
    }
}
