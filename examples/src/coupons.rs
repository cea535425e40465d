//! Coupons and carts: a hot entity (a coupon everyone wants) next to many cold ones
//! (each customer's cart).
//!
//! [`ApplyCoupon`] reads the [`Cart`] and the [`Coupon`] and appends a
//! [`CouponApplied`](events::CouponApplied) only if neither changed since the read, so a
//! coupon with 100 uses is applied exactly 100 times however many customers race for it;
//! the losers of a race retry (optimistic concurrency) and eventually see the coupon used
//! up. [`ApplyCouponTolerant`] trades that exactness for fewer conflicts: it does not
//! validate against other applications of the coupon, so concurrent applications may
//! overbook it by a bounded amount.
//!
//! Cart activity ([`OpenCart`], [`AddItem`], [`AddItems`]) touches only events tagged
//! with that cart, so it never conflicts with the coupon rush on other carts.
//!
//! ```
//! use factum::prelude::*;
//! use factum_examples::coupons::{ApplyCoupon, CouponError, IssueCoupon, OpenCart};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let engine = Engine::new(MemoryStore::new());
//! engine.decide(&IssueCoupon { coupon: "SPRING".into(), uses: 1 }).await.unwrap();
//! for cart in ["c1", "c2"] {
//!     engine.decide(&OpenCart { cart: cart.into() }).await.unwrap();
//! }
//! let apply = |cart: &str| ApplyCoupon::new("SPRING", cart);
//! assert!(engine.decide(&apply("c1")).await.is_ok());
//! let used_up = engine.decide(&apply("c2")).await.unwrap_err();
//! assert_eq!(used_up.to_string(), "coupon SPRING is used up (1 uses)");
//! # });
//! ```

use factum::Position;
use factum::prelude::*;
use uuid::Uuid;

/// The events of the coupon and cart domain.
#[factum::events]
pub mod events {
    /// A coupon was issued with a number of uses.
    #[group(Coupon)]
    pub struct CouponIssued {
        /// The coupon code.
        #[tag]
        pub coupon: String,
        /// How many carts may use it.
        pub uses: u32,
    }

    /// A coupon was applied to a cart: tagged with both, so the coupon's and the cart's
    /// states both see it. An integration event: billing learns of redemptions from it.
    #[group(Coupon, Cart)]
    #[event(public)]
    pub struct CouponApplied {
        /// The coupon code.
        #[tag]
        pub coupon: String,
        /// The cart id.
        #[tag]
        pub cart: String,
    }

    /// A customer opened a cart.
    #[group(Cart)]
    pub struct CartOpened {
        /// The cart id.
        #[tag]
        pub cart: String,
    }

    /// An item was put in a cart, at the price it had then.
    #[group(Cart)]
    pub struct ItemAdded {
        /// The cart id.
        #[tag]
        pub cart: String,
        /// The product.
        pub sku: String,
        /// Its unit price when added, in cents.
        pub cents: u32,
    }

    /// A product's price was set.
    #[group(Catalog)]
    pub struct PriceSet {
        /// The product.
        #[tag]
        pub sku: String,
        /// Its unit price, in cents.
        pub cents: u32,
    }
}

/// Why a coupon or cart decision said no.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CouponError {
    /// [`IssueCoupon`] for a code that was already issued.
    #[error("coupon {coupon} was already issued, at {at}")]
    CouponAlreadyIssued {
        /// The coupon code.
        coupon: String,
        /// Where the first issue is in the log.
        at: Position,
    },
    /// [`IssueCoupon`] with zero uses.
    #[error("coupon {coupon} needs at least one use")]
    NoUses {
        /// The coupon code.
        coupon: String,
    },
    /// A coupon that was never issued.
    #[error("coupon {coupon} does not exist")]
    CouponNotFound {
        /// The coupon code.
        coupon: String,
    },
    /// A coupon whose uses are all taken.
    #[error("coupon {coupon} is used up ({uses} uses)")]
    CouponUsedUp {
        /// The coupon code.
        coupon: String,
        /// How many uses it had.
        uses: u32,
    },
    /// [`OpenCart`] for a cart that is already open.
    #[error("cart {cart} is already open")]
    CartAlreadyOpen {
        /// The cart id.
        cart: String,
    },
    /// A cart that was never opened.
    #[error("cart {cart} does not exist")]
    CartNotFound {
        /// The cart id.
        cart: String,
    },
    /// A second coupon for a cart: a cart takes one coupon at most.
    #[error("cart {cart} already has coupon {coupon}")]
    CartHasCoupon {
        /// The cart id.
        cart: String,
        /// The coupon it already has.
        coupon: String,
    },
    /// A product with no price cannot be put in a cart.
    #[error("product {sku} has no price")]
    NoPrice {
        /// The product.
        sku: String,
    },
    /// [`SetPrice`] to zero.
    #[error("the price of product {sku} must be above zero")]
    ZeroPrice {
        /// The product.
        sku: String,
    },
    /// [`AddItems`] with no product.
    #[error("adding items to cart {cart} needs at least one product")]
    NoItems {
        /// The cart id.
        cart: String,
    },
}

