//! The benchmark's domains: accounts receiving deposits, and coupons redeemed under
//! contention.

use factum::prelude::*;

/// The events.
#[factum::events]
pub mod ledger {
    /// Money arrived on an account.
    pub struct Deposited {
        /// The account.
        #[tag]
        pub account: String,
        /// How much.
        pub amount: u64,
    }
}

/// An account's balance: what the fold benchmarks fold.
#[derive(State, Debug, Default)]
pub struct Account {
    /// The account.
    #[id]
    pub account: String,
    /// The sum of its deposits.
    pub balance: u64,
    /// How many deposits it had.
    pub deposits: u64,
}

#[factum::fold]
impl Account {
    fn deposited(&mut self, e: &ledger::Deposited) {
        self.balance += e.amount;
        self.deposits += 1;
    }
}

/// The same balance, kept with snapshots: what the warm snapshot load benchmark loads.
#[derive(State, Debug, Default, serde::Serialize, serde::Deserialize)]
#[state(snapshot_every = 100)]
pub struct SnapshotAccount {
    /// The account.
    #[id]
    pub account: String,
    /// The sum of its deposits.
    pub balance: u64,
    /// How many deposits it had.
    pub deposits: u64,
}

#[factum::fold]
impl SnapshotAccount {
    fn deposited(&mut self, e: &ledger::Deposited) {
        self.balance += e.amount;
        self.deposits += 1;
    }
}

/// Deposit on an account: reads its balance, appends guarded by it.
#[derive(Decision)]
#[decision(partition = account)]
pub struct Deposit {
    /// The account.
    pub account: String,
    /// How much.
    pub amount: u64,
}

/// Never happens: deposits are always accepted.
#[derive(Debug)]
pub struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for Never {}

impl Decide for Deposit {
    type State = Account;
    type Event = ledger::Deposited;
    type Error = Never;

    fn state(&self) -> Account {
        Account::new(self.account.clone())
    }

    fn decide(&self, _: &Account) -> Result<Vec<ledger::Deposited>, Never> {
        Ok(vec![ledger::Deposited {
            account: self.account.clone(),
            amount: self.amount,
        }])
    }
}

/// [`Deposit`] on the account kept with snapshots: a decision on a long-lived state.
#[derive(Decision)]
#[decision(partition = account)]
pub struct SnapshotDeposit {
    /// The account.
    pub account: String,
    /// How much.
    pub amount: u64,
}

impl Decide for SnapshotDeposit {
    type State = SnapshotAccount;
    type Event = ledger::Deposited;
    type Error = Never;

    fn state(&self) -> SnapshotAccount {
        SnapshotAccount::new(self.account.clone())
    }

    fn decide(&self, _: &SnapshotAccount) -> Result<Vec<ledger::Deposited>, Never> {
        Ok(vec![ledger::Deposited {
            account: self.account.clone(),
            amount: self.amount,
        }])
    }
}

/// A ready-to-append deposit on `account`.
pub fn deposit(account: &str, amount: u64) -> NewEvent {
    let event = ledger::Deposited {
        account: account.to_owned(),
        amount,
    };
    // A fixed struct always encodes.
    NewEvent::encode(&event, Codec::Json).unwrap_or_else(|e| panic!("{e}"))
}

/// The contention workloads' events: coupons issued with a number of uses, and redeemed.
#[factum::events]
pub mod promo {
    /// A coupon was issued with a number of uses.
    pub struct CouponIssued {
        /// The coupon code.
        #[tag]
        pub coupon: String,
        /// How many times it may be redeemed.
        pub uses: u64,
    }

    /// A coupon was redeemed once.
    pub struct CouponRedeemed {
        /// The coupon code.
        #[tag]
        pub coupon: String,
        /// The request that redeemed it.
        pub request: String,
    }
}

/// A coupon: whether it was issued, its uses and how many were taken.
#[derive(State, Debug, Default)]
pub struct Coupon {
    /// The coupon code.
    #[id]
    pub coupon: String,
    /// Whether it was issued.
    pub issued: bool,
    /// Its uses.
    pub uses: u64,
    /// Uses taken.
    pub redeemed: u64,
}

#[factum::fold]
impl Coupon {
    fn issued(&mut self, e: &promo::CouponIssued) {
        self.issued = true;
        self.uses = e.uses;
    }

    fn redeemed(&mut self, _: &promo::CouponRedeemed) {
        self.redeemed += 1;
    }
}

/// Redeem a coupon once: reads the coupon (issued, uses left) and appends under the
/// condition that no event of the coupon was written since the read (no exclusions, so
/// concurrent redemptions of one coupon conflict: the hot key).
///
/// Retries are raised from the default 10 to 1,000 (same backoff: 1 ms doubling to
/// 100 ms, with jitter), so that under optimistic concurrency every decision of the
/// hot-key workload commits and decisions/s counts commits.
#[derive(Decision, serde::Serialize, serde::Deserialize)]
#[decision(partition = coupon, idempotency = request, retries = 1000)]
pub struct Redeem {
    /// The coupon code.
    pub coupon: String,
    /// The request's id: a repeated request returns the first outcome.
    pub request: uuid::Uuid,
}

/// Why a redemption was refused.
#[derive(Debug)]
pub enum Refused {
    /// The coupon was never issued.
    NotIssued(String),
    /// Its uses are all taken.
    UsedUp(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotIssued(c) => write!(f, "coupon {c} was never issued"),
            Refused::UsedUp(c) => write!(f, "coupon {c} is used up"),
        }
    }
}

impl std::error::Error for Refused {}

impl Decide for Redeem {
    type State = Coupon;
    type Event = promo::CouponRedeemed;
    type Error = Refused;

    fn state(&self) -> Coupon {
        Coupon::new(self.coupon.clone())
    }

    fn decide(&self, coupon: &Coupon) -> Result<Vec<promo::CouponRedeemed>, Refused> {
        if !coupon.issued {
            return Err(Refused::NotIssued(self.coupon.clone()));
        }
        if coupon.redeemed >= coupon.uses {
            return Err(Refused::UsedUp(self.coupon.clone()));
        }
        Ok(vec![promo::CouponRedeemed {
            coupon: self.coupon.clone(),
            request: self.request.to_string(),
        }])
    }
}

/// A ready-to-append issue of `coupon` with `uses` uses.
pub fn issue(coupon: &str, uses: u64) -> NewEvent {
    let event = promo::CouponIssued {
        coupon: coupon.to_owned(),
        uses,
    };
    NewEvent::encode(&event, Codec::Json).unwrap_or_else(|e| panic!("{e}"))
}
