//! The log, read back from the store, checked against what the commands were told.
//!
//! A command is **lost** when it got no answer, or an answer that is neither an
//! acknowledged commit nor a domain refusal (a conflict after the last retry, a store
//! error, a stopped dispatcher), or when it was told it committed at positions where the
//! log does not hold its event. An event is **duplicated** when no command was told of
//! it (every event of the rush must belong to exactly one acknowledged command), or when
//! it is a second application of the coupon to one cart.

use std::collections::{BTreeSet, HashMap};

use factum::prelude::*;
use futures::TryStreamExt;

use super::scenario::{Answer, Kind, Observed, Rush};
use crate::coupons::{Coupon, CouponError, events};

/// How many lines of detail an audit keeps for each kind of finding.
const DETAILS: usize = 5;

/// What the audit found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// Applications of the coupon in the log.
    pub applied: u64,
    /// Commands lost.
    pub lost: u64,
    /// Events in the log that no command was told of, or second applications to a cart.
    pub duplicated: u64,
    /// Commands the domain refused.
    pub refused: u64,
    /// Of those, applications refused because the coupon was used up.
    pub used_up: u64,
    /// Anything else wrong with the log: it cannot be read or decoded, or the coupon's
    /// state folded from it disagrees with the applications it holds.
    pub problems: Vec<String>,
    /// The first few lost commands and duplicated events, described.
    pub details: Vec<String>,
}

impl Audit {
    fn lose(&mut self, detail: impl FnOnce() -> String) {
        self.lost += 1;
        if self.lost <= DETAILS as u64 {
            self.details.push(format!("lost: {}", detail()));
        }
    }
}

