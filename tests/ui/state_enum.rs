// #[derive(State)] on an enum.
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
pub enum Coupon {
    #[default]
    Unknown,
    Active { remaining: u32 },
}

#[factum::fold]
impl Coupon {
    fn issued(&mut self, e: &shop::CouponIssued) { *self = Coupon::Active { remaining: e.uses } }
    fn applied(&mut self, _: &shop::CouponApplied) {
        if let Coupon::Active { remaining } = self { *remaining -= 1 }
    }
}

#[derive(Decision)]
#[decision(partition = coupon)]
pub struct ApplyCoupon { pub coupon: String, pub cart: String, pub request: String }

impl Decide for ApplyCoupon {
    type State = Coupon;
    type Event = shop::CouponEvent;
    type Error = String;
    fn state(&self) -> Coupon { Coupon::Unknown }
    fn decide(&self, coupon: &Coupon) -> Result<Vec<shop::CouponEvent>, String> {
        match coupon {
            Coupon::Active { remaining } if *remaining > 0 => {
                Ok(vec![shop::CouponApplied { coupon: self.coupon.clone(), cart: self.cart.clone() }.into()])
            }
            _ => Err(format!("coupon {} is not usable", self.coupon)),
        }
    }
}

fn main() {}
