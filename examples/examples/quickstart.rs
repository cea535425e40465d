//! The README's quick start: a domain, decided on the embedded SQLite store, and tested.

use factum::prelude::*;

#[factum::events] // generates shop::Event, shop::CouponEvent, ...
mod shop {
    #[group(Coupon)]
    pub struct CouponIssued {
        #[tag]
        pub coupon: String,
        pub uses: u32,
    }
    #[group(Coupon)]
    pub struct CouponApplied {
        #[tag]
        pub coupon: String,
        #[tag]
        pub cart: String,
    }
}

/// What a decision on a coupon needs to know: its uses left.
#[derive(State, Default)]
struct Coupon {
    #[id]
    coupon: String,
    remaining: u32,
}

#[factum::fold] // the handlers' types are the state's query types
impl Coupon {
    fn issued(&mut self, e: &shop::CouponIssued) {
        self.remaining = e.uses
    }
    fn applied(&mut self, _: &shop::CouponApplied) {
        self.remaining -= 1
    }
}

/// Applies a coupon to a cart, if it has a use left: exact under any concurrency.
#[derive(Decision)]
#[decision(partition = coupon, retries = 20)]
struct ApplyCoupon {
    coupon: String,
    cart: String,
}

impl Decide for ApplyCoupon {
    type State = Coupon;
    type Event = shop::CouponEvent;
    type Error = String;
    fn state(&self) -> Coupon {
        Coupon::new(&self.coupon)
    }
    fn decide(&self, c: &Coupon) -> Result<Vec<shop::CouponEvent>, String> {
        if c.remaining == 0 {
            return Err(format!("coupon {} is used up", self.coupon));
        }
        Ok(vec![
            shop::CouponApplied {
                coupon: self.coupon.clone(),
                cart: self.cart.clone(),
            }
            .into(),
        ])
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?; // the store's file; a path of your own keeps it
    let store = factum_sqlite::open(dir.path().join("shop.db")).await?;
    let issue = shop::CouponIssued {
        coupon: "SPRING".into(),
        uses: 2,
    };
    store
        .append(vec![NewEvent::encode(&issue, Codec::Json)?], None)
        .await?;

    let engine = Engine::new(store);
    for cart in ["c1", "c2", "c3"] {
        let apply = ApplyCoupon {
            coupon: "SPRING".into(),
            cart: cart.into(),
        };
        match engine.decide(&apply).await {
            Ok(outcome) => println!("{cart}: applied at {:?}", outcome.positions),
            Err(e) => println!("{cart}: refused: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use factum::testing::given;

    #[test]
    fn a_used_up_coupon_is_refused() {
        given([shop::CouponIssued {
            coupon: "S".into(),
            uses: 0,
        }])
        .when(ApplyCoupon {
            coupon: "S".into(),
            cart: "c".into(),
        })
        .then_error("coupon S is used up".to_string());
    }
}