/// Reads the whole log of `store` and checks it against `observed`, the answers of a
/// run of `rush`.
pub async fn audit<S: EventStore>(store: &S, rush: &Rush, observed: &Observed) -> Audit {
    let mut audit = Audit::default();
    let log: Vec<StoredEvent> = match store
        .read(&Query::all(), ReadOptions::forward())
        .try_collect()
        .await
    {
        Ok(log) => log,
        Err(e) => {
            audit.problems.push(format!("reading the log failed: {e}"));
            return audit;
        }
    };

    // Every event of the rush, by position: the command it must belong to.
    let setup: BTreeSet<Position> = observed.setup.iter().copied().collect();
    let mut logged: HashMap<Position, Option<(Kind, String)>> = HashMap::new();
    let mut applications: HashMap<String, Vec<Position>> = HashMap::new();
    let mut coupon = Coupon::new(&rush.coupon);
    for event in &log {
        if coupon.matches(event)
            && let Err(e) = coupon.apply(event)
        {
            audit
                .problems
                .push(format!("the coupon's state does not fold: {e}"));
        }
        let owner = match events::Event::from_stored(event) {
            Ok(events::Event::CartOpened(e)) => Some((Kind::OpenCart, e.cart)),
            Ok(events::Event::ItemAdded(e)) => Some((Kind::AddItem, e.cart)),
            Ok(events::Event::CouponApplied(e)) if e.coupon == rush.coupon => {
                audit.applied += 1;
                applications
                    .entry(e.cart.clone())
                    .or_default()
                    .push(event.position);
                Some((Kind::ApplyCoupon, e.cart))
            }
            // Another coupon applied, a coupon issued or a price set: no command of the
            // rush writes those.
            Ok(_) => None,
            Err(e) => {
                audit.problems.push(format!("the log does not decode: {e}"));
                None
            }
        };
        if !setup.contains(&event.position) {
            logged.insert(event.position, owner);
        }
    }
    if u64::from(coupon.applied) != audit.applied {
        audit.problems.push(format!(
            "the coupon's state folded {} applications, the log holds {}",
            coupon.applied, audit.applied
        ));
    }

    // Every answer, against the log.
    let mut claimed: BTreeSet<Position> = BTreeSet::new();
    for command in &observed.commands {
        match &command.answer {
            Answer::Committed { positions, .. } => {
                let mut missing = positions.is_empty().then(|| "nothing".to_owned());
                for position in positions {
                    let theirs = matches!(
                        logged.get(position),
                        Some(Some((kind, cart))) if *kind == command.kind && *cart == command.cart
                    );
                    if !theirs || !claimed.insert(*position) {
                        missing.get_or_insert_with(|| position.to_string());
                    }
                }
                if let Some(at) = missing {
                    audit.lose(|| {
                        format!(
                            "{:?} for {} was told it committed at {at}, which the log does not \
                             hold for it",
                            command.kind, command.cart
                        )
                    });
                }
            }
            Answer::Refused(e) => {
                audit.refused += 1;
                if matches!(e, CouponError::CouponUsedUp { .. }) {
                    audit.used_up += 1;
                }
            }
            Answer::Failed(e) => {
                audit.lose(|| format!("{:?} for {}: {e}", command.kind, command.cart));
            }
        }
    }
    let unanswered = rush.commands().saturating_sub(observed.commands.len());
    if unanswered > 0 {
        audit.lost += unanswered as u64;
        audit
            .details
            .push(format!("lost: {unanswered} commands got no answer"));
    }

    // Every event of the rush, against the answers.
    let mut duplicated: BTreeSet<Position> = logged
        .keys()
        .filter(|position| !claimed.contains(position))
        .copied()
        .collect();
    for positions in applications.values() {
        duplicated.extend(positions.iter().skip(1));
    }
    audit.duplicated = duplicated.len() as u64;
    for position in duplicated.iter().take(DETAILS) {
        let what = match logged.get(position) {
            Some(Some((kind, cart))) => format!("{kind:?} for {cart}"),
            _ => "an event".to_owned(),
        };
        let why = if claimed.contains(position) {
            "a second application to its cart"
        } else {
            "no command was told of it"
        };
        audit
            .details
            .push(format!("duplicated: {what} at {position}: {why}"));
    }
    audit
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use factum::prelude::*;

    use super::audit;
    use crate::coupons::events;
    use crate::rush::scenario::{Answer, Kind, run};
    use crate::rush::{Run, Rush};

    fn small() -> Rush {
        Rush {
            uses: 5,
            customers: 20,
            background_carts: 2,
            items_per_cart: 3,
            item_pause: Duration::ZERO,
            ..Rush::seed()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_clean_run_passes_and_every_tampering_shows() {
        let rush = small();
        let store = MemoryStore::new();
        let bar = indicatif::ProgressBar::hidden();
        let observed = run(store.clone(), &rush, Run::Optimistic, &bar)
            .await
            .expect("the rush runs");
        let clean = audit(&store, &rush, &observed).await;
        assert_eq!((clean.applied, clean.lost, clean.duplicated), (5, 0, 0));
        assert!(clean.problems.is_empty(), "{:?}", clean.problems);

        // A command that got no answer: lost, and its event nobody was told of.
        let mut unanswered = observed.clone();
        let gone = unanswered
            .commands
            .iter()
            .position(|c| {
                c.kind == Kind::ApplyCoupon && matches!(c.answer, Answer::Committed { .. })
            })
            .expect("an application committed");
        unanswered.commands.remove(gone);
        let found = audit(&store, &rush, &unanswered).await;
        assert_eq!(
            (found.lost, found.duplicated),
            (1, 1),
            "{:?}",
            found.details
        );

        // A command told a position that holds another cart's event.
        let mut lied = observed.clone();
        let told = lied
            .commands
            .iter_mut()
            .find(|c| c.kind == Kind::OpenCart)
            .expect("a cart was opened");
        if let Answer::Committed { positions, .. } = &mut told.answer {
            positions[0] = observed.setup[0];
        }
        let found = audit(&store, &rush, &lied).await;
        assert_eq!(
            (found.lost, found.duplicated),
            (1, 1),
            "{:?}",
            found.details
        );

        // A second application to a cart that nobody asked for.
        let cart = Rush::customer_cart(0);
        let stray = events::CouponApplied {
            coupon: rush.coupon.clone(),
            cart,
        };
        let event = NewEvent::encode(&stray, Codec::Json).expect("encode");
        store.append(vec![event], None).await.expect("append");
        let found = audit(&store, &rush, &observed).await;
        assert_eq!((found.applied, found.lost, found.duplicated), (6, 0, 1));
    }
}
