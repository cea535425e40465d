// #[derive(Decision)] with exclusions, but no `impl Decide`.
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
#[decision(partition = coupon, exclude = [shop::CouponApplied])]
pub struct ApplyCoupon { pub coupon: String, pub cart: String, pub request: String }

fn main() {}
