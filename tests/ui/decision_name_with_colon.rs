// A decision name that would blur its idempotency keys (`<name>:<key>`).
use factum::prelude::*;

#[factum::events]
pub mod shop {
    #[group(Coupon)]
    pub struct CouponIssued { #[tag] pub coupon: String, pub uses: u32 }
    #[group(Coupon, Cart)]
    pub struct CouponApplied { #[tag] pub coupon: String, #[tag] pub cart: String }
    #[group(Cart)]
    pub struct ItemAdded { #[tag] pub cart: String, pub sku: String }
}

#[derive(State, Debug, Default)]
pub struct Coupon { #[id] pub coupon: String, pub remaining: u32 }

#[factum::fold]
impl Coupon {
    fn issued(&mut self, e: &shop::CouponIssued) { self.remaining = e.uses }
    fn applied(&mut self, _: &shop::CouponApplied) { self.remaining -= 1 }
}

#[derive(Decision)]
#[derive(serde::Serialize)]
#[decision(partition = coupon, idempotency = request, name = "Apply:Coupon")]
pub struct ApplyCoupon { pub coupon: String, pub cart: String, pub request: String }

impl Decide for ApplyCoupon {
    type State = Coupon;
    type Event = shop::CouponEvent;
    type Error = String;
    fn state(&self) -> Coupon { Coupon::new(self.coupon.clone()) }
    fn decide(&self, coupon: &Coupon) -> Result<Vec<shop::CouponEvent>, String> {
        if coupon.remaining == 0 {
            return Err(format!("coupon {} is used up", self.coupon));
        }
        Ok(vec![shop::CouponApplied { coupon: self.coupon.clone(), cart: self.cart.clone() }.into()])
    }
}

fn main() {}
