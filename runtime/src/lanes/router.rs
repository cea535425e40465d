//! Which lane a partition key goes to.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// Submissions a key's share is counted over.
const WINDOW: u32 = 1024;

/// Routes partition keys onto lanes by hash, and gives a key that takes more than a
/// quarter of a window's submissions a lane of its own (up to `hot_lanes` such keys).
pub(super) struct Router {
    hasher: RandomState,
    lanes: usize,
    hot_lanes: usize,
    /// Submissions per key hash in the current window.
    window: HashMap<u64, u32>,
    seen: u32,
    /// Hot keys' hashes and their own lanes.
    hot: HashMap<u64, usize>,
}

/// Where a submission goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// To this lane.
    To(usize),
    /// Its key has become hot: it goes to a lane of its own once lane `from`, where the
    /// key ran so far, has a hand-over queued ([`Router::promoted`]); to `from` if not.
    Promote {
        /// The lane the key hashes onto.
        from: usize,
        /// The key's hash, to pass to [`Router::promoted`].
        hash: u64,
    },
}

impl Router {
    /// A router over `lanes` hashed lanes (at least one) and up to `hot_lanes` hot ones.
    pub(super) fn new(lanes: usize, hot_lanes: usize) -> Self {
        Router {
            hasher: RandomState::new(),
            lanes: lanes.max(1),
            hot_lanes,
            window: HashMap::new(),
            seen: 0,
            hot: HashMap::new(),
        }
    }

    /// Where a submission with partition key `key` goes, counting it.
    pub(super) fn route(&mut self, key: &str) -> Route {
        let hash = self.hasher.hash_one(key);
        if let Some(&lane) = self.hot.get(&hash) {
            return Route::To(lane);
        }
        let from = (hash % self.lanes as u64) as usize;
        if self.hot.len() >= self.hot_lanes {
            return Route::To(from);
        }
        self.seen += 1;
        let count = {
            let count = self.window.entry(hash).or_insert(0);
            *count += 1;
            *count
        };
        if self.seen >= WINDOW {
            self.seen = 0;
            self.window.clear();
        }
        if count > WINDOW / 4 {
            Route::Promote { from, hash }
        } else {
            Route::To(from)
        }
    }

    /// The key of `hash` (from [`Route::Promote`]) runs in `lane` from now on.
    pub(super) fn promoted(&mut self, hash: u64, lane: usize) {
        self.hot.insert(hash, lane);
        self.window.remove(&hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Routes `key` as the dispatcher does, promoting it to `next` when asked.
    fn submit(router: &mut Router, key: &str, next: &mut usize) -> usize {
        match router.route(key) {
            Route::To(lane) => lane,
            Route::Promote { hash, .. } => {
                let lane = *next;
                *next += 1;
                router.promoted(hash, lane);
                lane
            }
        }
    }

    #[test]
    fn a_cool_key_stays_on_its_hashed_lane() {
        let mut router = Router::new(4, 2);
        let first = router.route("account-1");
        assert!(matches!(first, Route::To(lane) if lane < 4));
        // Other keys in between, never more than a quarter of the window each.
        for round in 0..3 * WINDOW {
            let other = format!("other-{}", round % 8);
            assert!(matches!(router.route(&other), Route::To(lane) if lane < 4));
            if round % 8 == 0 {
                assert_eq!(router.route("account-1"), first);
            }
        }
    }

    #[test]
    fn a_key_over_a_quarter_of_a_window_gets_a_lane_of_its_own() {
        let mut router = Router::new(2, 1);
        let mut next = 2;
        let mut lanes = Vec::new();
        for round in 0..WINDOW {
            lanes.push(submit(&mut router, "hot", &mut next));
            submit(&mut router, &format!("cool-{round}"), &mut next);
        }
        let hashed = lanes[0];
        let promoted_at = lanes.iter().position(|&lane| lane == 2);
        // Its 257th submission (more than a quarter of 1024) is the first on the new lane.
        assert_eq!(promoted_at, Some((WINDOW / 4) as usize));
        assert!(lanes[..(WINDOW / 4) as usize].iter().all(|&l| l == hashed));
        assert!(lanes[(WINDOW / 4) as usize..].iter().all(|&l| l == 2));
        assert_eq!(next, 3, "one hot lane at most");
    }

    #[test]
    fn a_refused_hand_over_is_asked_again_later() {
        let mut router = Router::new(2, 1);
        let mut asked = 0;
        for _ in 0..WINDOW / 4 + 3 {
            if let Route::Promote { .. } = router.route("hot") {
                // The old lane's queue was full: nothing is promoted.
                asked += 1;
            }
        }
        assert_eq!(asked, 3, "each submission past the threshold asks again");
    }

    #[test]
    fn no_more_hot_keys_than_hot_lanes() {
        let mut router = Router::new(2, 1);
        let mut next = 2;
        for _ in 0..WINDOW {
            submit(&mut router, "first", &mut next);
            submit(&mut router, "second", &mut next);
        }
        assert_eq!(next, 3, "the second hot key stays on its hashed lane");
        assert!(matches!(router.route("second"), Route::To(lane) if lane < 2));
        assert_eq!(router.route("first"), Route::To(2));
    }

    #[test]
    fn without_hot_lanes_nothing_is_promoted() {
        let mut router = Router::new(3, 0);
        for _ in 0..2 * WINDOW {
            assert!(matches!(router.route("hot"), Route::To(lane) if lane < 3));
        }
    }

    #[test]
    fn shares_are_counted_per_window() {
        let mut router = Router::new(2, 1);
        // A fifth of every window, for many windows: never hot.
        for round in 0..10 * WINDOW {
            let key = if round % 5 == 0 {
                "warm".to_owned()
            } else {
                format!("cool-{round}")
            };
            assert!(matches!(router.route(&key), Route::To(_)), "round {round}");
        }
    }
}
