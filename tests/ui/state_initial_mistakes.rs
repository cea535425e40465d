// `#[initial(..)]` misused: on an id, without a value, as `= value`, twice, with a value
// of the wrong type, and on a state without a generated constructor.
use factum::prelude::*;

#[derive(State, Debug, PartialEq)]
pub struct Invoice {
    #[id]
    #[initial(String::from("x"))]
    pub invoice: String,
    #[initial]
    pub a: u32,
    #[initial = 1]
    pub b: u32,
    #[initial(1)]
    #[initial(2)]
    pub c: u32,
    #[initial("one")]
    pub d: u32,
}

#[derive(State, Debug, PartialEq)]
#[state(constructor = false)]
pub struct Counter {
    #[initial(1)]
    pub next: u64,
}

fn main() {}