/// A coupon as the decisions see it.
#[derive(State, Clone, Debug, Default, PartialEq, Eq)]
pub struct Coupon {
    /// The coupon code.
    #[id]
    pub coupon: String,
    /// Where it was issued in the log, if it was: read from the stored event's metadata.
    pub issued_at: Option<Position>,
    /// How many carts may use it.
    pub uses: u32,
    /// How many did.
    pub applied: u32,
}

impl Coupon {
    /// Uses not taken yet (zero when overbooked).
    pub fn remaining(&self) -> u32 {
        self.uses.saturating_sub(self.applied)
    }
}

#[factum::fold]
impl Coupon {
    fn issued(&mut self, e: &events::CouponIssued, stored: &StoredEvent) {
        self.issued_at = Some(stored.position);
        self.uses = e.uses;
    }

    fn applied(&mut self, _: &events::CouponApplied) {
        self.applied += 1;
    }
}

/// A cart as the decisions see it.
#[derive(State, Clone, Debug, Default, PartialEq, Eq)]
pub struct Cart {
    /// The cart id.
    #[id]
    pub cart: String,
    /// Whether it was opened.
    pub open: bool,
    /// The coupon applied to it, if any.
    pub coupon: Option<String>,
    /// Items in it.
    pub items: u32,
    /// The sum of its items' prices, in cents.
    pub total_cents: u64,
}

#[factum::fold]
impl Cart {
    fn opened(&mut self, _: &events::CartOpened) {
        self.open = true;
    }

    fn coupon_applied(&mut self, e: &events::CouponApplied) {
        self.coupon = Some(e.coupon.clone());
    }

    fn item_added(&mut self, e: &events::ItemAdded) {
        self.items += 1;
        self.total_cents += u64::from(e.cents);
    }
}

/// A product's current price.
#[derive(State, Clone, Debug, Default, PartialEq, Eq)]
pub struct Price {
    /// The product.
    #[id]
    pub sku: String,
    /// Its unit price in cents, if one was set.
    pub cents: Option<u32>,
}

#[factum::fold]
impl Price {
    fn set(&mut self, e: &events::PriceSet) {
        self.cents = Some(e.cents);
    }
}

/// Issues a coupon with a number of uses. A code is issued once.
#[derive(Decision, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[decision(partition = coupon, emits = [events::CouponIssued])]
pub struct IssueCoupon {
    /// The coupon code.
    pub coupon: String,
    /// How many carts may use it.
    pub uses: u32,
}

impl Decide for IssueCoupon {
    type State = Coupon;
    type Event = events::CouponEvent;
    type Error = CouponError;

    fn state(&self) -> Coupon {
        Coupon::new(&self.coupon)
    }

    fn decide(&self, coupon: &Coupon) -> Result<Vec<events::CouponEvent>, CouponError> {
        if let Some(at) = coupon.issued_at {
            return Err(CouponError::CouponAlreadyIssued {
                coupon: self.coupon.clone(),
                at,
            });
        }
        if self.uses == 0 {
            return Err(CouponError::NoUses {
                coupon: self.coupon.clone(),
            });
        }
        Ok(vec![
            events::CouponIssued {
                coupon: self.coupon.clone(),
                uses: self.uses,
            }
            .into(),
        ])
    }
}

/// Opens a cart.
#[derive(Decision, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[decision(partition = cart, emits = [events::CartOpened])]
pub struct OpenCart {
    /// The cart id.
    pub cart: String,
}

impl Decide for OpenCart {
    type State = Cart;
    type Event = events::CartEvent;
    type Error = CouponError;

    fn state(&self) -> Cart {
        Cart::new(&self.cart)
    }

    fn decide(&self, cart: &Cart) -> Result<Vec<events::CartEvent>, CouponError> {
        if cart.open {
            return Err(CouponError::CartAlreadyOpen {
                cart: self.cart.clone(),
            });
        }
        Ok(vec![
            events::CartOpened {
                cart: self.cart.clone(),
            }
            .into(),
        ])
    }
}

/// Sets a product's price. Setting the price it already has emits nothing.
#[derive(Decision, Clone, Debug)]
#[decision(partition = sku)]
pub struct SetPrice {
    /// The product.
    pub sku: String,
    /// Its unit price, in cents.
    pub cents: u32,
}

