// `public` is a flag: written alone, not with a value.
#[factum::events]
pub mod shop {
    #[event(public = true)]
    pub struct CouponIssued { #[tag] pub coupon: String, pub uses: u32 }
}

fn main() {}
