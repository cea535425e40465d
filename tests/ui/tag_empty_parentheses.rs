// `#[tag()]` and `#[id()]` with nothing in the parentheses.
use factum::prelude::*;

#[factum::events]
pub mod shop {
    pub struct CouponIssued { #[tag()] pub coupon: String, pub uses: u32 }
}

#[derive(State, Debug, Default)]
pub struct Coupon { #[id()] pub coupon: String, pub remaining: u32 }

fn main() {}
