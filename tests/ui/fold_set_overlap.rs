// A fold takes a whole set, and one of the set's types again in a handler of its own.
use factum::prelude::*;

#[factum::events]
pub mod shop {
    #[group(Coupon)]
    pub struct CouponIssued { #[tag] pub coupon: String, pub uses: u32 }
    #[group(Coupon)]
    pub struct CouponApplied { #[tag] pub coupon: String, #[tag] pub cart: String }
}

#[derive(State, Debug, Default)]
pub struct Coupon { #[id] pub coupon: String, pub remaining: u32 }

#[factum::fold]
impl Coupon {
    fn apply(&mut self, _: &shop::CouponEvent) {}
    fn issued(&mut self, e: &shop::CouponIssued) { self.remaining = e.uses }
}

fn main() {}
