// Upcasters that cannot form a chain to the current version, each reported where it is
// written: a step from the current version, a step written twice, a gap in the chain, a
// step on an event without a version, an unknown key.

#[factum::events]
mod shop {
    #[event(version = 4)]
    #[upcast(from = 1, with = super::up)]
    #[upcast(from = 4, with = super::up)]
    #[upcast(from = 3, with = super::up)]
    #[upcast(from = 3, with = super::up)]
    pub struct CouponApplied {
        #[tag]
        pub coupon: String,
    }

    #[upcast(from = 1, with = super::up)]
    pub struct CartCleared {
        #[tag]
        pub cart: String,
    }

    #[event(version = 2)]
    #[upcast(from = 1, wiht = super::up)]
    pub struct CartOpened {
        #[tag]
        pub cart: String,
    }
}

fn up(value: serde_json::Value) -> serde_json::Value {
    value
}

fn main() {}
