// An #[any] handler gets the stored event, not a payload type of the user's choice.
use factum::prelude::*;

#[derive(State, Debug, Default)]
pub struct Log { #[id] pub course: String, pub seen: u32 }

#[factum::fold]
impl Log {
    #[any]
    fn other(&mut self, _: &serde_json::Value) {}
}

fn main() {}
