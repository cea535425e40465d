//! Bank accounts: what dynamic consistency boundaries give over aggregates.
//!
//! With aggregates, each account is a consistency boundary of its own, so a transfer —
//! a rule over *two* accounts — becomes a saga: debit one aggregate, then credit the
//! other, and compensate when the second step fails. Here [`Transfer`] reads both
//! [`Account`]s as a tuple of states, from **one** read, and appends one
//! [`MoneyTransferred`](events::MoneyTransferred) event, tagged with both accounts, on
//! the condition that neither account changed meanwhile. Money moves atomically or not
//! at all; there is no half-done transfer to compensate.
//!
//! The boundary is chosen per decision, not per entity:
//!
//! - [`Deposit`] validates only the account's opening and closing: money moving
//!   meanwhile cannot make a deposit wrong, so deposits never conflict with movements.
//! - [`Withdraw`] and [`Transfer`] leave deposits out of their validation query
//!   (`exclude = [events::MoneyDeposited]`): a deposit landing between the read and the
//!   append only adds money, so it cannot make the decision wrong, and need not make it
//!   retry. [`CloseAccount`] keeps deposits in: a deposit would break "the balance is
//!   zero".
//! - The daily withdrawal limit is a second state, [`DailyWithdrawals`], that reads the
//!   time each withdrawal was recorded (the fold's second argument, the
//!   [`StoredEvent`]) and counts only the last 24 hours. `decide` stays pure: the time
//!   comes with the command ([`Withdraw::now`]), so a test can decide "tomorrow" without
//!   waiting a day.
//!
//! ```
//! use factum::prelude::*;
//! use factum_examples::bank::{BankError, Deposit, OpenAccount, Transfer};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let engine = Engine::new(MemoryStore::new());
//! engine.decide(&OpenAccount::new("alice", "Alice", 0)).await.unwrap();
//! engine.decide(&OpenAccount::new("bob", "Bob", 0)).await.unwrap();
//! engine.decide(&Deposit::new("alice", 10_000)).await.unwrap();
//! engine.decide(&Transfer::new("alice", "bob", 4_000)).await.unwrap();
//! let broke = engine.decide(&Transfer::new("alice", "bob", 7_000)).await.unwrap_err();
//! assert_eq!(
//!     broke.to_string(),
//!     "account alice cannot pay 70.00: its balance is 60.00 and its overdraft 0.00, so 60.00 is available",
//! );
//! assert!(matches!(broke.into_domain(), Some(BankError::InsufficientFunds { .. })));
//! # });
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use factum::Catalog;
use factum::prelude::*;
use uuid::Uuid;

/// The most money one account may withdraw (with [`Withdraw`]) within 24 hours, in
/// cents: 500.00.
pub const DAILY_WITHDRAWAL_LIMIT_CENTS: u32 = 50_000;

/// How far back [`DailyWithdrawals`] counts.
pub const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The events of the bank domain.
///
/// Every event is tagged `account:<id>`; a transfer carries that tag twice, once per
/// account, so the states of both accounts see it.
#[factum::events]
pub mod events {
    /// An account was opened for an owner, with the overdraft it is allowed.
    #[group(Lifecycle)]
    #[event(public)]
    pub struct AccountOpened {
        /// The account id.
        #[tag]
        pub account: String,
        /// Who owns it.
        pub owner: String,
        /// How far below zero its balance may go, in cents.
        pub overdraft_cents: u32,
    }

    /// Money was paid into an account.
    #[group(Movement)]
    pub struct MoneyDeposited {
        /// The account id.
        #[tag]
        pub account: String,
        /// The amount, in cents.
        pub cents: u32,
    }

    /// Money was taken out of an account in cash.
    #[group(Movement)]
    pub struct MoneyWithdrawn {
        /// The account id.
        #[tag]
        pub account: String,
        /// The amount, in cents.
        pub cents: u32,
    }

    /// Money moved from one account to another: one event, tagged with both accounts
    /// (`account:<from>` and `account:<to>`).
    #[group(Movement)]
    pub struct MoneyTransferred {
        /// The account paying.
        #[tag("account")]
        pub from: String,
        /// The account paid.
        #[tag("account")]
        pub to: String,
        /// The amount, in cents.
        pub cents: u32,
    }

