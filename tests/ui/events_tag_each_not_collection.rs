// `#[tag(each)]` on a field that is one value, and on a collection whose elements are not text.

#[factum::events]
pub mod shop {
    pub struct OrderPlaced {
        #[tag(each)] pub order: String,
        #[tag("sku", each)] pub skus: Vec<Vec<u8>>,
    }
}

fn main() {}
