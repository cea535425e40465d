use std::fmt;

use serde::{Deserialize, Serialize};

/// An event's place in the store's single global order.
///
/// Positions are strictly increasing and start at 1; gaps are allowed. A reader never
/// sees a position commit after a higher one it has already seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position(pub u64);

impl Position {
    /// The numeric value of the position.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The position right after this one.
    pub fn next(self) -> Position {
        Position(self.0 + 1)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}
