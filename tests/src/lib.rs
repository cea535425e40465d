//! Test-only crate of the factum workspace: the trybuild compile-fail suite (`ui/`) and
//! cross-crate scenarios (`tests/`). It has no API of its own; its tests use factum as an
//! application would, through `factum::prelude`:
//!
//! ```
//! use factum::prelude::*;
//!
//! let query = Query::item(QueryItem::types(["CouponApplied"]).with_tags([Tag::new("coupon", "S1")]));
//! assert!(query.matches("CouponApplied", &[Tag::new("coupon", "S1"), Tag::new("cart", "c9")]));
//! assert!(!query.matches("CouponApplied", &[Tag::new("coupon", "S2")]));
//! ```

pub mod races;
