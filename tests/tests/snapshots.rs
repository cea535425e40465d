//! Snapshots: a state with `#[state(snapshot_every = N)]` is restored from its snapshot
//! and folds only the events after it; a snapshot that is stale (another query) or no
//! longer decodes is ignored and rebuilt; states of one decision restored at different
//! positions each take every event exactly once.

use factum::SnapshotStore;
use factum::model::Payload;
use factum::prelude::*;
use factum::store::StoreLayer;
use factum::{Codec, Snapshot};
use serde::{Deserialize, Serialize};

#[factum::events]
pub mod bank {
    pub struct Deposited {
        #[tag]
        pub account: String,
        pub amount: u64,
    }
    pub struct Noted {
        #[tag]
        pub account: String,
        pub text: String,
    }
}

/// Keeps snapshots every 10 events read.
#[derive(State, Debug, Default, PartialEq, Serialize, Deserialize)]
#[state(snapshot_every = 10)]
pub struct Balance {
    #[id]
    pub account: String,
    pub total: u64,
    pub deposits: u64,
}

#[factum::fold]
impl Balance {
    fn deposited(&mut self, e: &bank::Deposited) {
        self.total += e.amount;
        self.deposits += 1;
    }
}

/// Folds the same events without snapshots: the reference.
#[derive(State, Debug, Default, PartialEq)]
pub struct Plain {
    #[id]
    pub account: String,
    pub total: u64,
    pub deposits: u64,
}

#[factum::fold]
impl Plain {
    fn deposited(&mut self, e: &bank::Deposited) {
        self.total += e.amount;
        self.deposits += 1;
    }
}

/// Another snapshotting state over the same account, with its own snapshot.
#[derive(State, Debug, Default, PartialEq, Serialize, Deserialize)]
#[state(snapshot_every = 3)]
pub struct Notes {
    #[id]
    pub account: String,
    pub count: u64,
    pub deposits_seen: u64,
}

#[factum::fold]
impl Notes {
    fn noted(&mut self, _: &bank::Noted) {
        self.count += 1;
    }
    fn deposited(&mut self, _: &bank::Deposited) {
        self.deposits_seen += 1;
    }
}

async fn deposit(store: &MemoryStore, account: &str, amounts: impl IntoIterator<Item = u64>) {
    for amount in amounts {
        let e = bank::Deposited {
            account: account.into(),
            amount,
        };
        store
            .append(vec![NewEvent::encode(&e, Codec::Json).unwrap()], None)
            .await
            .unwrap();
    }
}

