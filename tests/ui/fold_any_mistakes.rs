// Several misuses of #[any] in one file, each its own mistake: arguments on the
// attribute, a second #[any] handler, and handlers of the wrong shape.
use factum::prelude::*;

#[factum::events]
pub mod courses {
    pub struct CourseDefined { #[tag] pub course: String, pub capacity: u32 }
}

#[derive(State, Debug, Default)]
pub struct Log { #[id] pub course: String, pub seen: u32 }

#[factum::fold]
impl Log {
    fn defined(&mut self, _: &courses::CourseDefined) {}
    #[any(all)]
    fn other(&mut self, _: &StoredEvent) {}
    #[any]
    fn again(&mut self, _: &StoredEvent) {}
}

#[derive(State, Debug, Default)]
pub struct Shapes { #[id] pub course: String, pub seen: u32 }

#[factum::fold]
impl Shapes {
    #[any]
    fn with_event(&mut self, _: &courses::CourseDefined, _: &StoredEvent) {}
}

#[derive(State, Debug, Default)]
pub struct ByValue { #[id] pub course: String, pub seen: u32 }

#[factum::fold]
impl ByValue {
    #[any]
    #[any]
    fn other(&mut self, stored: StoredEvent) { let _ = stored; }
}

#[derive(State, Debug, Default)]
pub struct Nothing { #[id] pub course: String, pub seen: u32 }

#[factum::fold]
impl Nothing {
    #[any]
    fn other(&self) -> u32 { 0 }
}

fn main() {}