    /// An account was closed; it takes no more money.
    #[group(Lifecycle)]
    #[event(public)]
    pub struct AccountClosed {
        /// The account id.
        #[tag]
        pub account: String,
    }
}

/// `cents` as an amount with two decimals, like `-12.05`.
pub fn money(cents: impl Into<i64>) -> String {
    let cents: i64 = cents.into();
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Why a bank decision said no.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    /// [`OpenAccount`] for an id that is taken (by an open or a closed account).
    #[error("account {account} already exists")]
    AccountAlreadyExists {
        /// The account id.
        account: String,
    },
    /// A decision about an account that was never opened.
    #[error("account {account} does not exist")]
    AccountNotFound {
        /// The account id.
        account: String,
    },
    /// Money in or out of a closed account, or closing it twice.
    #[error("account {account} is closed")]
    AccountClosed {
        /// The account id.
        account: String,
    },
    /// A deposit, withdrawal or transfer of nothing.
    #[error("the amount for account {account} must be above zero")]
    ZeroAmount {
        /// The account id (the paying one, for a transfer).
        account: String,
    },
    /// A withdrawal or transfer beyond the balance plus the overdraft.
    #[error(
        "account {account} cannot pay {}: its balance is {} and its overdraft {}, so {} is available",
        money(*.cents),
        money(*.balance_cents),
        money(*.overdraft_cents),
        money(*.balance_cents + i64::from(*.overdraft_cents)),
    )]
    InsufficientFunds {
        /// The account id.
        account: String,
        /// The amount asked for, in cents.
        cents: u32,
        /// Its balance, in cents.
        balance_cents: i64,
        /// Its overdraft, in cents.
        overdraft_cents: u32,
    },
    /// A withdrawal that would take the last 24 hours' withdrawals over
    /// [`DAILY_WITHDRAWAL_LIMIT_CENTS`].
    #[error(
        "account {account} cannot withdraw {}: {} was withdrawn in the last 24 h and the daily limit is {}",
        money(*.cents),
        money(i64::try_from(*.withdrawn_cents).unwrap_or(i64::MAX)),
        money(*.limit_cents),
    )]
    DailyLimitExceeded {
        /// The account id.
        account: String,
        /// The amount asked for, in cents.
        cents: u32,
        /// Withdrawn within the last 24 hours, in cents.
        withdrawn_cents: u64,
        /// The limit, in cents.
        limit_cents: u32,
    },
    /// A transfer whose two sides are the same account.
    #[error("cannot transfer from account {account} to itself")]
    SameAccount {
        /// The account id.
        account: String,
    },
    /// [`CloseAccount`] for an account that still holds money, or owes some.
    #[error(
        "account {account} cannot be closed with a balance of {}: it must be 0.00",
        money(*.balance_cents)
    )]
    BalanceNotZero {
        /// The account id.
        account: String,
        /// Its balance, in cents.
        balance_cents: i64,
    },
}

/// Where an account is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccountStatus {
    /// Never opened: the id is free.
    #[default]
    Unopened,
    /// Open: it takes and pays money.
    Open,
    /// Closed: it takes and pays nothing any more.
    Closed,
}

/// An account as the decisions see it: folded from every event tagged with it.
#[derive(State, Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    /// The account id.
    #[id]
    pub account: String,
    /// Where it is in its life.
    pub status: AccountStatus,
    /// Who owns it.
    pub owner: String,
    /// How far below zero its balance may go, in cents.
    pub overdraft_cents: u32,
    /// Its balance, in cents; negative while it uses its overdraft.
    pub balance_cents: i64,
}

impl Account {
    /// What it can pay: its balance plus its overdraft, in cents.
    pub fn available_cents(&self) -> i64 {
        self.balance_cents + i64::from(self.overdraft_cents)
    }

    /// Whether it is open, or the reason it cannot take or pay money.
    fn ensure_open(&self) -> Result<(), BankError> {
        let account = self.account.clone();
        match self.status {
            AccountStatus::Open => Ok(()),
            AccountStatus::Unopened => Err(BankError::AccountNotFound { account }),
            AccountStatus::Closed => Err(BankError::AccountClosed { account }),
        }
    }

