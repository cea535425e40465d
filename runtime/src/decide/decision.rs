use std::fmt::{Debug, Display};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use super::DecisionInfo;
use super::{Exclusions, StateSet};
use crate::model::idempotency::{Fingerprint, IdempotencyKey};
use crate::model::{EventSet, Query};

/// How a decision retries after its append condition failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: fail on the first conflict).
    pub max_retries: u32,
    /// The first backoff delay; it doubles each retry.
    pub min_delay: Duration,
    /// The longest backoff delay.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The default policy: 32 retries, 1 ms doubling to 100 ms, with jitter.
    ///
    /// Jitter adds a random part of up to one more delay to each wait, so a retry waits
    /// between `delay` and `2 × delay`, never more than `2 × max_delay`.
    ///
    /// Why 32: an append fails its condition only when another decision committed
    /// something it relies on after it read, so among `n` decisions started together on
    /// one state (and no other writer) each retries at most `n - 1` times. The default
    /// lets a burst of up to 33 concurrent writers on one state all commit — the worst
    /// case, a state without ids that every command writes (invoice numbers), on a store
    /// that commits one of them per round (SQLite's single writer does) — at the price
    /// of waiting a few seconds for the last of them. Such a decision is better run in
    /// a serial lane (see the catalog's "hot global state" warning); a decision that
    /// prefers to fail fast sets `#[decision(retries = n)]`.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        max_retries: 32,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(100),
    };

    /// The delays to wait before each retry, `max_retries` of them: doubling from
    /// `min_delay` up to `max_delay` (raised to `min_delay` if below it), each plus a
    /// random jitter of up to the same amount again.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send + Sync + 'static {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay.max(self.min_delay))
            .with_max_times(self.max_retries as usize)
            .with_jitter()
            .build()
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::DEFAULT
    }
}

/// A decision's concurrency metadata, fixed at compile time by `#[derive(Decision)]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecisionMeta {
    /// The decision's name.
    pub name: &'static str,
    /// The field whose value is the partition key (serial lane), if any.
    pub partition: Option<&'static str>,
    /// The tag whose value the partition field holds, when the field is named otherwise
    /// (`partition = from, partition_tag = "account"`); the static analysis reads it.
    pub partition_tag: Option<&'static str>,
    /// The field whose value is the idempotency key, if any.
    pub idempotency: Option<&'static str>,
    /// Event types removed from the validation query (tolerated overbooking), and the
    /// states whose queries lose them.
    pub exclude: Exclusions,
    /// The event types it may emit; `None` allows any type of its event set.
    pub emits: Option<&'static [&'static str]>,
    /// How it retries on conflict.
    pub retry: RetryPolicy,
}

impl DecisionMeta {
    /// The tag the partition key is a value of: `partition_tag`, or else the partition
    /// field's own name (the convention: `partition = coupon` holds a `coupon` tag).
    pub fn partition_tag_key(&self) -> Option<&'static str> {
        self.partition_tag.or(self.partition)
    }
}

/// The metadata half of a decision, derived by `#[derive(Decision)]`.
pub trait Decision: Send + Sync + 'static {
    /// Its concurrency metadata.
    const META: DecisionMeta;

    /// The partition key of this command, when the decision declares one.
    fn partition_key(&self) -> Option<String>;

    /// The idempotency key of this command, when the decision declares one.
    fn idempotency_key(&self) -> Option<String>;

    /// A digest of this command's content, stored with its idempotency key so that the
    /// same key sent with other content is told apart from a repeat
    /// ([`DecideError::IdempotencyKeyReused`](crate::DecideError::IdempotencyKeyReused)).
    ///
    /// `#[derive(Decision)]` implements it for a decision with `idempotency = ..`, which
    /// must then implement `serde::Serialize`: [`Fingerprint::of`] the decision's name
    /// and its serialized fields, the idempotency key's included. A decision without
    /// one (the default) has its key checked as before fingerprints: a repeat replays
    /// the first outcome, whatever its content.
    fn fingerprint(&self) -> Option<Fingerprint> {
        None
    }

    /// The key this command's events carry and the store records: its
    /// [`idempotency_key`](Decision::idempotency_key) scoped by its name, with its
    /// [`fingerprint`](Decision::fingerprint) (see [`IdempotencyKey::new`]). Not meant
    /// to be overridden.
    fn idempotency(&self) -> Option<IdempotencyKey> {
        let key = self.idempotency_key()?;
        Some(IdempotencyKey::new(
            Self::META.name,
            &key,
            self.fingerprint(),
        ))
    }
}

/// The domain half of a decision, written by the user: which states it needs and the
/// pure function from those states to new events or a domain error.
#[diagnostic::on_unimplemented(
    message = "`{Self}` derives `Decision` but has no `impl Decide`",
    label = "needs `impl Decide for {Self}`",
    note = "write `impl Decide for {Self} {{ type State = ..; type Event = ..; type Error = ..; fn state(&self) -> Self::State {{ .. }} fn decide(&self, state: &Self::State) -> Result<Vec<Self::Event>, Self::Error> {{ .. }} }}`"
)]
pub trait Decide: Decision {
    /// The states it reads: one state, a tuple, or a `Vec`.
    type State: StateSet;
    /// The events it may return: an event struct, a group, or a module's event enum.
    type Event: EventSet;
    /// Its domain error, returned to the caller untouched.
    type Error: Debug + Display + Send + Sync + 'static;

    /// The states to fold, empty but for their ids.
    fn state(&self) -> Self::State;

    /// Decides on the folded states. Pure: no I/O, no clock, no randomness.
    fn decide(&self, state: &Self::State) -> Result<Vec<Self::Event>, Self::Error>;

    /// The query the append is guarded by: the states' queries minus the exclusions.
    fn validation_query(state: &Self::State) -> Query {
        state.validation_query(&Self::META.exclude)
    }

    /// Catalog entry.
    fn info() -> DecisionInfo {
        DecisionInfo {
            meta: Self::META,
            states: <Self::State as StateSet>::infos(),
            several: <Self::State as StateSet>::several(),
            event_types: <Self::Event as EventSet>::TYPES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_bounds_with_jitter_and_stop_after_max_retries() {
        let policy = RetryPolicy {
            max_retries: 6,
            min_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(10),
        };
        for _ in 0..50 {
            let delays: Vec<Duration> = policy.delays().collect();
            assert_eq!(delays.len(), 6);
            let bases = [2, 4, 8, 10, 10, 10].map(Duration::from_millis);
            for (delay, base) in delays.iter().zip(bases) {
                assert!(
                    *delay >= base && *delay <= base * 2,
                    "{delay:?} for a base of {base:?}"
                );
            }
        }
        let none = RetryPolicy {
            max_retries: 0,
            ..policy
        };
        assert_eq!(none.delays().count(), 0);
    }

    #[test]
    fn a_max_delay_below_the_min_delay_is_raised_to_it() {
        let policy = RetryPolicy {
            max_retries: 3,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(10),
        };
        for delay in policy.delays() {
            assert!(
                delay >= Duration::from_millis(50) && delay <= Duration::from_millis(100),
                "{delay:?}"
            );
        }
    }
}
