//! One bad decision in a serial lane's batch on PostgreSQL fails alone: one past a limit
//! every store holds events to is refused before any SQL, with a typed error; one the
//! server refuses for a reason no client foresees (here a trigger) fails with the
//! server's own words, and the rest of its batch commits — through both of the store's
//! batch paths (its SQL function up to `pipeline_above` requests, pipelined past it).

use factum::Outcome;
use factum::lanes::{Dispatcher, Drain, LaneOptions, Strategy};
use factum::prelude::*;
use factum::store::limits::Field;
use factum_examples::coupons::{CouponError, OpenCart, events};
use factum_postgres::PostgresStore;
use tokio::task::JoinHandle;

use crate::gate::Gate;
use crate::postgres::store;

type Answer = Result<Outcome<events::CartEvent>, DecideError<CouponError>>;

fn one_lane(gate: Gate<PostgresStore>) -> Dispatcher<Gate<PostgresStore>> {
    Dispatcher::with_options(
        Engine::new(gate),
        LaneOptions {
            lanes: 1,
            hot_lanes: 0,
            ..LaneOptions::default()
        },
    )
}

fn open(dispatcher: &Dispatcher<Gate<PostgresStore>>, cart: String) -> JoinHandle<Answer> {
    let dispatcher = dispatcher.clone();
    tokio::spawn(async move { dispatcher.decide(OpenCart { cart }).await })
}

/// Opens a plug cart and holds its commit, queues `carts` behind it (one batch, once the
/// plug commits), lets everything through and returns their answers, in order.
async fn in_one_batch(gate: &Gate<PostgresStore>, carts: Vec<String>) -> Vec<Answer> {
    let dispatcher = one_lane(gate.clone());
    assert_eq!(dispatcher.strategy_for::<OpenCart>(), Strategy::SerialLanes);
    let plug = open(&dispatcher, "plug".into());
    gate.until_waiting(1).await;
    let n = carts.len();
    let queued: Vec<JoinHandle<Answer>> = carts.into_iter().map(|c| open(&dispatcher, c)).collect();
    for _ in 0..2_000 {
        if dispatcher.queued() == n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        dispatcher.queued(),
        n,
        "every decision queued behind the plug"
    );
    gate.open_all();
    assert!(plug.await.unwrap().is_ok(), "the plug commits");
    let mut answers = Vec::with_capacity(n);
    for answer in queued {
        answers.push(answer.await.unwrap());
    }
    assert_eq!(
        gate.sizes(),
        vec![1, n],
        "the plug alone, then one batch of all the others"
    );
    dispatcher.shutdown(Drain::Finish).await;
    answers
}

/// `len` pseudo-random letters and digits (xorshift): text PostgreSQL cannot compress
/// below its index row limit.
fn incompressible(len: usize) -> String {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b"0123456789abcdefghijklmnopqrstuvwxyz"[(state % 36) as usize])
        })
        .collect()
}

async fn carts_opened(store: &PostgresStore) -> usize {
    let query = Query::item(QueryItem::types(["CartOpened"]));
    futures::TryStreamExt::try_collect::<Vec<_>>(store.read(&query, ReadOptions::forward()))
        .await
        .unwrap()
        .len()
}