    /// Whether it can pay `cents`, or the reason it cannot.
    fn ensure_funds(&self, cents: u32) -> Result<(), BankError> {
        if i64::from(cents) > self.available_cents() {
            return Err(BankError::InsufficientFunds {
                account: self.account.clone(),
                cents,
                balance_cents: self.balance_cents,
                overdraft_cents: self.overdraft_cents,
            });
        }
        Ok(())
    }
}

#[factum::fold]
impl Account {
    fn opened(&mut self, e: &events::AccountOpened) {
        self.status = AccountStatus::Open;
        self.owner.clone_from(&e.owner);
        self.overdraft_cents = e.overdraft_cents;
    }

    fn deposited(&mut self, e: &events::MoneyDeposited) {
        self.balance_cents += i64::from(e.cents);
    }

    fn withdrawn(&mut self, e: &events::MoneyWithdrawn) {
        self.balance_cents -= i64::from(e.cents);
    }

    /// The state sees a transfer through either of its two tags; which side it is on
    /// decides the sign.
    fn transferred(&mut self, e: &events::MoneyTransferred) {
        if e.from == self.account {
            self.balance_cents -= i64::from(e.cents);
        }
        if e.to == self.account {
            self.balance_cents += i64::from(e.cents);
        }
    }

    fn closed(&mut self, _: &events::AccountClosed) {
        self.status = AccountStatus::Closed;
    }
}

/// An account's cash withdrawals within the 24 hours before a given instant: the
/// daily limit's state.
///
/// It needs that instant to fold, so it has no generated constructor
/// (`#[state(constructor = false)]`); [`DailyWithdrawals::new`] takes it. Its fold reads
/// when each withdrawal was recorded from the stored event, and skips those recorded
/// 24 hours or more before it.
#[derive(State, Clone, Debug, PartialEq, Eq)]
#[state(constructor = false)]
pub struct DailyWithdrawals {
    /// The account id.
    #[id]
    pub account: String,
    /// Withdrawals recorded after this instant count: 24 hours before the command's
    /// time.
    pub window_start: SystemTime,
    /// What they add up to, in cents.
    pub withdrawn_cents: u64,
    /// How many there are.
    pub withdrawals: u32,
}

impl DailyWithdrawals {
    /// The withdrawals of `account` in the 24 hours up to `now`, before any event is
    /// folded.
    pub fn new(account: impl Into<String>, now: SystemTime) -> Self {
        DailyWithdrawals {
            account: account.into(),
            window_start: now.checked_sub(DAY).unwrap_or(UNIX_EPOCH),
            withdrawn_cents: 0,
            withdrawals: 0,
        }
    }
}

#[factum::fold]
impl DailyWithdrawals {
    fn withdrawn(&mut self, e: &events::MoneyWithdrawn, stored: &StoredEvent) {
        if stored.recorded_at > self.window_start {
            self.withdrawn_cents += u64::from(e.cents);
            self.withdrawals += 1;
        }
    }
}

/// Opens an account for an owner, with an overdraft (0 for none).
#[derive(Decision, Clone, Debug)]
#[decision(partition = account, emits = [events::AccountOpened])]
pub struct OpenAccount {
    /// The account id.
    pub account: String,
    /// Who owns it.
    pub owner: String,
    /// How far below zero its balance may go, in cents.
    pub overdraft_cents: u32,
}

impl OpenAccount {
    /// A request to open `account` for `owner` with an overdraft of `overdraft_cents`.
    pub fn new(account: impl Into<String>, owner: impl Into<String>, overdraft_cents: u32) -> Self {
        OpenAccount {
            account: account.into(),
            owner: owner.into(),
            overdraft_cents,
        }
    }
}

impl Decide for OpenAccount {
    type State = Account;
    type Event = events::LifecycleEvent;
    type Error = BankError;

    fn state(&self) -> Account {
        Account::new(&self.account)
    }

    fn decide(&self, account: &Account) -> Result<Vec<events::LifecycleEvent>, BankError> {
        if account.status != AccountStatus::Unopened {
            return Err(BankError::AccountAlreadyExists {
                account: self.account.clone(),
            });
        }
        Ok(vec![
            events::AccountOpened {
                account: self.account.clone(),
                owner: self.owner.clone(),
                overdraft_cents: self.overdraft_cents,
            }
            .into(),
        ])
    }
}

