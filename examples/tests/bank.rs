//! Every rule and every error of the bank domain with the given/when/then harness, the
//! 24-hour window of the daily limit, the decisions' boundaries as data, and real
//! concurrency: transfers racing on tokio tasks must conserve money and respect every
//! overdraft.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use factum::prelude::*;
use factum::testing::{given, given_nothing};
use factum_examples::bank::{
    Account, AccountStatus, BankError, CloseAccount, DAILY_WITHDRAWAL_LIMIT_CENTS, DAY,
    DailyWithdrawals, Deposit, OpenAccount, Transfer, Withdraw, catalog, events, money,
};
use factum_examples::latency::Latency;
use futures::TryStreamExt;

fn opened(account: &str, overdraft_cents: u32) -> events::Event {
    events::AccountOpened {
        account: account.into(),
        owner: format!("owner of {account}"),
        overdraft_cents,
    }
    .into()
}

fn deposited(account: &str, cents: u32) -> events::Event {
    events::MoneyDeposited {
        account: account.into(),
        cents,
    }
    .into()
}

fn withdrawn(account: &str, cents: u32) -> events::Event {
    events::MoneyWithdrawn {
        account: account.into(),
        cents,
    }
    .into()
}

fn transferred(from: &str, to: &str, cents: u32) -> events::Event {
    events::MoneyTransferred {
        from: from.into(),
        to: to.into(),
        cents,
    }
    .into()
}

fn closed(account: &str) -> events::Event {
    events::AccountClosed {
        account: account.into(),
    }
    .into()
}

/// A fixed instant, so the 24-hour window is exact in the tests.
fn noon() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 60 * 60)
}

fn withdraw(account: &str, cents: u32, now: SystemTime) -> Withdraw {
    Withdraw::new(account, cents, now)
}

// OpenAccount

#[test]
fn an_account_is_opened() {
    given([opened("bob", 0)])
        .when(OpenAccount::new("alice", "Alice", 10_000))
        .then([events::AccountOpened {
            account: "alice".into(),
            owner: "Alice".into(),
            overdraft_cents: 10_000,
        }]);
}

#[test]
fn an_account_id_is_taken_once() {
    given([opened("alice", 0)])
        .when(OpenAccount::new("alice", "Someone else", 0))
        .then_error(BankError::AccountAlreadyExists {
            account: "alice".into(),
        });
}

#[test]
fn a_closed_account_id_is_not_reused() {
    given([opened("alice", 0), closed("alice")])
        .when(OpenAccount::new("alice", "Alice", 0))
        .then_error(BankError::AccountAlreadyExists {
            account: "alice".into(),
        });
}

// Deposit

#[test]
fn money_is_deposited() {
    given([opened("alice", 0)])
        .when(Deposit::new("alice", 2_500))
        .then([events::MoneyDeposited {
            account: "alice".into(),
            cents: 2_500,
        }]);
}

#[test]
fn a_deposit_needs_an_account() {
    given([opened("bob", 0)])
        .when(Deposit::new("alice", 2_500))
        .then_error(BankError::AccountNotFound {
            account: "alice".into(),
        });
}

#[test]
fn a_closed_account_takes_no_deposit() {
    given([opened("alice", 0), closed("alice")])
        .when(Deposit::new("alice", 2_500))
        .then_error(BankError::AccountClosed {
            account: "alice".into(),
        });
}

#[test]
fn a_deposit_is_above_zero() {
    given([opened("alice", 0)])
        .when(Deposit::new("alice", 0))
        .then_error(BankError::ZeroAmount {
            account: "alice".into(),
        });
}

// Withdraw: balance and overdraft

#[test]
fn money_is_withdrawn_within_the_balance() {
    given([opened("alice", 0), deposited("alice", 10_000)])
        .when(withdraw("alice", 10_000, SystemTime::now()))
        .then([events::MoneyWithdrawn {
            account: "alice".into(),
            cents: 10_000,
        }]);
}

#[test]
fn a_withdrawal_may_use_the_whole_overdraft() {
    given([opened("alice", 5_000), deposited("alice", 1_000)])
        .when(withdraw("alice", 6_000, SystemTime::now()))
        .then([events::MoneyWithdrawn {
            account: "alice".into(),
            cents: 6_000,
        }]);
}

