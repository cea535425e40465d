// Misspelled and misused `each` in #[tag(..)]: every mistake is reported.

#[factum::events]
pub mod shop {
    pub struct OrderPlaced {
        #[tag(each = true)] pub products: Vec<String>,
        #[tag("sku", eahc)] pub skus: Vec<String>,
        #[tag("line", each, each)] pub lines: Vec<u32>,
        #[tag("order", "cart")] pub order: String,
    }
}

fn main() {}
