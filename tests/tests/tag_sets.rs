//! An event's tags are a set: the events macro drops repeats, and `#[tag(each)]` gives
//! one tag per element of a collection field; states match by those tags.

use std::collections::{BTreeSet, HashSet};

use factum::catalog::Catalog;
use factum::prelude::*;
use factum::{Event, StateId};

#[factum::events]
pub mod users {
    pub struct UsernameChanged {
        #[tag]
        pub user: String,
        #[tag("username")]
        pub old: String,
        #[tag("username")]
        pub new: String,
    }
}

#[factum::events]
pub mod orders {
    use std::collections::{BTreeSet, HashSet};

    #[group(Order)]
    pub struct OrderPlaced {
        #[tag]
        pub order: String,
        #[tag("product", each)]
        pub products: Vec<String>,
    }

    /// `each` over sets, arrays and options, with the key from the field name.
    pub struct Restocked {
        #[tag(each)]
        pub warehouse: Option<String>,
        #[tag("product", each)]
        pub products: BTreeSet<u32>,
        #[tag("product", each)]
        pub also: HashSet<String>,
        #[tag("lot", each)]
        pub lots: [u8; 2],
        /// A plain tag of a key an `each` field also gives.
        #[tag("product")]
        pub main: String,
    }
}

fn changed(old: &str, new: &str) -> users::UsernameChanged {
    users::UsernameChanged {
        user: "u1".into(),
        old: old.into(),
        new: new.into(),
    }
}

fn placed(order: &str, products: &[&str]) -> orders::OrderPlaced {
    orders::OrderPlaced {
        order: order.into(),
        products: products.iter().map(|p| (*p).to_owned()).collect(),
    }
}

#[test]
fn two_fields_giving_the_same_tag_tag_the_event_once() {
    assert_eq!(
        changed("ada", "ada").tags(),
        [Tag::new("user", "u1"), Tag::new("username", "ada")]
    );
    assert_eq!(
        changed("ada", "grace").tags(),
        [
            Tag::new("user", "u1"),
            Tag::new("username", "ada"),
            Tag::new("username", "grace")
        ]
    );
    // What the module's enum gives, and what is stored.
    let all: users::Event = changed("ada", "ada").into();
    assert_eq!(all.tags().len(), 2);
    let new = NewEvent::encode(&changed("ada", "ada"), Codec::Json).unwrap();
    assert_eq!(new.tags.len(), 2);
}

#[test]
fn each_gives_one_tag_per_element_in_order_without_repeats() {
    assert_eq!(
        placed("o1", &["p2", "p1", "p2"]).tags(),
        [
            Tag::new("order", "o1"),
            Tag::new("product", "p2"),
            Tag::new("product", "p1")
        ]
    );
    assert_eq!(placed("o1", &[]).tags(), [Tag::new("order", "o1")]);
    assert_eq!(orders::OrderPlaced::TAG_KEYS, &["order", "product"]);

    let restocked = orders::Restocked {
        warehouse: None,
        products: BTreeSet::from([3, 1]),
        also: HashSet::from(["1".to_owned()]),
        lots: [7, 7],
        main: "9".into(),
    };
    // Plain tags first, then each collection in field order; `product:1` once.
    assert_eq!(
        restocked.tags(),
        [
            Tag::new("product", "9"),
            Tag::new("product", "1"),
            Tag::new("product", "3"),
            Tag::new("lot", "7")
        ]
    );
    let with_warehouse = orders::Restocked {
        warehouse: Some("w1".into()),
        ..restocked
    };
    assert!(with_warehouse.tags().contains(&Tag::new("warehouse", "w1")));
    assert_eq!(
        orders::Restocked::TAG_KEYS,
        &["warehouse", "product", "lot"]
    );
}

/// A product's sales, over every order naming it among its lines.
#[derive(State, Debug, Default)]
pub struct ProductSales {
    #[id]
    pub product: String,
    pub orders: Vec<String>,
}

#[factum::fold]
impl ProductSales {
    fn placed(&mut self, e: &orders::OrderPlaced) {
        self.orders.push(e.order.clone());
    }
}

#[test]
fn the_catalog_knows_the_key_of_an_each_field() {
    let catalog = Catalog::new()
        .events::<orders::Event>()
        .state::<ProductSales>();
    let placed = catalog.event_info("OrderPlaced").unwrap();
    assert_eq!(placed.tag_keys, &["order", "product"]);
    assert_eq!(ProductSales::ID_KEYS, &["product"]);
}

/// Orders at most `limit` units of each product: one state per product.
#[derive(Decision)]
pub struct PlaceOrder {
    pub order: String,
    pub products: Vec<String>,
    pub limit: usize,
}

impl Decide for PlaceOrder {
    type State = Vec<ProductSales>;
    type Event = orders::OrderEvent;
    type Error = String;
    fn state(&self) -> Vec<ProductSales> {
        self.products.iter().map(ProductSales::new).collect()
    }
    fn decide(&self, sales: &Vec<ProductSales>) -> Result<Vec<orders::OrderEvent>, String> {
        if let Some(sold_out) = sales.iter().find(|s| s.orders.len() >= self.limit) {
            return Err(format!("{} is sold out", sold_out.product));
        }
        Ok(vec![
            orders::OrderPlaced {
                order: self.order.clone(),
                products: self.products.clone(),
            }
            .into(),
        ])
    }
}

#[tokio::test]
async fn a_state_by_id_sees_every_event_whose_collection_holds_the_id() {
    let engine = Engine::new(MemoryStore::new());
    let events = [
        placed("o1", &["p1", "p2"]),
        placed("o2", &["p2"]),
        // No product: no `product` tag, so no product's state sees it.
        placed("o3", &[]),
        placed("o4", &["p3", "p1"]),
    ]
    .iter()
    .map(|e| NewEvent::encode(e, Codec::Json).unwrap())
    .collect();
    engine.store().append(events, None).await.unwrap();

    let orders_of = |product: &str| {
        let engine = engine.clone();
        let product = product.to_owned();
        async move {
            engine
                .load(ProductSales::new(product))
                .await
                .unwrap()
                .0
                .orders
        }
    };
    assert_eq!(orders_of("p1").await, ["o1", "o4"]);
    assert_eq!(orders_of("p2").await, ["o1", "o2"]);
    assert_eq!(orders_of("p3").await, ["o4"]);

    // The decision reads one state per product from one read, and its new event
    // carries every product, so each state sees it.
    let order = |order: &str, products: &[&str]| PlaceOrder {
        order: order.into(),
        products: products.iter().map(|p| (*p).to_owned()).collect(),
        limit: 3,
    };
    engine.decide(&order("o5", &["p3", "p2"])).await.unwrap();
    assert_eq!(orders_of("p3").await, ["o4", "o5"]);
    let refused = engine
        .decide(&order("o6", &["p3", "p2"]))
        .await
        .unwrap_err();
    assert_eq!(refused.to_string(), "p2 is sold out");
}