#[test]
fn a_withdrawal_cannot_go_beyond_the_overdraft() {
    given([opened("alice", 5_000), deposited("alice", 1_000)])
        .when(withdraw("alice", 6_001, SystemTime::now()))
        .then_error(BankError::InsufficientFunds {
            account: "alice".into(),
            cents: 6_001,
            balance_cents: 1_000,
            overdraft_cents: 5_000,
        });
}

#[test]
fn an_account_in_overdraft_can_only_use_what_is_left() {
    given([
        opened("alice", 5_000),
        withdrawn("alice", 3_000),
        transferred("alice", "bob", 1_500),
    ])
    .when(withdraw("alice", 1_000, SystemTime::now()))
    .then_error(BankError::InsufficientFunds {
        account: "alice".into(),
        cents: 1_000,
        balance_cents: -4_500,
        overdraft_cents: 5_000,
    });
}

#[test]
fn incoming_and_outgoing_transfers_count_in_the_balance() {
    // alice: +100.00 deposit, +40.00 from bob, -30.00 to carol = 110.00.
    given([
        opened("alice", 0),
        deposited("alice", 10_000),
        transferred("bob", "alice", 4_000),
        transferred("alice", "carol", 3_000),
        transferred("bob", "carol", 99_000),
    ])
    .when(withdraw("alice", 11_001, SystemTime::now()))
    .then_error(BankError::InsufficientFunds {
        account: "alice".into(),
        cents: 11_001,
        balance_cents: 11_000,
        overdraft_cents: 0,
    });
}

#[test]
fn a_withdrawal_needs_an_account() {
    given_nothing()
        .when(withdraw("alice", 100, SystemTime::now()))
        .then_error(BankError::AccountNotFound {
            account: "alice".into(),
        });
}

#[test]
fn a_closed_account_pays_nothing() {
    given([opened("alice", 10_000), closed("alice")])
        .when(withdraw("alice", 100, SystemTime::now()))
        .then_error(BankError::AccountClosed {
            account: "alice".into(),
        });
}

#[test]
fn a_withdrawal_is_above_zero() {
    given([opened("alice", 0)])
        .when(withdraw("alice", 0, SystemTime::now()))
        .then_error(BankError::ZeroAmount {
            account: "alice".into(),
        });
}

// Withdraw: the daily limit, over the 24 hours before the command's `now`

#[test]
fn a_withdrawal_up_to_the_daily_limit_passes() {
    given([
        opened("alice", 0),
        deposited("alice", 100_000),
        withdrawn("alice", 20_000),
    ])
    .when(withdraw(
        "alice",
        DAILY_WITHDRAWAL_LIMIT_CENTS - 20_000,
        SystemTime::now(),
    ))
    .then([events::MoneyWithdrawn {
        account: "alice".into(),
        cents: 30_000,
    }]);
}

#[test]
fn a_withdrawal_beyond_the_daily_limit_is_refused() {
    given([
        opened("alice", 0),
        deposited("alice", 100_000),
        withdrawn("alice", 20_000),
        withdrawn("alice", 25_000),
    ])
    .when(withdraw("alice", 5_001, SystemTime::now()))
    .then_error(BankError::DailyLimitExceeded {
        account: "alice".into(),
        cents: 5_001,
        withdrawn_cents: 45_000,
        limit_cents: DAILY_WITHDRAWAL_LIMIT_CENTS,
    });
}

#[test]
fn one_withdrawal_above_the_daily_limit_is_refused() {
    given([opened("alice", 0), deposited("alice", 100_000)])
        .when(withdraw(
            "alice",
            DAILY_WITHDRAWAL_LIMIT_CENTS + 1,
            SystemTime::now(),
        ))
        .then_error(BankError::DailyLimitExceeded {
            account: "alice".into(),
            cents: DAILY_WITHDRAWAL_LIMIT_CENTS + 1,
            withdrawn_cents: 0,
            limit_cents: DAILY_WITHDRAWAL_LIMIT_CENTS,
        });
}