/// Pays money into an open account.
///
/// It reads the whole [`Account`], but only whether it is open matters: money moving
/// in or out meanwhile cannot make a deposit wrong. So every movement is excluded from
/// its validation query, and deposits never conflict with transfers, withdrawals or
/// each other — only with the account being opened or closed.
#[derive(Decision, Clone, Debug, serde::Serialize)]
#[decision(
    partition = account,
    idempotency = request,
    exclude = [events::MoneyDeposited, events::MoneyWithdrawn, events::MoneyTransferred],
    emits = [events::MoneyDeposited]
)]
pub struct Deposit {
    /// The account id.
    pub account: String,
    /// The amount, in cents.
    pub cents: u32,
    /// The id of this request, the same when the client repeats it.
    pub request: Uuid,
}

impl Deposit {
    /// A request to deposit `cents` into `account`, with a fresh request id.
    pub fn new(account: impl Into<String>, cents: u32) -> Self {
        Deposit {
            account: account.into(),
            cents,
            request: Uuid::now_v7(),
        }
    }
}

impl Decide for Deposit {
    type State = Account;
    type Event = events::MovementEvent;
    type Error = BankError;

    fn state(&self) -> Account {
        Account::new(&self.account)
    }

    fn decide(&self, account: &Account) -> Result<Vec<events::MovementEvent>, BankError> {
        account.ensure_open()?;
        if self.cents == 0 {
            return Err(BankError::ZeroAmount {
                account: self.account.clone(),
            });
        }
        Ok(vec![
            events::MoneyDeposited {
                account: self.account.clone(),
                cents: self.cents,
            }
            .into(),
        ])
    }
}

/// Takes cash out of an open account: within its balance plus overdraft, and within
/// [`DAILY_WITHDRAWAL_LIMIT_CENTS`] over the 24 hours up to [`Withdraw::now`].
///
/// It reads the [`Account`] and its [`DailyWithdrawals`] in one read. Deposits are
/// excluded from the validation query: one landing meanwhile only adds money.
#[derive(Decision, Clone, Debug, serde::Serialize)]
#[decision(
    partition = account,
    idempotency = request,
    exclude = [events::MoneyDeposited],
    emits = [events::MoneyWithdrawn],
    retries = 30,
    min_delay_ms = 1,
    max_delay_ms = 20
)]
pub struct Withdraw {
    /// The account id.
    pub account: String,
    /// The amount, in cents.
    pub cents: u32,
    /// When the withdrawal is asked for: the daily limit counts the 24 hours before.
    /// `decide` is pure, so the time comes with the command.
    pub now: SystemTime,
    /// The id of this request, the same when the client repeats it.
    pub request: Uuid,
}

impl Withdraw {
    /// A request to withdraw `cents` from `account` at `now`, with a fresh request id.
    pub fn new(account: impl Into<String>, cents: u32, now: SystemTime) -> Self {
        Withdraw {
            account: account.into(),
            cents,
            now,
            request: Uuid::now_v7(),
        }
    }
}

impl Decide for Withdraw {
    type State = (Account, DailyWithdrawals);
    type Event = events::MovementEvent;
    type Error = BankError;

    fn state(&self) -> Self::State {
        (
            Account::new(&self.account),
            DailyWithdrawals::new(&self.account, self.now),
        )
    }

    fn decide(
        &self,
        (account, today): &Self::State,
    ) -> Result<Vec<events::MovementEvent>, BankError> {
        account.ensure_open()?;
        if self.cents == 0 {
            return Err(BankError::ZeroAmount {
                account: self.account.clone(),
            });
        }
        account.ensure_funds(self.cents)?;
        if today.withdrawn_cents + u64::from(self.cents) > u64::from(DAILY_WITHDRAWAL_LIMIT_CENTS) {
            return Err(BankError::DailyLimitExceeded {
                account: self.account.clone(),
                cents: self.cents,
                withdrawn_cents: today.withdrawn_cents,
                limit_cents: DAILY_WITHDRAWAL_LIMIT_CENTS,
            });
        }
        Ok(vec![
            events::MoneyWithdrawn {
                account: self.account.clone(),
                cents: self.cents,
            }
            .into(),
        ])
    }
}

