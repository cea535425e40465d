//! Seats reserved by people: a partition key (the seat), an idempotency key (the
//! request) and a domain refusal (the seat is taken).

use factum::prelude::*;
use serde::{Deserialize, Serialize};

/// The seat domain's events.
#[factum::events]
pub mod events {
    /// A seat was reserved.
    pub struct SeatReserved {
        /// The seat.
        #[tag]
        pub seat: String,
        /// Who reserved it.
        pub by: String,
    }
}

/// Why a reservation was refused.
#[derive(Debug, thiserror::Error)]
pub enum SeatError {
    /// Someone else has it.
    #[error("seat {seat} is taken by {by}")]
    Taken {
        /// The seat.
        seat: String,
        /// Who has it.
        by: String,
    },
}

/// A seat.
#[derive(State, Clone, Debug, Default)]
pub struct Seat {
    /// The seat.
    #[id]
    pub seat: String,
    /// Who has it.
    pub by: Option<String>,
}

#[factum::fold]
impl Seat {
    fn reserved(&mut self, e: &events::SeatReserved) {
        self.by = Some(e.by.clone());
    }
}

/// Reserves a seat for someone.
#[derive(Decision, Clone, Debug, Serialize, Deserialize)]
#[decision(partition = seat, idempotency = request)]
pub struct Reserve {
    /// The seat.
    pub seat: String,
    /// Who wants it.
    pub by: String,
    /// The request's id, the same when sent again.
    pub request: String,
}

impl Reserve {
    /// A request with a fresh id.
    pub fn new(seat: &str, by: &str) -> Self {
        Reserve {
            seat: seat.into(),
            by: by.into(),
            request: uuid::Uuid::now_v7().to_string(),
        }
    }
}

impl Decide for Reserve {
    type State = Seat;
    type Event = events::SeatReserved;
    type Error = SeatError;

    fn state(&self) -> Seat {
        Seat::new(&self.seat)
    }

    fn decide(&self, seat: &Seat) -> Result<Vec<events::SeatReserved>, SeatError> {
        if let Some(by) = &seat.by {
            return Err(SeatError::Taken {
                seat: self.seat.clone(),
                by: by.clone(),
            });
        }
        Ok(vec![events::SeatReserved {
            seat: self.seat.clone(),
            by: self.by.clone(),
        }])
    }
}

/// Frees a seat: no worker in the tests handles it.
#[derive(Decision, Clone, Debug, Serialize, Deserialize)]
#[decision(partition = seat)]
pub struct Release {
    /// The seat.
    pub seat: String,
}

impl Decide for Release {
    type State = Seat;
    type Event = events::SeatReserved;
    type Error = SeatError;

    fn state(&self) -> Seat {
        Seat::new(&self.seat)
    }

    fn decide(&self, _: &Seat) -> Result<Vec<events::SeatReserved>, SeatError> {
        Ok(vec![])
    }
}