#[test]
fn transfers_and_other_accounts_do_not_count_toward_the_daily_limit() {
    given([
        opened("alice", 0),
        deposited("alice", 200_000),
        transferred("alice", "bob", 80_000),
        withdrawn("bob", 50_000),
    ])
    .when(withdraw(
        "alice",
        DAILY_WITHDRAWAL_LIMIT_CENTS,
        SystemTime::now(),
    ))
    .then([events::MoneyWithdrawn {
        account: "alice".into(),
        cents: DAILY_WITHDRAWAL_LIMIT_CENTS,
    }]);
}

#[test]
fn a_withdrawal_recorded_23_hours_ago_still_counts() {
    given([opened("alice", 0), deposited("alice", 100_000)])
        .at(noon())
        .and([withdrawn("alice", 45_000)])
        .when(withdraw("alice", 10_000, noon() + hours(23)))
        .then_error(BankError::DailyLimitExceeded {
            account: "alice".into(),
            cents: 10_000,
            withdrawn_cents: 45_000,
            limit_cents: DAILY_WITHDRAWAL_LIMIT_CENTS,
        });
}

#[test]
fn a_withdrawal_recorded_one_second_under_24_hours_ago_still_counts() {
    given([opened("alice", 0), deposited("alice", 100_000)])
        .at(noon())
        .and([withdrawn("alice", 45_000)])
        .when(withdraw(
            "alice",
            10_000,
            noon() + DAY - Duration::from_secs(1),
        ))
        .then_error(BankError::DailyLimitExceeded {
            account: "alice".into(),
            cents: 10_000,
            withdrawn_cents: 45_000,
            limit_cents: DAILY_WITHDRAWAL_LIMIT_CENTS,
        });
}

#[test]
fn a_withdrawal_recorded_exactly_24_hours_ago_no_longer_counts() {
    given([opened("alice", 0), deposited("alice", 100_000)])
        .at(noon())
        .and([withdrawn("alice", 45_000)])
        .when(withdraw("alice", 10_000, noon() + DAY))
        .then([events::MoneyWithdrawn {
            account: "alice".into(),
            cents: 10_000,
        }]);
}

#[test]
fn only_the_withdrawals_of_the_last_24_hours_count() {
    // Yesterday morning 400.00, this morning 300.00: at noon today only 300.00 counts.
    let today = noon() + DAY;
    given_nothing()
        .at(noon() - DAY)
        .and([opened("alice", 0), deposited("alice", 200_000)])
        .at(noon() - hours(2))
        .and([withdrawn("alice", 40_000)])
        .at(today - hours(2))
        .and([withdrawn("alice", 30_000)])
        .when(withdraw("alice", 20_001, today))
        .then_error(BankError::DailyLimitExceeded {
            account: "alice".into(),
            cents: 20_001,
            withdrawn_cents: 30_000,
            limit_cents: DAILY_WITHDRAWAL_LIMIT_CENTS,
        });
    given_nothing()
        .at(noon() - DAY)
        .and([opened("alice", 0), deposited("alice", 200_000)])
        .at(noon() - hours(2))
        .and([withdrawn("alice", 40_000)])
        .at(today - hours(2))
        .and([withdrawn("alice", 30_000)])
        .when(withdraw("alice", 20_000, today))
        .then([events::MoneyWithdrawn {
            account: "alice".into(),
            cents: 20_000,
        }]);
}

#[test]
fn old_withdrawals_still_count_in_the_balance() {
    // The daily limit forgets them; the balance does not.
    given([opened("alice", 0), deposited("alice", 50_000)])
        .at(noon())
        .and([withdrawn("alice", 45_000)])
        .when(withdraw("alice", 10_000, noon() + hours(48)))
        .then_error(BankError::InsufficientFunds {
            account: "alice".into(),
            cents: 10_000,
            balance_cents: 5_000,
            overdraft_cents: 0,
        });
}

