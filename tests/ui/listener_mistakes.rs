// Listener handlers that cannot be handlers, an unknown key, and a listener without
// handlers: every mistake is reported, each at its own span.
use factum::prelude::*;

#[factum::events]
pub mod shop {
    pub struct CouponIssued { #[tag] pub coupon: String, pub uses: u32 }
    pub struct CouponApplied { #[tag] pub coupon: String, #[tag] pub cart: String }
}

pub struct Audit;

#[factum::listener(name = "audit", tag = region)]
impl Audit {
    fn by_value(&mut self, _: shop::CouponIssued) {}
    fn shared_self(&self, _: &shop::CouponApplied) {}
    fn three(&mut self, _: &shop::CouponApplied, _: &StoredEvent, _: u32) {}
}

pub struct Empty;

#[factum::listener]
impl Empty {}

fn main() {}
