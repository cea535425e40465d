// An #[any] handler on a state without ids would fold, and conflict with, the whole store.
use factum::prelude::*;

#[derive(State, Debug, Default)]
pub struct Everything { pub count: u64 }

#[factum::fold]
impl Everything {
    #[any]
    fn other(&mut self, _: &StoredEvent) { self.count += 1 }
}

fn main() {}
