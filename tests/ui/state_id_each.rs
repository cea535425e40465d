// `each` belongs to an event's #[tag], not to a state's #[id].
use factum::prelude::*;

#[factum::events]
pub mod shop {
    pub struct OrderPlaced { #[tag("product", each)] pub products: Vec<String> }
}

#[derive(State, Debug, Default)]
pub struct Product { #[id(each)] pub product: String, pub orders: u32 }

#[factum::fold]
impl Product {
    fn placed(&mut self, _: &shop::OrderPlaced) { self.orders += 1 }
}

fn main() {}
