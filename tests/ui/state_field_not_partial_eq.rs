// A state field whose type cannot be compared: factum compares states field by field to
// tell whether a warm copy or a snapshot was folded from the same start.
use factum::prelude::*;

#[derive(Debug, Default)]
pub struct Limits {
    pub daily: u32,
}

#[derive(State, Debug)]
pub struct Account {
    #[id]
    pub account: String,
    pub limits: Limits,
}

fn main() {}
