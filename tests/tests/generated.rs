//! Unit tests of every item the macros generate: event impls, the module and group
//! enums and their conversions, state ids and constructors, folds, decision metadata,
//! and the catalog's two registration paths.

use std::time::Duration;

use factum::catalog::Catalog;
use factum::model::DecodeReason;
use factum::prelude::*;
use factum::{DecodeError, Event, StateId};

#[factum::events]
pub mod accounts {
    /// A doc comment survives.
    #[group(Account)]
    pub struct Opened {
        #[tag]
        pub account: String,
        pub owner: String,
    }

    #[group(Account, Money)]
    #[event(name = "MoneyDeposited", version = 2)]
    pub struct Deposited {
        #[tag]
        pub account: String,
        pub cents: u64,
    }

    #[group(Account, Money)]
    pub struct Transferred {
        #[tag("account")]
        pub from: String,
        #[tag("account")]
        pub to: String,
        #[tag]
        pub reference: u32,
        pub cents: u64,
    }

    /// Global: no tags at all.
    pub struct InterestRateSet {
        pub basis_points: u32,
    }

    /// A helper type inside the module is left alone.
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    pub enum Channel {
        Web,
        Branch,
    }
}

use accounts::{Deposited, Opened, Transferred};

fn opened() -> Opened {
    Opened {
        account: "a1".into(),
        owner: "ann".into(),
    }
}

fn deposited(cents: u64) -> Deposited {
    Deposited {
        account: "a1".into(),
        cents,
    }
}

#[test]
fn event_types_have_names_versions_and_tag_keys() {
    assert_eq!(Opened::TYPE, "Opened");
    assert_eq!(Opened::VERSION, 1);
    assert_eq!(Opened::TAG_KEYS, &["account"]);
    assert_eq!(Deposited::TYPE, "MoneyDeposited");
    assert_eq!(Deposited::VERSION, 2);
    // Two fields give the same key: it is listed once.
    assert_eq!(Transferred::TAG_KEYS, &["account", "reference"]);
    assert!(accounts::InterestRateSet::TAG_KEYS.is_empty());
}

#[test]
fn tags_come_from_tagged_fields_with_renamed_keys() {
    let t = Transferred {
        from: "a1".into(),
        to: "a2".into(),
        reference: 7,
        cents: 5,
    };
    assert_eq!(
        t.tags(),
        vec![
            Tag::new("account", "a1"),
            Tag::new("account", "a2"),
            Tag::new("reference", 7)
        ]
    );
    assert_eq!(t.event_type(), "Transferred");
    assert!(
        accounts::InterestRateSet { basis_points: 1 }
            .tags()
            .is_empty()
    );
}

#[test]
fn module_enum_lists_every_type_and_groups_their_members() {
    assert_eq!(
        <accounts::Event as EventSet>::TYPES,
        &["Opened", "MoneyDeposited", "Transferred", "InterestRateSet"]
    );
    assert_eq!(
        <accounts::AccountEvent as EventSet>::TYPES,
        &["Opened", "MoneyDeposited", "Transferred"]
    );
    assert_eq!(
        <accounts::MoneyEvent as EventSet>::TYPES,
        &["MoneyDeposited", "Transferred"]
    );
}

#[test]
fn conversions_between_structs_groups_and_the_module_enum() {
    let all: accounts::Event = deposited(5).into();
    assert_eq!(all.event_type(), "MoneyDeposited");
    assert_eq!(all.tags(), vec![Tag::new("account", "a1")]);

    let money: accounts::MoneyEvent = deposited(5).into();
    let back: accounts::Event = money.clone().into();
    assert_eq!(back, all);
    assert_eq!(
        accounts::MoneyEvent::try_from(all.clone()),
        Ok(money.clone())
    );
    assert_eq!(Deposited::try_from(money), Ok(deposited(5)));

    // A type outside the group comes back unchanged as the error.
    let open: accounts::Event = opened().into();
    assert_eq!(
        accounts::MoneyEvent::try_from(open.clone()),
        Err(open.clone())
    );
    assert_eq!(Deposited::try_from(open.clone()), Err(open));
}

#[test]
fn enums_serialize_with_the_stable_type_name() {
    let e: accounts::Event = deposited(9).into();
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"type": "MoneyDeposited", "data": {"account": "a1", "cents": 9}})
    );
    let back: accounts::Event = serde_json::from_value(json).unwrap();
    assert_eq!(back, e);
}

