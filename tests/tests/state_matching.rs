//! A state's allocation-free `matches` (type list plus ids compared while formatting)
//! agrees with its query, for string and numeric ids and any tags an event carries.

use factum::prelude::*;
use factum::{State, StateSet};
use proptest::prelude::*;

#[factum::events]
pub mod seats {
    pub struct Booked {
        #[tag]
        pub flight: u32,
        #[tag]
        pub seat: String,
    }
    pub struct Released {
        #[tag]
        pub flight: u32,
        #[tag]
        pub seat: String,
    }
    pub struct Boarded {
        #[tag]
        pub flight: u32,
    }
}

#[derive(State, Default)]
pub struct Seat {
    #[id]
    pub flight: u32,
    #[id]
    pub seat: String,
    pub taken: bool,
}

#[factum::fold]
impl Seat {
    fn booked(&mut self, _: &seats::Booked) {
        self.taken = true;
    }
    fn released(&mut self, _: &seats::Released) {
        self.taken = false;
    }
}

fn stored(event_type: &str, tags: Vec<Tag>) -> StoredEvent {
    StoredEvent::record(
        NewEvent {
            event_type: event_type.into(),
            version: 1,
            tags,
            payload: factum::model::Payload {
                codec: Codec::Json,
                bytes: b"{}".to_vec(),
            },
            metadata: factum::Metadata::new(),
            recorded_at: None,
        },
        Position(1),
    )
}

fn tag() -> impl Strategy<Value = Tag> {
    prop_oneof![
        (0u32..12).prop_map(|f| Tag::new("flight", f)),
        prop::sample::select(vec!["1A", "1B", "10A", "", "1a"]).prop_map(|s| Tag::new("seat", s)),
        prop::sample::select(vec!["01", "1 ", "+1", "1A"]).prop_map(|s| Tag::new("flight", s)),
        Just(Tag::new("gate", "1")),
    ]
}

proptest! {
    #[test]
    fn matches_agrees_with_the_query(
        flight in 0u32..12,
        seat in prop::sample::select(vec!["1A", "1B", "10A", "", "1a"]),
        event_type in prop::sample::select(vec!["Booked", "Released", "Boarded", "Other"]),
        tags in prop::collection::vec(tag(), 0..6),
    ) {
        let state = Seat::new(flight, seat);
        let event = stored(event_type, tags);
        prop_assert_eq!(state.matches(&event), State::query(&state).matches_event(&event));
        prop_assert_eq!(state.matches(&event), state.read_query().matches_event(&event));
    }
}