/// Moves money from one open account to another, atomically: one read of both
/// accounts, one event tagged with both, one conditional append guarding both.
///
/// The paying account must afford it (balance plus overdraft). With aggregates this
/// would be two commits and a saga; here a concurrent change to either account makes
/// the append conflict, and the retry decides again on fresh balances. Deposits are
/// excluded from the validation query: one landing meanwhile only adds money.
/// `partition = from` names the paying account as the key a serial lane would queue on;
/// `partition_tag` tells the analysis it is an `account` tag's value. A transfer reads
/// two accounts, so its key orders it only against the payer's other decisions:
/// `describe` warns that it meets the payee's decisions in another lane.
#[derive(Decision, Clone, Debug, serde::Serialize)]
#[decision(
    partition = from,
    partition_tag = "account",
    idempotency = request,
    exclude = [events::MoneyDeposited],
    emits = [events::MoneyTransferred],
    retries = 50,
    min_delay_ms = 1,
    max_delay_ms = 20
)]
pub struct Transfer {
    /// The account paying.
    pub from: String,
    /// The account paid.
    pub to: String,
    /// The amount, in cents.
    pub cents: u32,
    /// The id of this request, the same when the client repeats it.
    pub request: Uuid,
}

impl Transfer {
    /// A request to move `cents` from `from` to `to`, with a fresh request id.
    pub fn new(from: impl Into<String>, to: impl Into<String>, cents: u32) -> Self {
        Transfer {
            from: from.into(),
            to: to.into(),
            cents,
            request: Uuid::now_v7(),
        }
    }
}

impl Decide for Transfer {
    type State = (Account, Account);
    type Event = events::MovementEvent;
    type Error = BankError;

    fn state(&self) -> Self::State {
        (Account::new(&self.from), Account::new(&self.to))
    }

    fn decide(&self, (from, to): &Self::State) -> Result<Vec<events::MovementEvent>, BankError> {
        if self.from == self.to {
            return Err(BankError::SameAccount {
                account: self.from.clone(),
            });
        }
        from.ensure_open()?;
        to.ensure_open()?;
        if self.cents == 0 {
            return Err(BankError::ZeroAmount {
                account: self.from.clone(),
            });
        }
        from.ensure_funds(self.cents)?;
        Ok(vec![
            events::MoneyTransferred {
                from: self.from.clone(),
                to: self.to.clone(),
                cents: self.cents,
            }
            .into(),
        ])
    }
}

/// Closes an open account whose balance is exactly zero.
///
/// Unlike [`Withdraw`] and [`Transfer`], it validates deposits too: one landing
/// meanwhile would leave money in a closed account.
#[derive(Decision, Clone, Debug)]
#[decision(partition = account, emits = [events::AccountClosed])]
pub struct CloseAccount {
    /// The account id.
    pub account: String,
}

impl Decide for CloseAccount {
    type State = Account;
    type Event = events::LifecycleEvent;
    type Error = BankError;

    fn state(&self) -> Account {
        Account::new(&self.account)
    }

    fn decide(&self, account: &Account) -> Result<Vec<events::LifecycleEvent>, BankError> {
        account.ensure_open()?;
        if account.balance_cents != 0 {
            return Err(BankError::BalanceNotZero {
                account: self.account.clone(),
                balance_cents: account.balance_cents,
            });
        }
        Ok(vec![
            events::AccountClosed {
                account: self.account.clone(),
            }
            .into(),
        ])
    }
}

/// The bank domain's catalog: its event types, states and decisions, with their
/// concurrency metadata: `cargo run -p factum-examples --example bank -- describe`
/// prints it, and `docs/model/bank.md` shows it as a graph.
pub fn catalog() -> Catalog {
    Catalog::new()
        .events::<events::Event>()
        .state::<Account>()
        .state::<DailyWithdrawals>()
        .decision::<OpenAccount>()
        .decision::<Deposit>()
        .decision::<Withdraw>()
        .decision::<Transfer>()
        .decision::<CloseAccount>()
}