impl Decide for SetPrice {
    type State = Price;
    type Event = events::PriceSet;
    type Error = CouponError;

    fn state(&self) -> Price {
        Price::new(&self.sku)
    }

    fn decide(&self, price: &Price) -> Result<Vec<events::PriceSet>, CouponError> {
        if self.cents == 0 {
            return Err(CouponError::ZeroPrice {
                sku: self.sku.clone(),
            });
        }
        if price.cents == Some(self.cents) {
            return Ok(vec![]);
        }
        Ok(vec![events::PriceSet {
            sku: self.sku.clone(),
            cents: self.cents,
        }])
    }
}

/// Puts one product in an open cart at its current price.
#[derive(Decision, Clone, Debug)]
#[decision(partition = cart, emits = [events::ItemAdded])]
pub struct AddItem {
    /// The cart id.
    pub cart: String,
    /// The product.
    pub sku: String,
}

impl Decide for AddItem {
    type State = (Cart, Price);
    type Event = events::CartEvent;
    type Error = CouponError;

    fn state(&self) -> Self::State {
        (Cart::new(&self.cart), Price::new(&self.sku))
    }

    fn decide(&self, (cart, price): &Self::State) -> Result<Vec<events::CartEvent>, CouponError> {
        if !cart.open {
            return Err(CouponError::CartNotFound {
                cart: self.cart.clone(),
            });
        }
        let Some(cents) = price.cents else {
            return Err(CouponError::NoPrice {
                sku: self.sku.clone(),
            });
        };
        Ok(vec![
            events::ItemAdded {
                cart: self.cart.clone(),
                sku: self.sku.clone(),
                cents,
            }
            .into(),
        ])
    }
}

/// Puts several products in an open cart at once, each at its current price: the
/// decision reads one [`Price`] state per product, so how many states it folds comes
/// from the command. All items are added, or none.
#[derive(Decision, Clone, Debug)]
#[decision(partition = cart, emits = [events::ItemAdded])]
pub struct AddItems {
    /// The cart id.
    pub cart: String,
    /// The products, in order; a product listed twice is added twice.
    pub skus: Vec<String>,
}

impl Decide for AddItems {
    type State = (Cart, Vec<Price>);
    type Event = events::ItemAdded;
    type Error = CouponError;

    fn state(&self) -> Self::State {
        (
            Cart::new(&self.cart),
            self.skus.iter().map(Price::new).collect(),
        )
    }

    fn decide(&self, (cart, prices): &Self::State) -> Result<Vec<events::ItemAdded>, CouponError> {
        if !cart.open {
            return Err(CouponError::CartNotFound {
                cart: self.cart.clone(),
            });
        }
        if self.skus.is_empty() {
            return Err(CouponError::NoItems {
                cart: self.cart.clone(),
            });
        }
        prices
            .iter()
            .map(|price| match price.cents {
                Some(cents) => Ok(events::ItemAdded {
                    cart: self.cart.clone(),
                    sku: price.sku.clone(),
                    cents,
                }),
                None => Err(CouponError::NoPrice {
                    sku: price.sku.clone(),
                }),
            })
            .collect()
    }
}

/// The rules of applying a coupon to a cart, shared by [`ApplyCoupon`] and
/// [`ApplyCouponTolerant`]: the cart and the coupon exist, the cart has no coupon yet,
/// and the coupon has a use left.
fn apply_coupon(
    coupon_code: &str,
    cart_id: &str,
    cart: &Cart,
    coupon: &Coupon,
) -> Result<Vec<events::CouponEvent>, CouponError> {
    if !cart.open {
        return Err(CouponError::CartNotFound {
            cart: cart_id.to_owned(),
        });
    }
    if coupon.issued_at.is_none() {
        return Err(CouponError::CouponNotFound {
            coupon: coupon_code.to_owned(),
        });
    }
    if let Some(existing) = &cart.coupon {
        return Err(CouponError::CartHasCoupon {
            cart: cart_id.to_owned(),
            coupon: existing.clone(),
        });
    }
    if coupon.remaining() == 0 {
        return Err(CouponError::CouponUsedUp {
            coupon: coupon_code.to_owned(),
            uses: coupon.uses,
        });
    }
    Ok(vec![
        events::CouponApplied {
            coupon: coupon_code.to_owned(),
            cart: cart_id.to_owned(),
        }
        .into(),
    ])
}

