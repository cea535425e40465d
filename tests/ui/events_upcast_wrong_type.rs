// An upcaster must be `fn(serde_json::Value) -> serde_json::Value`: one of another type is
// reported at its path.

#[factum::events]
mod shop {
    #[event(version = 2)]
    #[upcast(from = 1, with = super::up)]
    pub struct CouponApplied {
        #[tag]
        pub coupon: String,
    }
}

fn up(value: &str) -> String {
    value.to_owned()
}

fn main() {}
