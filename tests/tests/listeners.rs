//! Listeners on the in-memory store: what `#[factum::listener]` generates, and how a
//! subscription retries, dead-letters, stops, compensates and reports undecodable events.

use std::time::Duration;

use factum::listen::{
    HandlerError, Listener, ListenerStore, OnFailure, Subscription, SubscriptionError,
    SubscriptionOptions,
};
use factum::model::Payload;
use factum::prelude::*;
use factum::{Codec, QueryItem, Tag};

#[factum::events]
pub mod shop {
    pub struct CouponIssued {
        #[tag]
        pub coupon: String,
        pub uses: u32,
    }
    pub struct CouponApplied {
        #[tag]
        pub coupon: String,
        #[tag]
        pub cart: String,
    }
    pub struct CartOpened {
        #[tag]
        pub cart: String,
    }
}

use shop::{CartOpened, CouponApplied, CouponIssued};

/// Counts uses per coupon; fails on purpose as told.
#[derive(Default)]
struct Uses {
    issued: Vec<(String, u32, Position)>,
    applied: Vec<String>,
    /// Fail this many times (transiently) before handling an application.
    flaky: u32,
    /// Refuse applications to this cart for good.
    poison: Option<String>,
}

#[factum::listener(name = "coupon-uses")]
impl Uses {
    fn issued(&mut self, e: &CouponIssued, stored: &StoredEvent) {
        self.issued
            .push((e.coupon.clone(), e.uses, stored.position));
    }

    async fn applied(&mut self, e: &CouponApplied) -> Result<(), HandlerError> {
        if self.poison.as_deref() == Some(e.cart.as_str()) {
            return Err(HandlerError::permanent(format!(
                "cart {} is poison",
                e.cart
            )));
        }
        if self.flaky > 0 {
            self.flaky -= 1;
            return Err(HandlerError::transient("the read model is busy"));
        }
        self.applied.push(e.cart.clone());
        Ok(())
    }
}

/// Watches one cart only, through `tags`.
struct CartWatch {
    cart: String,
    seen: u32,
}

#[factum::listener(tags = cart_tags)]
impl CartWatch {
    fn cart_tags(&self) -> Vec<Tag> {
        vec![Tag::new("cart", self.cart.as_str())]
    }

    fn opened(&mut self, _: &CartOpened) {
        self.seen += 1;
    }

    fn applied(&mut self, _: &CouponApplied) {
        self.seen += 1;
    }
}

async fn append<E: factum::Event>(store: &MemoryStore, event: E) -> Position {
    store
        .append(vec![NewEvent::encode(&event, Codec::Json).unwrap()], None)
        .await
        .unwrap()
        .positions[0]
}

fn fast(on_failure: OnFailure) -> SubscriptionOptions {
    SubscriptionOptions {
        retry: factum::RetryPolicy {
            max_retries: 3,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        },
        on_failure,
        ..SubscriptionOptions::default()
    }
}

/// A log of applications of coupon `A` to `carts`, and where the one to `poison` is.
async fn log_with_poison(carts: &[&str]) -> (MemoryStore, Position) {
    let store = MemoryStore::new();
    let mut poison_at = Position(0);
    for cart in carts {
        let at = append(&store, applied("A", cart)).await;
        if *cart == "poison" {
            poison_at = at;
        }
    }
    (store, poison_at)
}

/// The listener, refusing the cart `poison` for good.
fn refusing_poison() -> Uses {
    Uses {
        poison: Some("poison".into()),
        ..Uses::default()
    }
}

fn applied(coupon: &str, cart: &str) -> CouponApplied {
    CouponApplied {
        coupon: coupon.into(),
        cart: cart.into(),
    }
}

#[test]
fn the_macro_derives_name_and_query_from_the_handlers() {
    let uses = Uses::default();
    assert_eq!(uses.name(), "coupon-uses");
    assert_eq!(
        uses.query(),
        Query::item(QueryItem::types(["CouponIssued", "CouponApplied"]))
    );
    let watch = CartWatch {
        cart: "c1".into(),
        seen: 0,
    };
    assert_eq!(watch.name(), "CartWatch");
    assert_eq!(
        watch.query(),
        Query::item(
            QueryItem::types(["CartOpened", "CouponApplied"]).with_tags([Tag::new("cart", "c1")])
        )
    );
}

