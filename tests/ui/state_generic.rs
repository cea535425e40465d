// #[derive(State)] on a generic struct.
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
pub struct Coupon<N> { #[id] pub coupon: String, pub remaining: N }

#[factum::fold]
impl<N: std::ops::SubAssign + From<u32>> Coupon<N> {
    fn issued(&mut self, e: &shop::CouponIssued) { self.remaining = N::from(e.uses) }
    fn applied(&mut self, _: &shop::CouponApplied) { self.remaining -= N::from(1) }
}

#[derive(Decision)]
#[decision(partition = coupon)]
pub struct ApplyCoupon { pub coupon: String, pub cart: String, pub request: String }

impl Decide for ApplyCoupon {
    type State = Coupon<u32>;
    type Event = shop::CouponEvent;
    type Error = String;
    fn state(&self) -> Coupon<u32> { Coupon { coupon: self.coupon.clone(), remaining: 0 } }
    fn decide(&self, coupon: &Coupon<u32>) -> Result<Vec<shop::CouponEvent>, String> {
        if coupon.remaining == 0 {
            return Err(format!("coupon {} is used up", self.coupon));
        }
        Ok(vec![shop::CouponApplied { coupon: self.coupon.clone(), cart: self.cart.clone() }.into()])
    }
}

fn main() {}