#[test]
fn the_daily_window_folds_only_recent_withdrawals() {
    // The state itself, folded by hand from stored events with their recorded times.
    let at = |event: events::Event, position: u64, time: SystemTime| {
        let new = event.to_new_event(Codec::default()).unwrap();
        factum::StoredEvent::record_at(new, Position(position), time)
    };
    let mut today = DailyWithdrawals::new("alice", noon() + DAY);
    assert_eq!(today.window_start, noon());
    for event in [
        at(withdrawn("alice", 100), 1, noon()),
        at(withdrawn("alice", 200), 2, noon() + Duration::from_secs(1)),
        at(withdrawn("bob", 400), 3, noon() + hours(1)),
        at(deposited("alice", 800), 4, noon() + hours(1)),
    ] {
        today.fold(&event).unwrap();
    }
    assert_eq!((today.withdrawn_cents, today.withdrawals), (200, 1));
}

// Transfer: one read of both accounts, one event tagged with both

#[test]
fn money_is_transferred() {
    given([
        opened("alice", 0),
        opened("bob", 0),
        deposited("alice", 5_000),
    ])
    .when(Transfer::new("alice", "bob", 5_000))
    .then([events::MoneyTransferred {
        from: "alice".into(),
        to: "bob".into(),
        cents: 5_000,
    }]);
}

#[test]
fn a_transfer_may_use_the_overdraft() {
    given([opened("alice", 2_000), opened("bob", 0)])
        .when(Transfer::new("alice", "bob", 2_000))
        .then([events::MoneyTransferred {
            from: "alice".into(),
            to: "bob".into(),
            cents: 2_000,
        }]);
}

#[test]
fn a_transfer_cannot_go_beyond_the_overdraft() {
    given([
        opened("alice", 2_000),
        opened("bob", 0),
        deposited("alice", 1_000),
    ])
    .when(Transfer::new("alice", "bob", 3_001))
    .then_error(BankError::InsufficientFunds {
        account: "alice".into(),
        cents: 3_001,
        balance_cents: 1_000,
        overdraft_cents: 2_000,
    });
}

#[test]
fn the_receiving_account_balance_does_not_matter() {
    // bob is deep in his overdraft; he can still be paid.
    given([
        opened("alice", 0),
        opened("bob", 10_000),
        deposited("alice", 1_000),
        withdrawn("bob", 10_000),
    ])
    .when(Transfer::new("alice", "bob", 1_000))
    .then([transferred("alice", "bob", 1_000)]);
}

#[test]
fn a_transfer_to_the_same_account_is_refused() {
    given([opened("alice", 0), deposited("alice", 5_000)])
        .when(Transfer::new("alice", "alice", 1_000))
        .then_error(BankError::SameAccount {
            account: "alice".into(),
        });
}

#[test]
fn a_transfer_needs_the_paying_account() {
    given([opened("bob", 0)])
        .when(Transfer::new("alice", "bob", 1_000))
        .then_error(BankError::AccountNotFound {
            account: "alice".into(),
        });
}

#[test]
fn a_transfer_needs_the_receiving_account() {
    given([opened("alice", 0), deposited("alice", 5_000)])
        .when(Transfer::new("alice", "bob", 1_000))
        .then_error(BankError::AccountNotFound {
            account: "bob".into(),
        });
}

#[test]
fn a_closed_account_cannot_pay_a_transfer() {
    given([opened("alice", 0), opened("bob", 0), closed("alice")])
        .when(Transfer::new("alice", "bob", 1_000))
        .then_error(BankError::AccountClosed {
            account: "alice".into(),
        });
}

#[test]
fn a_closed_account_cannot_receive_a_transfer() {
    given([
        opened("alice", 0),
        opened("bob", 0),
        deposited("alice", 5_000),
        closed("bob"),
    ])
    .when(Transfer::new("alice", "bob", 1_000))
    .then_error(BankError::AccountClosed {
        account: "bob".into(),
    });
}

#[test]
fn a_transfer_is_above_zero() {
    given([opened("alice", 0), opened("bob", 0)])
        .when(Transfer::new("alice", "bob", 0))
        .then_error(BankError::ZeroAmount {
            account: "alice".into(),
        });
}

