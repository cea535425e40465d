// Excluding a type that only a state with an #[any] handler reads: its query names no
// type, so the exclusion would remove nothing (with and without `exclude_from`).
use factum::prelude::*;

#[factum::events]
pub mod courses {
    pub struct CourseDefined { #[tag] pub course: String, pub capacity: u32 }
    pub struct StudentSubscribed { #[tag] pub course: String, #[tag] pub student: String }
}

#[derive(State, Debug, Default)]
pub struct Log { #[id] pub course: String, pub students: u32 }

#[factum::fold]
impl Log {
    fn subscribed(&mut self, _: &courses::StudentSubscribed) { self.students += 1 }
    #[any]
    fn other(&mut self, _: &StoredEvent) {}
}

#[derive(Decision)]
#[decision(exclude = [courses::CourseDefined])]
pub struct Subscribe { pub course: String, pub student: String }

/// Folds `StudentSubscribed` by name, so an exclusion could narrow it, but not `Log`.
#[derive(State, Debug, Default)]
pub struct Seats { #[id] pub course: String, pub taken: u32 }

#[factum::fold]
impl Seats {
    fn subscribed(&mut self, _: &courses::StudentSubscribed) { self.taken += 1 }
}

#[derive(Decision)]
#[decision(exclude = [courses::StudentSubscribed], exclude_from = [Log])]
pub struct SubscribeScoped { pub course: String, pub student: String }

impl Decide for SubscribeScoped {
    type State = (Log, Seats);
    type Event = courses::Event;
    type Error = String;
    fn state(&self) -> (Log, Seats) { (Log::new(self.course.clone()), Seats::new(self.course.clone())) }
    fn decide(&self, _: &(Log, Seats)) -> Result<Vec<courses::Event>, String> { Ok(vec![]) }
}

macro_rules! decide {
    ($name:ident) => {
        impl Decide for $name {
            type State = Log;
            type Event = courses::Event;
            type Error = String;
            fn state(&self) -> Log { Log::new(self.course.clone()) }
            fn decide(&self, _: &Log) -> Result<Vec<courses::Event>, String> {
                Ok(vec![courses::StudentSubscribed { course: self.course.clone(), student: self.student.clone() }.into()])
            }
        }
    };
}
decide!(Subscribe);

fn main() {}