/// 41 decisions in one lane, one opening a cart whose id (a tag value) is 3,000 random
/// bytes, past [`MAX_TAG_VALUE_BYTES`](factum::store::limits::MAX_TAG_VALUE_BYTES),
/// another one whose id holds a NUL: the 39 others commit, and those two fail alone with
/// a typed refusal naming the tag value (the lane's read of their states, by those
/// values, finds nothing and fails nothing). Batches of 40 (the pipelined path) and of 4
/// (the SQL function).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_decision_past_a_limit_fails_alone_in_its_lanes_batch() {
    for size in [40, 4] {
        let pg = store("isolation_limit").await;
        let gate = Gate::new(pg.clone());
        let long = incompressible(3_000);
        let bad = [size / 2, size / 2 + 1];
        let carts = (0..size)
            .map(|i| match i {
                _ if i == bad[0] => long.clone(),
                _ if i == bad[1] => "nul\0cart".to_owned(),
                _ => format!("cart-{i}"),
            })
            .collect();
        let answers = in_one_batch(&gate, carts).await;
        for (i, answer) in answers.iter().enumerate() {
            if bad.contains(&i) {
                assert!(
                    matches!(answer, Err(DecideError::Unstorable { error, .. }) if error.field == Field::TagValue),
                    "batch of {size}: the bad decision must be refused as unstorable, got {:?}",
                    answer
                        .as_ref()
                        .map(|o| o.positions.clone())
                        .map_err(ToString::to_string)
                );
            } else if let Err(e) = answer {
                panic!("batch of {size}: decision {i} must commit, got: {e}");
            }
        }
        assert_eq!(
            carts_opened(&pg).await,
            size - 1,
            "the plug and the good ones"
        );
        pg.drop_schema().await.unwrap();
    }
}

/// A trigger raises for one cart: the decision opening it fails with the server's
/// SQLSTATE, message, detail and hint in its error, and the rest of its lane's batch
/// commits. Both batch paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_decision_the_server_refuses_fails_alone_with_the_servers_words() {
    for size in [40, 4] {
        let pg = store("isolation_trigger").await;
        refuse_cart(&pg, "cart-evil").await;
        let gate = Gate::new(pg.clone());
        let bad = size / 2;
        let carts = (0..size)
            .map(|i| {
                if i == bad {
                    "cart-evil".to_owned()
                } else {
                    format!("cart-{i}")
                }
            })
            .collect();
        let answers = in_one_batch(&gate, carts).await;
        for (i, answer) in answers.iter().enumerate() {
            match answer {
                Err(DecideError::Store(e)) if i == bad => {
                    let text = factum::ErrorChain(e).to_string();
                    for part in [
                        "P0001",
                        "no evil carts",
                        "cart-evil is banned",
                        "ask an admin",
                    ] {
                        assert!(
                            text.contains(part),
                            "batch of {size}: {text:?} lacks {part:?}"
                        );
                    }
                }
                Err(e) => panic!("batch of {size}: decision {i}: {e}"),
                Ok(_) if i == bad => panic!("batch of {size}: the evil cart opened"),
                Ok(_) => {}
            }
        }
        assert_eq!(carts_opened(&pg).await, size, "the plug and the good ones");
        pg.drop_schema().await.unwrap();
    }
}

/// Installs a trigger on the store's events table that raises for the opening of `cart`.
async fn refuse_cart(store: &PostgresStore, cart: &str) {
    let url = factum_postgres::PostgresOptions::from_env(store.schema()).url;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(connection);
    let schema = store.schema();
    let tag = format!("4:cart:{cart}");
    client
        .batch_execute(&format!(
            "CREATE FUNCTION \"{schema}\".refuse() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.tags @> ARRAY['{tag}'] THEN
                     RAISE EXCEPTION 'no evil carts'
                         USING DETAIL = '{cart} is banned', HINT = 'ask an admin';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON \"{schema}\".events
                 FOR EACH ROW EXECUTE FUNCTION \"{schema}\".refuse();"
        ))
        .await
        .expect("install the trigger");
}

/// Outside lanes, the engine refuses the same decision with the same typed error, after
/// one attempt: retrying cannot help.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_refuses_a_decision_past_a_limit_without_retrying() {
    let pg = store("isolation_engine").await;
    let engine = Engine::new(pg.clone());
    let refused = engine
        .decide(&OpenCart {
            cart: "nul\0cart".into(),
        })
        .await;
    assert!(
        matches!(&refused, Err(DecideError::Unstorable { decision: "OpenCart", error }) if error.field == Field::TagValue),
        "{:?}",
        refused.map(|o| o.positions)
    );
    assert_eq!(engine.stats().conflicts, 0);
    assert_eq!(carts_opened(&pg).await, 0);
    pg.drop_schema().await.unwrap();
}
