// A handled event does not carry the state's `#[id]` tag (`cart`), so the state could never see it.
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
pub struct Cart { #[id] pub cart: String, pub coupons: u32, pub items: u32 }

#[factum::fold]
impl Cart {
    fn applied(&mut self, _: &shop::CouponApplied) { self.coupons += 1 }
    fn issued(&mut self, _: &shop::CouponIssued) {}
    fn added(&mut self, _: &shop::ItemAdded) { self.items += 1 }
}

#[derive(Decision)]
#[decision(partition = coupon)]
pub struct ApplyCoupon { pub coupon: String, pub cart: String, pub request: String }

impl Decide for ApplyCoupon {
    type State = Cart;
    type Event = shop::CartEvent;
    type Error = String;
    fn state(&self) -> Cart { Cart::new(self.cart.clone()) }
    fn decide(&self, cart: &Cart) -> Result<Vec<shop::CartEvent>, String> {
        if cart.coupons > 0 {
            return Err(format!("cart {} already has a coupon", self.cart));
        }
        Ok(vec![shop::CouponApplied { coupon: self.coupon.clone(), cart: self.cart.clone() }.into()])
    }
}

fn main() {}
