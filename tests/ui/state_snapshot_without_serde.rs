// A state that keeps snapshots must derive serde's traits: reported at `snapshot_every`.
use factum::prelude::*;

#[factum::events]
pub mod bank {
    pub struct Deposited { #[tag] pub account: String, pub amount: u64 }
}

#[derive(State, Debug, Default)]
#[state(snapshot_every = 100)]
pub struct Balance { #[id] pub account: String, pub total: u64 }

#[factum::fold]
impl Balance {
    fn deposited(&mut self, e: &bank::Deposited) { self.total += e.amount }
}

fn main() {}
