// `partition_tag` without a `partition`, and an empty `partition_tag`.
use factum::prelude::*;

#[factum::events]
pub mod shop {
    pub struct CouponApplied { #[tag] pub coupon: String }
}

#[derive(State, Debug, Default)]
pub struct Coupon { #[id] pub coupon: String }

#[factum::fold]
impl Coupon {
    fn applied(&mut self, _: &shop::CouponApplied) {}
}

#[derive(Decision)]
#[decision(partition_tag = "coupon")]
pub struct Unpartitioned { pub code: String }

#[derive(Decision)]
#[decision(partition = code, partition_tag = "")]
pub struct EmptyTag { pub code: String }

macro_rules! decide_nothing {
    ($($name:ident),*) => {$(
        impl Decide for $name {
            type State = Coupon;
            type Event = shop::CouponApplied;
            type Error = String;
            fn state(&self) -> Coupon { Coupon::new(self.code.clone()) }
            fn decide(&self, _: &Coupon) -> Result<Vec<shop::CouponApplied>, String> { Ok(Vec::new()) }
        }
    )*};
}
decide_nothing!(Unpartitioned, EmptyTag);

fn main() {}