#[tokio::test]
async fn handlers_get_typed_events_in_order_and_transient_failures_are_retried() {
    let store = MemoryStore::new();
    let issued_at = append(
        &store,
        CouponIssued {
            coupon: "SPRING".into(),
            uses: 3,
        },
    )
    .await;
    append(&store, CartOpened { cart: "c1".into() }).await;
    append(&store, applied("SPRING", "c1")).await;
    append(&store, applied("SPRING", "c2")).await;
    let uses = Uses {
        flaky: 2,
        ..Uses::default()
    };
    let mut sub = Subscription::listener(store.clone(), uses)
        .with_options(fast(OnFailure::DeadLetterAndStop));
    let progress = sub.catch_up().await.unwrap();
    assert_eq!((progress.handled, progress.dead_lettered), (3, 0));
    let uses = sub.sink().listener();
    assert_eq!(uses.issued, vec![("SPRING".to_owned(), 3, issued_at)]);
    assert_eq!(uses.applied, vec!["c1", "c2"]);
    assert_eq!(
        store.load_checkpoint("coupon-uses").await.unwrap(),
        Some(Position(4))
    );

    let mut watch = Subscription::listener(
        store.clone(),
        CartWatch {
            cart: "c1".into(),
            seen: 0,
        },
    );
    watch.catch_up().await.unwrap();
    assert_eq!(watch.sink().listener().seen, 2);
}

#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_at_once_and_the_rest_goes_on() {
    let (store, poison_at) = log_with_poison(&["c1", "poison", "c3"]).await;
    let mut sub = Subscription::listener(store.clone(), refusing_poison())
        .with_options(fast(OnFailure::DeadLetterAndContinue));
    let progress = sub.catch_up().await.unwrap();
    assert_eq!((progress.handled, progress.dead_lettered), (2, 1));
    assert_eq!(sub.sink().listener().applied, vec!["c1", "c3"]);
    let letters = store.dead_letters(Some("coupon-uses")).await.unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(
        (letter.position, letter.event_type.as_str(), letter.attempts),
        (poison_at, "CouponApplied", 1)
    );
    assert_eq!(letter.error, "cart poison is poison");
}