#[test]
fn a_transfer_is_stored_once_with_both_account_tags() {
    let then = given([
        opened("alice", 0),
        opened("bob", 0),
        deposited("alice", 500),
    ])
    .when(Transfer::new("alice", "bob", 500));
    let store = then.store().clone();
    let outcome = then.then([transferred("alice", "bob", 500)]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let log: Vec<StoredEvent> = rt
        .block_on(
            store
                .read(&Query::all(), ReadOptions::from(outcome.positions[0]))
                .try_collect(),
        )
        .unwrap();
    assert_eq!(log.len(), 1, "one event, not a debit and a credit");
    assert!(log[0].has_tag("account", "alice") && log[0].has_tag("account", "bob"));
}

// CloseAccount

#[test]
fn an_empty_account_is_closed() {
    given([
        opened("alice", 0),
        deposited("alice", 5_000),
        withdrawn("alice", 2_000),
        transferred("alice", "bob", 3_000),
    ])
    .when(CloseAccount {
        account: "alice".into(),
    })
    .then([events::AccountClosed {
        account: "alice".into(),
    }]);
}

#[test]
fn an_account_with_money_is_not_closed() {
    given([opened("alice", 0), deposited("alice", 5_000)])
        .when(CloseAccount {
            account: "alice".into(),
        })
        .then_error(BankError::BalanceNotZero {
            account: "alice".into(),
            balance_cents: 5_000,
        });
}

#[test]
fn an_account_in_overdraft_is_not_closed() {
    given([opened("alice", 5_000), withdrawn("alice", 1_250)])
        .when(CloseAccount {
            account: "alice".into(),
        })
        .then_error(BankError::BalanceNotZero {
            account: "alice".into(),
            balance_cents: -1_250,
        });
}

#[test]
fn closing_needs_an_account() {
    given_nothing()
        .when(CloseAccount {
            account: "alice".into(),
        })
        .then_error(BankError::AccountNotFound {
            account: "alice".into(),
        });
}

#[test]
fn an_account_is_closed_once() {
    given([opened("alice", 0), closed("alice")])
        .when(CloseAccount {
            account: "alice".into(),
        })
        .then_error(BankError::AccountClosed {
            account: "alice".into(),
        });
}

// The boundaries, as data

#[test]
fn a_transfer_reads_both_accounts_and_validates_all_but_deposits() {
    let transfer = Transfer::new("alice", "bob", 100);
    assert_eq!(
        transfer.state().read_query().to_string(),
        "AccountOpened,MoneyDeposited,MoneyWithdrawn,MoneyTransferred,AccountClosed[account:alice] \
         | AccountOpened,MoneyDeposited,MoneyWithdrawn,MoneyTransferred,AccountClosed[account:bob]"
    );
    assert_eq!(
        Transfer::validation_query(&transfer.state()).to_string(),
        "AccountOpened,MoneyWithdrawn,MoneyTransferred,AccountClosed[account:alice] \
         | AccountOpened,MoneyWithdrawn,MoneyTransferred,AccountClosed[account:bob]"
    );
    let meta = Transfer::META;
    assert_eq!(meta.partition, Some("from"));
    assert_eq!(meta.idempotency, Some("request"));
    assert_eq!(meta.emits, Some(&["MoneyTransferred"][..]));
    assert_eq!(transfer.partition_key().as_deref(), Some("alice"));
    assert_eq!(
        transfer.idempotency_key(),
        Some(transfer.request.to_string())
    );
}

#[test]
fn closing_validates_deposits_too() {
    let close = CloseAccount {
        account: "alice".into(),
    };
    assert_eq!(
        CloseAccount::validation_query(&close.state()).to_string(),
        "AccountOpened,MoneyDeposited,MoneyWithdrawn,MoneyTransferred,AccountClosed[account:alice]"
    );
}

#[test]
fn a_deposit_validates_only_the_opening_and_closing() {
    let deposit = Deposit::new("alice", 100);
    assert_eq!(
        Deposit::validation_query(&deposit.state()).to_string(),
        "AccountOpened,AccountClosed[account:alice]"
    );
    assert_eq!(
        deposit.state().read_query().to_string(),
        "AccountOpened,MoneyDeposited,MoneyWithdrawn,MoneyTransferred,AccountClosed[account:alice]",
        "it still reads (and folds) the whole account"
    );
}

#[test]
fn a_withdrawal_reads_the_account_and_its_daily_window() {
    let w = withdraw("alice", 100, noon());
    assert_eq!(
        Withdraw::validation_query(&w.state()).to_string(),
        "AccountOpened,MoneyWithdrawn,MoneyTransferred,AccountClosed[account:alice] \
         | MoneyWithdrawn[account:alice]"
    );
    assert_eq!(w.state().1.window_start, noon() - DAY);
    assert_eq!(w.partition_key().as_deref(), Some("alice"));
}

#[test]
fn the_catalog_lists_the_bank() {
    let catalog = catalog();
    assert_eq!(catalog.check(), Ok(()));
    let decisions: Vec<&str> = catalog.decisions().map(|d| d.meta.name).collect();
    assert_eq!(
        decisions,
        [
            "CloseAccount",
            "Deposit",
            "OpenAccount",
            "Transfer",
            "Withdraw"
        ]
    );
    let transfer = catalog.decision_info("Transfer").unwrap();
    let reads: Vec<&str> = transfer.states.iter().map(|s| s.name).collect();
    assert_eq!(reads, ["Account", "Account"]);
    assert_eq!(
        catalog.event_info("MoneyTransferred").unwrap().tag_keys,
        &["account"],
        "both fields give the one key `account`"
    );
    let text = catalog.describe();
    assert!(
        text.contains("| `DailyWithdrawals` | account | MoneyWithdrawn "),
        "{text}"
    );
    assert!(text.contains("(excludes MoneyDeposited)"), "{text}");
    assert_eq!(
        transfer.several,
        ["Account"],
        "a transfer reads two accounts"
    );
}

#[test]
fn a_movement_carries_its_request_as_idempotency_key() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let engine = Engine::new(MemoryStore::new());
        engine
            .decide(&OpenAccount::new("alice", "Alice", 0))
            .await
            .unwrap();
        let deposit = Deposit::new("alice", 100);
        let outcome = engine.decide(&deposit).await.unwrap();
        let stored: Vec<StoredEvent> = engine
            .store()
            .read(&Query::all(), ReadOptions::from(outcome.positions[0]))
            .try_collect()
            .await
            .unwrap();
        // Scoped by the decision, followed by the fingerprint of its content.
        let key = deposit.idempotency().expect("a deposit has a key");
        assert_eq!(key.recorded(), format!("Deposit:{}", deposit.request));
        assert!(key.fingerprint().is_some());
        assert_eq!(
            stored[0].metadata.idempotency_key.as_deref(),
            Some(key.metadata_key())
        );
    });
}

