// `snapshot_every` counts events from 1 up; `snapshot_version` needs `snapshot_every`.
use factum::prelude::*;

#[factum::events]
pub mod bank {
    pub struct Deposited { #[tag] pub account: String, pub amount: u64 }
}

#[derive(State, Debug, Default, serde::Serialize, serde::Deserialize)]
#[state(snapshot_every = 0)]
pub struct Balance { #[id] pub account: String, pub total: u64 }

#[factum::fold]
impl Balance {
    fn deposited(&mut self, e: &bank::Deposited) { self.total += e.amount }
}

#[derive(State, Debug, Default)]
#[state(snapshot_version = 2)]
pub struct Deposits { #[id] pub account: String, pub count: u64 }

#[factum::fold]
impl Deposits {
    fn deposited(&mut self, _: &bank::Deposited) { self.count += 1 }
}

fn main() {}
