// A state folds a whole event set, but one type in the set does not carry its `#[id]` tag.
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
    fn apply(&mut self, e: &shop::Event) {
        if let shop::Event::CouponIssued(e) = e { self.remaining = e.uses }
    }
}

fn main() {}