// Error messages, as users read them.

#[test]
fn amounts_read_as_money() {
    assert_eq!(money(0), "0.00");
    assert_eq!(money(5), "0.05");
    assert_eq!(money(12_345u32), "123.45");
    assert_eq!(money(-1_250), "-12.50");
    assert_eq!(money(i64::MIN), "-92233720368547758.08");
}

#[test]
fn error_messages_name_the_accounts_and_amounts() {
    let cases = [
        (
            BankError::AccountAlreadyExists {
                account: "alice".into(),
            },
            "account alice already exists",
        ),
        (
            BankError::AccountNotFound {
                account: "alice".into(),
            },
            "account alice does not exist",
        ),
        (
            BankError::AccountClosed {
                account: "alice".into(),
            },
            "account alice is closed",
        ),
        (
            BankError::ZeroAmount {
                account: "alice".into(),
            },
            "the amount for account alice must be above zero",
        ),
        (
            BankError::InsufficientFunds {
                account: "alice".into(),
                cents: 6_001,
                balance_cents: 1_000,
                overdraft_cents: 5_000,
            },
            "account alice cannot pay 60.01: its balance is 10.00 and its overdraft 50.00, \
             so 60.00 is available",
        ),
        (
            BankError::InsufficientFunds {
                account: "alice".into(),
                cents: 1_000,
                balance_cents: -4_500,
                overdraft_cents: 5_000,
            },
            "account alice cannot pay 10.00: its balance is -45.00 and its overdraft 50.00, \
             so 5.00 is available",
        ),
        (
            BankError::DailyLimitExceeded {
                account: "alice".into(),
                cents: 10_000,
                withdrawn_cents: 45_000,
                limit_cents: 50_000,
            },
            "account alice cannot withdraw 100.00: 450.00 was withdrawn in the last 24 h and \
             the daily limit is 500.00",
        ),
        (
            BankError::SameAccount {
                account: "alice".into(),
            },
            "cannot transfer from account alice to itself",
        ),
        (
            BankError::BalanceNotZero {
                account: "alice".into(),
                balance_cents: -1_250,
            },
            "account alice cannot be closed with a balance of -12.50: it must be 0.00",
        ),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
    }
}