#[tokio::test]
async fn stopping_on_failure_leaves_the_checkpoint_before_the_event_and_resumes_there() {
    let (store, poison_at) = log_with_poison(&["c1", "poison", "c3"]).await;
    let mut sub = Subscription::listener(store.clone(), refusing_poison())
        .with_options(fast(OnFailure::DeadLetterAndStop));
    let error = sub.catch_up().await.unwrap_err();
    match &error {
        SubscriptionError::Failed {
            position,
            event_type,
            ..
        } => assert_eq!(
            (*position, event_type.as_str()),
            (poison_at, "CouponApplied")
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "subscription `coupon-uses` stopped at CouponApplied at #2: cart poison is poison"
    );
    assert_eq!(sub.sink().listener().applied, vec!["c1"]);
    assert_eq!(
        store.load_checkpoint("coupon-uses").await.unwrap(),
        Some(Position(1))
    );
    // Run again while the cause is still there: it fails again, and stays one letter.
    let again = Subscription::listener(store.clone(), refusing_poison())
        .with_options(fast(OnFailure::DeadLetterAndStop))
        .catch_up()
        .await;
    assert!(again.is_err());
    let letters = store.dead_letters(None).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    // A replay leaves a letter past the checkpoint to the normal run.
    assert_eq!(sub.replay_dead_letters().await.unwrap().handled, 0);
    // Once the cause is fixed, it goes on from the failed event, in order, and the
    // letter of the event it now handled goes.
    sub.sink_mut().listener_mut().poison = None;
    let progress = sub.catch_up().await.unwrap();
    assert_eq!(progress.handled, 2);
    assert_eq!(sub.sink().listener().applied, vec!["c1", "poison", "c3"]);
    assert!(store.dead_letters(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_rebuild_drops_the_old_dead_letters_and_handles_their_events_again() {
    let (store, _) = log_with_poison(&["c1", "poison"]).await;
    let mut sub = Subscription::listener(store.clone(), refusing_poison())
        .with_options(fast(OnFailure::DeadLetterAndContinue));
    sub.catch_up().await.unwrap();
    assert_eq!(store.dead_letters(None).await.unwrap().len(), 1);
    sub.sink_mut().listener_mut().poison = None;
    sub.sink_mut().listener_mut().applied.clear();
    let progress = sub.rebuild().await.unwrap();
    assert_eq!(progress.handled, 2);
    assert_eq!(sub.sink().listener().applied, vec!["c1", "poison"]);
    assert!(store.dead_letters(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_event_that_does_not_decode_is_a_dead_letter_naming_its_position_and_type() {
    let store = MemoryStore::new();
    append(&store, applied("A", "c1")).await;
    // A `CouponApplied` whose payload lacks its fields.
    let broken = NewEvent {
        event_type: "CouponApplied".into(),
        version: 1,
        tags: vec![Tag::new("coupon", "A")],
        payload: Payload {
            codec: Codec::Json,
            bytes: br#"{"coupon":"A"}"#.to_vec(),
        },
        metadata: factum::Metadata::new(),
        recorded_at: None,
    };
    let broken_at = store.append(vec![broken], None).await.unwrap().positions[0];
    append(&store, applied("A", "c3")).await;
    let mut sub = Subscription::listener(store.clone(), Uses::default())
        .with_options(fast(OnFailure::DeadLetterAndContinue));
    let progress = sub.catch_up().await.unwrap();
    assert_eq!((progress.handled, progress.dead_lettered), (2, 1));
    let letter = store.dead_letters(None).await.unwrap().remove(0);
    assert_eq!(letter.position, broken_at);
    assert_eq!(letter.attempts, 1, "a decode error is not retried");
    assert!(
        letter.error.contains("CouponApplied") && letter.error.contains("at #2"),
        "{}",
        letter.error
    );
}

/// Gives up on every event by dealing with it itself: no dead letter.
struct Compensating {
    compensated: Vec<Position>,
}

impl Listener for Compensating {
    fn name(&self) -> &str {
        "compensating"
    }

    fn query(&self) -> Query {
        Query::of::<CouponApplied>()
    }

    async fn handle(&mut self, _: &StoredEvent) -> Result<(), HandlerError> {
        Err(HandlerError::permanent("no"))
    }

    async fn give_up(
        &mut self,
        event: &StoredEvent,
        _: &HandlerError,
    ) -> Result<bool, HandlerError> {
        self.compensated.push(event.position);
        Ok(true)
    }
}

#[tokio::test]
async fn a_listener_that_deals_with_its_failures_leaves_no_dead_letter() {
    let store = MemoryStore::new();
    let at = append(&store, applied("A", "c1")).await;
    let mut sub = Subscription::listener(
        store.clone(),
        Compensating {
            compensated: Vec::new(),
        },
    )
    .with_options(fast(OnFailure::DeadLetterAndStop));
    let progress = sub.catch_up().await.unwrap();
    assert_eq!((progress.given_up, progress.dead_lettered), (1, 0));
    assert_eq!(sub.sink().listener().compensated, vec![at]);
    assert!(store.dead_letters(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_subscription_can_start_after_any_position() {
    let store = MemoryStore::new();
    for cart in ["c1", "c2", "c3", "c4"] {
        append(&store, applied("A", cart)).await;
    }
    store
        .save_checkpoint("coupon-uses", Position(4))
        .await
        .unwrap();
    let mut sub =
        Subscription::listener(store.clone(), Uses::default()).starting_after(Position(2));
    assert_eq!(sub.catch_up().await.unwrap().handled, 2);
    assert_eq!(sub.sink().listener().applied, vec!["c3", "c4"]);
}

/// A reader waiting on `committed` sees its write once the running subscription has
/// committed it: read-your-writes over a read model, with real tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_follows_the_running_subscription() {
    let store = MemoryStore::new();
    append(&store, CartOpened { cart: "c0".into() }).await;
    let mut sub = Subscription::listener(store.clone(), Uses::default());
    let mut committed = sub.committed();
    assert_eq!(*committed.borrow(), Position(0), "nothing committed yet");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        sub.run(async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
        sub
    });
    for cart in ["c1", "c2", "c3"] {
        let written = append(&store, applied("SPRING", cart)).await;
        let seen = tokio::time::timeout(
            Duration::from_secs(5),
            committed.wait_for(|at| *at >= written),
        )
        .await
        .expect("the subscription commits the write")
        .map(|at| *at)
        .unwrap();
        assert!(seen >= written, "{seen} before {written}");
    }
    stop.send(()).unwrap();
    let mut sub = running.await.unwrap();
    assert_eq!(sub.sink().listener().applied, ["c1", "c2", "c3"]);
    assert_eq!(*committed.borrow(), Position(4));

    // A rebuild handles everything again and ends where it was.
    let rebuilt = sub.rebuild().await.unwrap();
    assert_eq!(rebuilt.position, Position(4));
    assert_eq!(*committed.borrow(), Position(4));
}