/// Applies a coupon to a cart, exactly: a coupon with `n` uses is applied at most `n`
/// times, whatever the concurrency.
///
/// Every application of the coupon is in the validation query, so two customers
/// deciding on the same remaining use conflict; the second retries (up to 100 times,
/// with jittered backoff: each conflict means one more use was taken, so a coupon of up to
/// 100 uses never exhausts them) and then sees one use fewer. Under a rush this costs retries
/// (the coupon is a hot key); `partition = coupon` names the key a serial lane would
/// queue on instead. `idempotency = request` marks the request id as the key that
/// identifies a repeated request.
#[derive(Decision, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[decision(
    partition = coupon,
    idempotency = request,
    emits = [events::CouponApplied],
    retries = 100,
    min_delay_ms = 1,
    max_delay_ms = 20
)]
pub struct ApplyCoupon {
    /// The coupon code.
    pub coupon: String,
    /// The cart id.
    pub cart: String,
    /// The id of this request, the same on a retry by the client.
    pub request: Uuid,
}

impl ApplyCoupon {
    /// A request to apply `coupon` to `cart`, with a fresh request id.
    pub fn new(coupon: impl Into<String>, cart: impl Into<String>) -> Self {
        ApplyCoupon {
            coupon: coupon.into(),
            cart: cart.into(),
            request: Uuid::now_v7(),
        }
    }
}

impl Decide for ApplyCoupon {
    type State = (Cart, Coupon);
    type Event = events::CouponEvent;
    type Error = CouponError;

    fn state(&self) -> Self::State {
        (Cart::new(&self.cart), Coupon::new(&self.coupon))
    }

    fn decide(
        &self,
        (cart, coupon): &Self::State,
    ) -> Result<Vec<events::CouponEvent>, CouponError> {
        apply_coupon(&self.coupon, &self.cart, cart, coupon)
    }
}

/// Applies a coupon to a cart with **tolerated overbooking**: the same rules as
/// [`ApplyCoupon`], but other applications do not invalidate the decision.
///
/// `exclude = [events::CouponApplied]` removes coupon applications from the validation
/// query. The decision still *reads* them (the coupon's remaining uses are folded as
/// usual), but an application committed between this decision's read and its append no
/// longer makes the append fail. Concurrent applications of one coupon therefore never
/// conflict with each other, so a rush costs no retries — and the coupon may be applied
/// more often than it has uses: at most once more per decision that was in flight
/// (between its read and its append) at the same time, so the overbooking is bounded
/// by the concurrency, not by the traffic. Choose it when an occasional extra discount
/// is cheaper than the latency of retries on a hot coupon.
///
/// `exclude_from = [Coupon]` scopes the exclusion to the coupon's part of the query: the
/// cart's part still validates `CouponApplied` on the cart, so two coupons applied
/// concurrently to the *same* cart still conflict and "one coupon per cart" stays exact.
/// Issuing a coupon or opening the cart still conflicts as usual.
#[derive(Decision, Clone, Debug, serde::Serialize)]
#[decision(
    partition = coupon,
    idempotency = request,
    exclude = [events::CouponApplied],
    exclude_from = [Coupon],
    emits = [events::CouponApplied],
    retries = 50,
    min_delay_ms = 1,
    max_delay_ms = 20
)]
pub struct ApplyCouponTolerant {
    /// The coupon code.
    pub coupon: String,
    /// The cart id.
    pub cart: String,
    /// The id of this request, the same on a retry by the client.
    pub request: Uuid,
}

impl ApplyCouponTolerant {
    /// A request to apply `coupon` to `cart`, with a fresh request id.
    pub fn new(coupon: impl Into<String>, cart: impl Into<String>) -> Self {
        ApplyCouponTolerant {
            coupon: coupon.into(),
            cart: cart.into(),
            request: Uuid::now_v7(),
        }
    }
}

impl Decide for ApplyCouponTolerant {
    type State = (Cart, Coupon);
    type Event = events::CouponEvent;
    type Error = CouponError;

    fn state(&self) -> Self::State {
        (Cart::new(&self.cart), Coupon::new(&self.coupon))
    }

    fn decide(
        &self,
        (cart, coupon): &Self::State,
    ) -> Result<Vec<events::CouponEvent>, CouponError> {
        apply_coupon(&self.coupon, &self.cart, cart, coupon)
    }
}

/// Every event type, state and decision of the coupon domain:
/// `cargo run -p factum-examples --example coupon_rush -- describe` prints it, and
/// `docs/model/coupons.md` shows it as a graph.
pub fn catalog() -> factum::Catalog {
    factum::Catalog::new()
        .events::<events::Event>()
        .state::<Coupon>()
        .state::<Cart>()
        .state::<Price>()
        .decision::<IssueCoupon>()
        .decision::<OpenCart>()
        .decision::<SetPrice>()
        .decision::<AddItem>()
        .decision::<AddItems>()
        .decision::<ApplyCoupon>()
        .decision::<ApplyCouponTolerant>()
}