// Real concurrency: transfers between a few accounts, each on its own tokio task, on
// several threads, against one in-memory store whose appends take a millisecond to
// arrive (so reads and appends really interleave).

const ACCOUNTS: [&str; 4] = ["a", "b", "c", "d"];
const OPENING_DEPOSIT: u32 = 20_000;
const OVERDRAFT: u32 = 5_000;
const TRANSFERS: usize = 120;

type Store = Latency<MemoryStore>;

/// A small deterministic generator (xorshift), so every run races the same transfers.
fn pseudo_random(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

async fn balances(engine: &Engine<Store>) -> Vec<Account> {
    let accounts: Vec<Account> = ACCOUNTS.iter().map(|a| Account::new(*a)).collect();
    engine.load(accounts).await.unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_conserve_money_and_respect_overdrafts() {
    let engine = Engine::new(Latency::new(MemoryStore::new(), Duration::from_millis(1)));
    for account in ACCOUNTS {
        engine
            .decide(&OpenAccount::new(account, account, OVERDRAFT))
            .await
            .unwrap();
        engine
            .decide(&Deposit::new(account, OPENING_DEPOSIT))
            .await
            .unwrap();
    }
    let before = engine.stats();

    let barrier = Arc::new(tokio::sync::Barrier::new(TRANSFERS));
    let mut tasks = tokio::task::JoinSet::new();
    let mut seed = 0x5eed_u64;
    for _ in 0..TRANSFERS {
        let from = ACCOUNTS[pseudo_random(&mut seed) as usize % ACCOUNTS.len()];
        let offset = 1 + pseudo_random(&mut seed) as usize % (ACCOUNTS.len() - 1);
        let to =
            ACCOUNTS[(ACCOUNTS.iter().position(|a| *a == from).unwrap() + offset) % ACCOUNTS.len()];
        // 10.00 to 150.00: enough to drive accounts into their overdrafts and beyond.
        let cents = 1_000 + (pseudo_random(&mut seed) % 141) as u32 * 100;
        let transfer = Transfer::new(from, to, cents);
        let (engine, barrier) = (engine.clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            engine.decide(&transfer).await
        });
    }
    let (mut committed, mut refused, mut lost) = (0_u64, 0_u64, Vec::new());
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            Ok(outcome) => {
                assert_eq!(outcome.events.len(), 1);
                committed += 1;
            }
            Err(DecideError::Domain(BankError::InsufficientFunds { .. })) => refused += 1,
            Err(e) => lost.push(e.to_string()),
        }
    }

    assert!(lost.is_empty(), "no transfer may be lost: {lost:?}");
    assert_eq!(committed + refused, TRANSFERS as u64);
    let stats = engine.stats();
    assert_eq!(stats.committed - before.committed, committed);
    assert_eq!(stats.rejected - before.rejected, refused);
    assert!(
        stats.conflicts > before.conflicts,
        "{TRANSFERS} transfers released at once must have raced"
    );

    // Money is conserved, and no account went beyond its overdraft.
    let accounts = balances(&engine).await;
    let total: i64 = accounts.iter().map(|a| a.balance_cents).sum();
    assert_eq!(
        total,
        i64::from(OPENING_DEPOSIT) * ACCOUNTS.len() as i64,
        "{accounts:#?}"
    );
    for account in &accounts {
        assert_eq!(account.status, AccountStatus::Open);
        assert!(
            account.balance_cents >= -i64::from(OVERDRAFT),
            "{} is beyond its overdraft: {}",
            account.account,
            money(account.balance_cents)
        );
    }

    // The log agrees: one event per committed transfer.
    let log: Vec<StoredEvent> = engine
        .store()
        .read(&Query::all(), ReadOptions::forward())
        .try_collect()
        .await
        .unwrap();
    let transfers = log
        .iter()
        .filter(|e| e.event_type == "MoneyTransferred")
        .count();
    assert_eq!(transfers as u64, committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deposits_racing_a_withdrawal_never_make_it_retry() {
    // Deposits are outside the withdrawal's validation query, so deposits landing
    // between its read and its append do not conflict with it.
    let engine = Engine::new(Latency::new(MemoryStore::new(), Duration::from_millis(2)));
    engine
        .decide(&OpenAccount::new("alice", "Alice", 0))
        .await
        .unwrap();
    engine
        .decide(&Deposit::new("alice", 100_000))
        .await
        .unwrap();
    let depositor = {
        let engine = engine.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                engine.decide(&Deposit::new("alice", 100)).await.unwrap();
            }
        })
    };
    let mut attempts = Vec::new();
    for _ in 0..10 {
        let w = Withdraw::new("alice", 1_000, SystemTime::now());
        attempts.push(engine.decide(&w).await.unwrap().attempts);
    }
    depositor.await.unwrap();
    assert!(
        attempts.iter().all(|&a| a == 1),
        "deposits never invalidate a withdrawal: {attempts:?}"
    );
    let (alice, _) = engine.load(Account::new("alice")).await.unwrap();
    assert_eq!(alice.balance_cents, 100_000 + 20 * 100 - 10 * 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deposit_racing_a_close_never_leaves_money_in_a_closed_account() {
    // Each round, a deposit and a close of an empty account start together: whichever
    // commits second conflicts, decides again on fresh state, and says no.
    let engine = Engine::new(Latency::new(MemoryStore::new(), Duration::from_millis(1)));
    let (mut deposits_won, mut closes_won) = (0, 0);
    for round in 0..20 {
        let id = format!("acc-{round}");
        engine
            .decide(&OpenAccount::new(&id, "Owner", 0))
            .await
            .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let deposit = {
            let (engine, barrier, id) = (engine.clone(), barrier.clone(), id.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                engine.decide(&Deposit::new(id, 500)).await
            })
        };
        let close = {
            let (engine, barrier, id) = (engine.clone(), barrier.clone(), id.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                engine.decide(&CloseAccount { account: id }).await
            })
        };
        let (deposit, close) = (deposit.await.unwrap(), close.await.unwrap());
        let (account, _) = engine.load(Account::new(&id)).await.unwrap();
        match (deposit, close) {
            (Ok(_), Err(DecideError::Domain(BankError::BalanceNotZero { .. }))) => {
                assert_eq!(
                    (account.status, account.balance_cents),
                    (AccountStatus::Open, 500)
                );
                deposits_won += 1;
            }
            (Err(DecideError::Domain(BankError::AccountClosed { .. })), Ok(_)) => {
                assert_eq!(
                    (account.status, account.balance_cents),
                    (AccountStatus::Closed, 0)
                );
                closes_won += 1;
            }
            other => panic!("round {round}: exactly one may win, got {other:?}"),
        }
    }
    assert_eq!(deposits_won + closes_won, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_withdrawals_never_break_the_daily_limit() {
    // 20 withdrawals of 50.00 at once, plenty of money: exactly 10 fit the 500.00 limit.
    let engine = Engine::new(Latency::new(MemoryStore::new(), Duration::from_millis(1)));
    engine
        .decide(&OpenAccount::new("alice", "Alice", 0))
        .await
        .unwrap();
    engine
        .decide(&Deposit::new("alice", 1_000_000))
        .await
        .unwrap();
    let now = SystemTime::now();
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (engine, barrier) = (engine.clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            engine.decide(&Withdraw::new("alice", 5_000, now)).await
        });
    }
    let (mut ok, mut limited) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            Ok(_) => ok += 1,
            Err(DecideError::Domain(BankError::DailyLimitExceeded { .. })) => limited += 1,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!((ok, limited), (10, 10));
    let (today, _) = engine
        .load(DailyWithdrawals::new("alice", SystemTime::now()))
        .await
        .unwrap();
    assert_eq!(
        today.withdrawn_cents,
        u64::from(DAILY_WITHDRAWAL_LIMIT_CENTS)
    );
}
