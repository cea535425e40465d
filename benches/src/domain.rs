//! The benchmark's domain: accounts receiving deposits.

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

/// A ready-to-append deposit on `account`.
pub fn deposit(account: &str, amount: u64) -> NewEvent {
    let event = ledger::Deposited {
        account: account.to_owned(),
        amount,
    };
    // A fixed struct always encodes.
    NewEvent::encode(&event, Codec::Json).unwrap_or_else(|e| panic!("{e}"))
}
