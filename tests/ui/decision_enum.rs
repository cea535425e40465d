// #[derive(Decision)] on an enum.
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
#[decision(partition = coupon)]
pub enum ApplyCoupon {
    ToCart { coupon: String, cart: String },
}

impl Decide for ApplyCoupon {
    type State = Coupon;
    type Event = shop::CouponEvent;
    type Error = String;
    fn state(&self) -> Coupon {
        let ApplyCoupon::ToCart { coupon, .. } = self;
        Coupon::new(coupon.clone())
    }
    fn decide(&self, coupon: &Coupon) -> Result<Vec<shop::CouponEvent>, String> {
        let ApplyCoupon::ToCart { coupon: code, cart } = self;
        if coupon.remaining == 0 {
            return Err(format!("coupon {code} is used up"));
        }
        Ok(vec![shop::CouponApplied { coupon: code.clone(), cart: cart.clone() }.into()])
    }
}

fn main() {}