fn stored(event_type: &str, version: u32, payload: &[u8]) -> StoredEvent {
    StoredEvent::record(
        NewEvent {
            event_type: event_type.into(),
            version,
            tags: vec![Tag::new("account", "a1")],
            payload: factum::model::Payload {
                codec: Codec::Json,
                bytes: payload.to_vec(),
            },
            metadata: factum::Metadata::new(),
            recorded_at: None,
        },
        Position(42),
    )
}

#[test]
fn stored_events_decode_back_through_every_set() {
    let new = deposited(3).to_new_event(Codec::Json).unwrap();
    assert_eq!(new.event_type, "MoneyDeposited");
    assert_eq!(new.version, 2);
    let s = StoredEvent::record(new, Position(1));
    assert_eq!(Deposited::from_stored(&s), Ok(deposited(3)));
    assert_eq!(
        accounts::Event::from_stored(&s),
        Ok(accounts::Event::Deposited(deposited(3)))
    );
    assert_eq!(
        accounts::MoneyEvent::from_stored(&s),
        Ok(accounts::MoneyEvent::Deposited(deposited(3)))
    );
}

#[test]
fn unknown_types_versions_and_bad_payloads_are_errors_naming_position_and_type() {
    let unknown = stored("Closed", 1, b"{}");
    let err: DecodeError = accounts::MoneyEvent::from_stored(&unknown).unwrap_err();
    assert_eq!(err.position, Position(42));
    assert_eq!(err.event_type, "Closed");
    assert!(matches!(err.reason, DecodeReason::UnknownType { .. }));
    assert_eq!(
        err.to_string(),
        "cannot decode event Closed (v1) at #42: unknown event type (expected one of: MoneyDeposited, Transferred)"
    );

    let old = stored("MoneyDeposited", 1, br#"{"account":"a1","cents":1}"#);
    let err = accounts::Event::from_stored(&old).unwrap_err();
    assert_eq!(
        err.reason,
        DecodeReason::Version {
            stored: 1,
            known: 2
        }
    );

    let corrupt = stored("MoneyDeposited", 2, br#"{"account":"a1","cents":"many"}"#);
    let err = accounts::Event::from_stored(&corrupt).unwrap_err();
    assert!(matches!(err.reason, DecodeReason::Payload(_)), "{err}");
    assert!(
        err.to_string()
            .starts_with("cannot decode event MoneyDeposited (v2) at #42: payload does not decode")
    );
}

#[derive(State, Debug, Default, PartialEq)]
pub struct Balance {
    #[id]
    pub account: String,
    pub open: bool,
    pub cents: u64,
    pub last_change: Option<Position>,
}

#[factum::fold]
impl Balance {
    fn opened(&mut self, _: &Opened) {
        self.open = true;
    }

    fn deposited(&mut self, e: &Deposited, stored: &StoredEvent) {
        self.cents += e.cents;
        self.last_change = Some(stored.position);
    }

    fn transferred(&mut self, e: &Transferred) {
        if e.from == self.account {
            self.cents -= e.cents;
        } else {
            self.cents += e.cents;
        }
    }
}

/// A global state: no ids, so it sees every event of its types.
#[derive(State, Debug, Default)]
#[state(name = "Rate", constructor = false)]
pub struct CurrentRate {
    pub basis_points: u32,
}

impl CurrentRate {
    fn new() -> Self {
        CurrentRate { basis_points: 100 }
    }
}

#[factum::fold]
impl CurrentRate {
    fn set(&mut self, e: &accounts::InterestRateSet) {
        self.basis_points = e.basis_points;
    }
}

#[derive(State, Debug, Default)]
pub struct Ledger {
    #[id("reference")]
    pub number: u32,
    pub seen: usize,
}

#[factum::fold]
impl Ledger {
    fn transferred(&mut self, _: &Transferred) {
        self.seen += 1;
    }
}

#[test]
fn state_ids_become_query_tags_and_handlers_its_types() {
    let b = Balance::new("a1");
    assert_eq!(
        b,
        Balance {
            account: "a1".into(),
            ..Balance::default()
        }
    );
    assert_eq!(Balance::NAME, "Balance");
    assert_eq!(Balance::ID_KEYS, &["account"]);
    assert_eq!(
        <Balance as State>::TYPES,
        &["Opened", "MoneyDeposited", "Transferred"]
    );
    assert_eq!(
        State::query(&b),
        Query::item(
            QueryItem::types(["Opened", "MoneyDeposited", "Transferred"])
                .with_tags([Tag::new("account", "a1")])
        )
    );
    let ledger = Ledger::new(7u32);
    assert_eq!(ledger.ids(), vec![Tag::new("reference", 7)]);
    assert!(ledger.has_ids(&[Tag::new("x", "y"), Tag::new("reference", "7")]));
    assert!(!ledger.has_ids(&[Tag::new("reference", "70")]));
    assert!(!ledger.has_ids(&[Tag::new("number", "7")]));
}

#[test]
fn a_state_without_ids_is_global_over_its_types() {
    assert_eq!(<CurrentRate as StateId>::NAME, "Rate");
    let rate = CurrentRate::new();
    assert_eq!(rate.basis_points, 100, "the user's own constructor is kept");
    assert_eq!(
        State::query(&rate),
        Query::item(QueryItem::types(["InterestRateSet"]))
    );
}

#[test]
fn the_fold_applies_each_handler_and_passes_the_stored_event() {
    let mut b = Balance::new("a1");
    let e1 = StoredEvent::record(opened().to_new_event(Codec::Json).unwrap(), Position(3));
    let e2 = StoredEvent::record(
        deposited(10).to_new_event(Codec::Json).unwrap(),
        Position(8),
    );
    for e in [&e1, &e2] {
        assert!(b.matches(e));
        b.apply(e).unwrap();
    }
    assert!(b.open);
    assert_eq!(b.cents, 10);
    assert_eq!(b.last_change, Some(Position(8)));

    let other = StoredEvent::record(
        Deposited {
            account: "a2".into(),
            cents: 1,
        }
        .to_new_event(Codec::Json)
        .unwrap(),
        Position(9),
    );
    assert!(
        !b.matches(&other),
        "another account's event is outside the query"
    );
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum BankError {
    #[error("account {0} is not open")]
    NotOpen(String),
}

#[derive(Decision, Debug, serde::Serialize)]
#[decision(
    partition = from,
    idempotency = request,
    exclude = [accounts::Deposited],
    emits = [accounts::Transferred],
    retries = 3,
    min_delay_ms = 2,
    max_delay_ms = 40,
)]
pub struct Transfer {
    pub from: String,
    pub to: String,
    pub reference: u32,
    pub cents: u64,
    pub request: String,
}

impl Decide for Transfer {
    type State = (Balance, Balance, Ledger);
    type Event = accounts::MoneyEvent;
    type Error = BankError;

    fn state(&self) -> Self::State {
        (
            Balance::new(&self.from),
            Balance::new(&self.to),
            Ledger::new(self.reference),
        )
    }

    fn decide(&self, (from, to, _): &Self::State) -> Result<Vec<accounts::MoneyEvent>, BankError> {
        for b in [from, to] {
            if !b.open {
                return Err(BankError::NotOpen(b.account.clone()));
            }
        }
        Ok(vec![
            Transferred {
                from: self.from.clone(),
                to: self.to.clone(),
                reference: self.reference,
                cents: self.cents,
            }
            .into(),
        ])
    }
}

#[derive(Decision)]
#[decision(name = "OpenAccount")]
pub struct Open {
    pub account: String,
}

impl Decide for Open {
    type State = Balance;
    type Event = Opened;
    type Error = BankError;

    fn state(&self) -> Balance {
        Balance::new(&self.account)
    }

    fn decide(&self, _: &Balance) -> Result<Vec<Opened>, BankError> {
        Ok(vec![Opened {
            account: self.account.clone(),
            owner: "x".into(),
        }])
    }
}

#[test]
fn decision_metadata_is_data() {
    let m = Transfer::META;
    assert_eq!(m.name, "Transfer");
    assert_eq!(m.partition, Some("from"));
    assert_eq!(m.idempotency, Some("request"));
    assert_eq!(m.exclude.types, &["MoneyDeposited"]);
    assert_eq!(m.exclude.only_in, None);
    assert_eq!(m.emits, Some(&["Transferred"][..]));
    assert_eq!(m.retry.max_retries, 3);
    assert_eq!(m.retry.min_delay, Duration::from_millis(2));
    assert_eq!(m.retry.max_delay, Duration::from_millis(40));

    let t = Transfer {
        from: "a1".into(),
        to: "a2".into(),
        reference: 1,
        cents: 1,
        request: "r-1".into(),
    };
    assert_eq!(t.partition_key().as_deref(), Some("a1"));
    assert_eq!(t.idempotency_key().as_deref(), Some("r-1"));

    let o = Open::META;
    assert_eq!(o.name, "OpenAccount");
    assert_eq!((o.partition, o.idempotency, o.emits), (None, None, None));
    assert_eq!(o.retry, factum::RetryPolicy::DEFAULT);
    assert_eq!(
        Open {
            account: "a".into()
        }
        .partition_key(),
        None
    );
}

#[test]
fn the_validation_query_is_the_read_query_minus_exclusions() {
    let t = Transfer {
        from: "a1".into(),
        to: "a2".into(),
        reference: 1,
        cents: 1,
        request: "r".into(),
    };
    let state = t.state();
    let read = factum::StateSet::read_query(&state);
    assert_eq!(read.items().len(), 3);
    let validation = Transfer::validation_query(&state);
    for item in validation.items() {
        assert!(
            !item.types.iter().any(|t| t == "MoneyDeposited"),
            "{validation}"
        );
    }
    assert!(read.matches("MoneyDeposited", &[Tag::new("account", "a1")]));
    assert!(!validation.matches("MoneyDeposited", &[Tag::new("account", "a1")]));
    assert!(validation.matches("Transferred", &[Tag::new("account", "a2")]));
}

#[test]
fn the_catalog_from_inventory_matches_the_explicit_registration() {
    let explicit = Catalog::new()
        .events::<accounts::Event>()
        .state::<Balance>()
        .state::<CurrentRate>()
        .state::<Ledger>()
        .decision::<Transfer>()
        .decision::<Open>();
    let collected = Catalog::from_inventory();
    assert_eq!(collected, explicit);
    assert!(explicit.check().is_ok());

    let transfer = explicit.decision_info("Transfer").unwrap();
    assert_eq!(
        transfer.states.iter().map(|s| s.name).collect::<Vec<_>>(),
        ["Balance", "Balance", "Ledger"]
    );
    assert_eq!(transfer.validated_types(), ["Opened", "Transferred"]);
    assert_eq!(transfer.emitted_types(), ["Transferred"]);
    let deposited = explicit.event_info("MoneyDeposited").unwrap();
    assert_eq!(deposited.groups, &["Account", "Money"]);
    assert!(deposited.module.ends_with("accounts"));

    let text = explicit.describe();
    assert!(
        text.contains(
            "| `MoneyDeposited`  | 2       | account            | Account, Money | no     |"
        ),
        "{text}"
    );
    assert!(text.contains("(excludes MoneyDeposited)"), "{text}");
}

/// The check behind "`exclude` removes every event type": a decision guards its append
/// while some state keeps a type, is spared by `exclude_from`, folds every type, or
/// while it reads no state at all.
#[test]
fn an_exclusion_guards_nothing_only_when_every_state_loses_every_type() {
    use factum::__private::guards_something;
    let coupon: &[&str] = &["CouponIssued", "CouponApplied"];
    let cart: &[&str] = &["ItemAdded", "CouponApplied"];
    let states = &["Coupon", "Cart"];
    assert!(!guards_something(&[coupon], &["Coupon"], coupon, None));
    assert!(guards_something(
        &[coupon],
        &["Coupon"],
        &["CouponIssued"],
        None
    ));
    // Both states lose every type, unless `exclude_from` spares one.
    let all = &["CouponIssued", "CouponApplied", "ItemAdded"];
    assert!(!guards_something(&[coupon, cart], states, all, None));
    assert!(!guards_something(
        &[coupon, cart],
        states,
        all,
        Some(states)
    ));
    assert!(guards_something(
        &[coupon, cart],
        states,
        all,
        Some(&["Coupon"])
    ));
    assert!(guards_something(&[coupon, cart], states, coupon, None));
    // A state over every type keeps an item that no exclusion narrows; no state: no guard
    // was ever asked for.
    assert!(guards_something(&[&[]], &["Everything"], all, None));
    assert!(guards_something(&[], &[], all, None));
}