async fn note(store: &MemoryStore, account: &str) {
    let e = bank::Noted {
        account: account.into(),
        text: "n".into(),
    };
    store
        .append(vec![NewEvent::encode(&e, Codec::Json).unwrap()], None)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_restored_state_reads_only_what_follows_its_snapshot() {
    let store = MemoryStore::new();
    deposit(&store, "a", 1..=25).await;
    deposit(&store, "b", [100]).await;
    let engine = Engine::new(store.clone());

    let (first, at) = engine.load(Balance::new("a")).await.unwrap();
    assert_eq!((first.total, first.deposits), ((1..=25).sum(), 25));
    assert_eq!(at, Some(Position(25)));
    let stats = engine.stats();
    assert_eq!(
        (
            stats.events_read,
            stats.snapshots_restored,
            stats.snapshots_saved
        ),
        (25, 0, 1)
    );
    let saved = store
        .load_snapshot(&Balance::new("a").snapshot_key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(saved.position, Position(25));

    // Nothing new: restored, nothing read, the same state and position.
    let (again, at) = engine.load(Balance::new("a")).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(
        at,
        Some(Position(25)),
        "the position a restored state reflects"
    );
    let stats = engine.stats();
    assert_eq!(
        (
            stats.events_read,
            stats.snapshots_restored,
            stats.snapshots_saved
        ),
        (25, 1, 1)
    );

    // Five more: only they are read, and that is below `every`, so no new snapshot.
    deposit(&store, "a", [1000; 5]).await;
    let (later, at) = engine.load(Balance::new("a")).await.unwrap();
    assert_eq!((later.total, later.deposits), (325 + 5000, 30));
    assert_eq!(at, Some(Position(31)));
    let stats = engine.stats();
    assert_eq!(
        (
            stats.events_read,
            stats.snapshots_restored,
            stats.snapshots_saved
        ),
        (30, 2, 1)
    );
    let (plain, _) = engine.load(Plain::new("a")).await.unwrap();
    assert_eq!((plain.total, plain.deposits), (later.total, later.deposits));
}

#[tokio::test]
async fn stale_or_undecodable_snapshots_are_ignored_and_rebuilt() {
    let store = MemoryStore::new();
    deposit(&store, "a", 1..=12).await;
    let engine = Engine::new(store.clone());
    let key = Balance::new("a").snapshot_key();
    let query = State::query(&Balance::new("a")).to_string();
    let cases = [
        (
            "bytes of another shape",
            query.clone(),
            br#"{"account":"a","sum":1}"#.to_vec(),
        ),
        ("not JSON", query.clone(), b"\xff\x00".to_vec()),
        (
            "another query",
            "types Other".to_owned(),
            br#"{"account":"a","total":1,"deposits":1}"#.to_vec(),
        ),
        (
            "another entity",
            query.clone(),
            br#"{"account":"z","total":1,"deposits":1}"#.to_vec(),
        ),
    ];
    for (what, query, bytes) in cases {
        store
            .save_snapshot(Snapshot {
                key: key.clone(),
                query,
                position: Position(12),
                payload: Payload {
                    codec: Codec::Json,
                    bytes,
                },
            })
            .await
            .unwrap();
        let before = engine.stats();
        let (state, _) = engine.load(Balance::new("a")).await.unwrap();
        assert_eq!(
            (state.total, state.deposits),
            ((1..=12).sum(), 12),
            "{what}: folded from the log"
        );
        let after = engine.stats();
        assert_eq!(
            after.snapshots_restored, before.snapshots_restored,
            "{what}: not restored"
        );
        assert_eq!(
            after.events_read - before.events_read,
            12,
            "{what}: read from the start"
        );
        let rebuilt = store.load_snapshot(&key).await.unwrap().unwrap();
        assert_eq!(
            Balance::from_snapshot(&rebuilt.payload.bytes).unwrap(),
            state,
            "{what}: the snapshot was rebuilt"
        );
    }
}

#[tokio::test]
async fn states_restored_at_different_positions_take_each_event_once() {
    let store = MemoryStore::new();
    let engine = Engine::new(store.clone());
    // Interleave deposits and notes; load the pair now and then, so the two states save
    // snapshots at different positions.
    let mut expected_notes = 0;
    let mut expected_total = 0;
    for round in 0..40u64 {
        if round % 3 == 0 {
            note(&store, "a").await;
            expected_notes += 1;
        } else {
            deposit(&store, "a", [round]).await;
            expected_total += round;
        }
        if round % 7 == 0 {
            let ((balance, notes), _) = engine
                .load((Balance::new("a"), Notes::new("a")))
                .await
                .unwrap();
            assert_eq!(balance.total, expected_total, "round {round}");
            assert_eq!(notes.count, expected_notes, "round {round}");
            assert_eq!(notes.deposits_seen, balance.deposits, "round {round}");
        }
    }
    let ((balance, notes), _) = engine
        .load((Balance::new("a"), Notes::new("a")))
        .await
        .unwrap();
    let (plain, _) = engine.load(Plain::new("a")).await.unwrap();
    assert_eq!(
        (balance.total, balance.deposits),
        (plain.total, plain.deposits)
    );
    assert_eq!(notes.count, expected_notes);
    assert_eq!(notes.deposits_seen, plain.deposits);
    let stats = engine.stats();
    assert!(
        stats.snapshots_restored > 0 && stats.snapshots_saved > 1,
        "{stats:?}"
    );
    let a = store
        .load_snapshot(&Balance::new("a").snapshot_key())
        .await
        .unwrap()
        .unwrap();
    let b = store
        .load_snapshot(&Notes::new("a").snapshot_key())
        .await
        .unwrap()
        .unwrap();
    assert!(a.position != b.position || a.position.0 > 0, "both saved");
}

/// A decision over a restored state appends under a condition after the snapshot's
/// position: no false conflict, and a real one is still caught.
#[tokio::test]
async fn decisions_over_restored_states_keep_their_guarantees() {
    #[derive(Decision, Clone)]
    #[decision(retries = 0)]
    struct Withdraw {
        account: String,
        amount: u64,
    }
    impl Decide for Withdraw {
        type State = Balance;
        type Event = bank::Event;
        type Error = String;
        fn state(&self) -> Balance {
            Balance::new(self.account.clone())
        }
        fn decide(&self, b: &Balance) -> Result<Vec<bank::Event>, String> {
            if b.total < self.amount {
                return Err(format!("balance {} is below {}", b.total, self.amount));
            }
            Ok(vec![
                bank::Noted {
                    account: self.account.clone(),
                    text: format!("-{}", self.amount),
                }
                .into(),
            ])
        }
    }
    let store = MemoryStore::new();
    deposit(&store, "a", [5; 20]).await;
    let engine = Engine::new(store.clone());
    let w = Withdraw {
        account: "a".into(),
        amount: 50,
    };
    assert_eq!(engine.decide(&w).await.unwrap().attempts, 1);
    assert_eq!(engine.stats().snapshots_saved, 1);
    let out = engine.decide(&w).await.unwrap();
    assert_eq!(
        out.attempts, 1,
        "a restored state must not conflict with its own past"
    );
    assert_eq!(engine.stats().snapshots_restored, 1);
    // Another deposit lands between the read and the append of a decision whose state
    // was restored: the condition after the snapshot's position still sees it.
    let (state, after) = engine.load(Balance::new("a")).await.unwrap();
    deposit(&store, "a", [1]).await;
    let condition = factum::AppendCondition::new(Withdraw::validation_query(&state), after);
    let e = NewEvent::encode(
        &bank::Noted {
            account: "a".into(),
            text: "x".into(),
        },
        Codec::Json,
    )
    .unwrap();
    let result = store.append(vec![e], Some(condition)).await;
    assert!(
        matches!(result, Err(factum::AppendError::Conflict { .. })),
        "{result:?}"
    );
}

/// A state without snapshots in the same set makes the read start at the beginning, but
/// the snapshotting state is still restored, and saved again only after `every` new
/// events past its snapshot (not on every load).
#[tokio::test]
async fn a_mixed_set_saves_snapshots_only_after_enough_new_events() {
    let store = MemoryStore::new();
    deposit(&store, "a", 1..=12).await;
    let engine = Engine::new(store.clone());
    let pair = || (Balance::new("a"), Plain::new("a"));
    let ((b, p), _) = engine.load(pair()).await.unwrap();
    assert_eq!((b.total, p.total), (78, 78));
    assert_eq!(engine.stats().snapshots_saved, 1);
    for _ in 0..3 {
        let ((b, p), _) = engine.load(pair()).await.unwrap();
        assert_eq!((b.total, b.deposits, p.total), (78, 12, 78));
    }
    let stats = engine.stats();
    assert_eq!(
        (stats.snapshots_restored, stats.snapshots_saved),
        (3, 1),
        "{stats:?}"
    );
    deposit(&store, "a", [1; 10]).await;
    let ((b, p), _) = engine.load(pair()).await.unwrap();
    assert_eq!((b.total, p.total), (88, 88));
    assert_eq!(
        engine.stats().snapshots_saved,
        2,
        "10 new events past the snapshot"
    );
}

/// A store that cannot load snapshots (a damaged row, a codec from a newer release):
/// the state is folded from the log, and nothing fails.
#[tokio::test]
async fn a_snapshot_the_store_cannot_load_is_a_miss() {
    #[derive(Clone)]
    struct Unreadable(MemoryStore);

    impl StoreLayer for Unreadable {
        type Inner = MemoryStore;

        fn inner(&self) -> &MemoryStore {
            &self.0
        }

        async fn load_snapshot(&self, _: &str) -> Result<Option<Snapshot>, factum::StoreError> {
            Err(factum::StoreError::backend(std::io::Error::other(
                "snapshot row damaged",
            )))
        }
    }

    let store = MemoryStore::new();
    deposit(&store, "a", 1..=12).await;
    let engine = Engine::new(Unreadable(store));
    for _ in 0..2 {
        let (b, _) = engine.load(Balance::new("a")).await.unwrap();
        assert_eq!((b.total, b.deposits), (78, 12));
    }
    assert_eq!(engine.stats().snapshots_restored, 0);
}

/// Counts deposits above a threshold the command sets: what it folds depends on its start.
#[derive(State, Debug, Default, PartialEq, Serialize, Deserialize)]
#[state(snapshot_every = 1)]
pub struct Large {
    #[id]
    pub account: String,
    pub above: u64,
    pub count: u64,
}

#[factum::fold]
impl Large {
    fn deposited(&mut self, e: &bank::Deposited) {
        if e.amount > self.above {
            self.count += 1;
        }
    }
}

/// The same with the threshold left out of the snapshot's encoding.
#[derive(State, Debug, Default, PartialEq, Serialize, Deserialize)]
#[state(snapshot_every = 1)]
pub struct LargeSkipped {
    #[id]
    pub account: String,
    #[serde(skip)]
    pub above: u64,
    pub count: u64,
}

#[factum::fold]
impl LargeSkipped {
    fn deposited(&mut self, e: &bank::Deposited) {
        if e.amount > self.above {
            self.count += 1;
        }
    }
}

#[tokio::test]
async fn a_snapshot_is_restored_only_into_a_state_built_from_the_same_start() {
    let store = MemoryStore::new();
    let engine = Engine::new(store.clone());
    deposit(&store, "a", 1..=10).await;
    let large = |above| Large {
        above,
        ..Large::new("a")
    };
    let (state, _) = engine.load(large(5)).await.unwrap();
    assert_eq!(state.count, 5);
    // Another threshold: the snapshot folded above 5 is not restored into it...
    let (state, _) = engine.load(large(8)).await.unwrap();
    assert_eq!(state.count, 2, "folded on its own start");
    assert_eq!(engine.stats().snapshots_restored, 0);
    // ...and replaces it under the one key of the state, instead of piling up.
    let saved = store
        .load_snapshot(&Large::new("a").snapshot_key())
        .await
        .unwrap()
        .unwrap();
    assert!(saved.query.contains("\"above\":8"), "{}", saved.query);
    let (state, _) = engine.load(large(8)).await.unwrap();
    assert_eq!(
        (state.count, engine.stats().snapshots_restored),
        (2, 1),
        "the same start is restored"
    );
}

#[tokio::test]
async fn a_start_its_encoding_loses_keeps_no_snapshots() {
    let store = MemoryStore::new();
    let engine = Engine::new(store.clone());
    deposit(&store, "a", 1..=10).await;
    let large = |above| LargeSkipped {
        above,
        ..LargeSkipped::new("a")
    };
    assert_eq!(engine.load(large(5)).await.unwrap().0.count, 5);
    assert_eq!(engine.load(large(8)).await.unwrap().0.count, 2);
    let stats = engine.stats();
    assert_eq!((stats.snapshots_saved, stats.snapshots_restored), (0, 0));
}
