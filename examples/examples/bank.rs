//! Bank accounts on the in-memory store: a short story in which every rule says yes or
//! no once, then a race of concurrent transfers between a few accounts that must
//! conserve money and keep every account within its overdraft, then the domain's
//! catalog.
//!
//! Run with `cargo run -p factum-examples --example bank`; with `-- describe` it prints
//! only the catalog. Appends take a millisecond to reach the store ([`Latency`]), so
//! the transfers really race. Exits non-zero if a step of the story ends otherwise than
//! expected, a command is lost, money appears or vanishes, or an account goes beyond
//! its overdraft.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use factum::prelude::*;
use factum_examples::bank::{
    Account, BankError, CloseAccount, DAILY_WITHDRAWAL_LIMIT_CENTS, DAY, Deposit, OpenAccount,
    Transfer, Withdraw, catalog, money,
};
use factum_examples::latency::Latency;
use tokio::task::JoinSet;

/// The in-memory store, with appends that take a while to arrive.
type Store = Latency<MemoryStore>;

const LATENCY: Duration = Duration::from_millis(1);

/// A decision as one line of the story.
trait Label {
    /// What it asks for; times are shown relative to `start`, the story's "now".
    fn label(&self, start: SystemTime) -> String;
}

impl Label for OpenAccount {
    fn label(&self, _: SystemTime) -> String {
        format!(
            "open {} for {}, overdraft {}",
            self.account,
            self.owner,
            money(self.overdraft_cents)
        )
    }
}

impl Label for Deposit {
    fn label(&self, _: SystemTime) -> String {
        format!("deposit {} to {}", money(self.cents), self.account)
    }
}

impl Label for Withdraw {
    fn label(&self, start: SystemTime) -> String {
        let hours = self.now.duration_since(start).unwrap_or_default().as_secs() / 3600;
        let at = if hours == 0 {
            "now".to_owned()
        } else {
            format!("now + {hours} h")
        };
        format!("withdraw {} from {}, {at}", money(self.cents), self.account)
    }
}

impl Label for Transfer {
    fn label(&self, _: SystemTime) -> String {
        format!(
            "transfer {} {} -> {}",
            money(self.cents),
            self.from,
            self.to
        )
    }
}

impl Label for CloseAccount {
    fn label(&self, _: SystemTime) -> String {
        format!("close {}", self.account)
    }
}

/// The story's engine, its "now", and what went otherwise than the story expects.
struct Story {
    engine: Engine<Store>,
    start: SystemTime,
    problems: Vec<String>,
}

impl Story {
    /// Runs a step that should commit.
    async fn ok<D: Decide<Error = BankError> + Label>(&mut self, decision: D) {
        self.step(true, &decision).await;
    }

    /// Runs a step that the domain should refuse.
    async fn no<D: Decide<Error = BankError> + Label>(&mut self, decision: D) {
        self.step(false, &decision).await;
    }

    /// Runs one decision, prints what happened in one line, and records a problem if
    /// that is not what the story expects.
    async fn step<D: Decide<Error = BankError> + Label>(&mut self, commit: bool, decision: &D) {
        let label = decision.label(self.start);
        let committed = match self.engine.decide(decision).await {
            Ok(outcome) => {
                let at: Vec<String> = outcome.positions.iter().map(ToString::to_string).collect();
                println!("  ok    {label}: committed at {}", at.join(", "));
                true
            }
            Err(DecideError::Domain(e)) => {
                println!("  no    {label}: {e}");
                false
            }
            Err(e) => {
                println!("  FAIL  {label}: {e}");
                self.problems.push(format!("{label}: {e}"));
                return;
            }
        };
        if committed != commit {
            self.problems
                .push(format!("{label}: the story expected the opposite outcome"));
        }
    }
}

/// Prints the balances of `ids`, folded from the store with [`Engine::load`].
async fn print_balances(engine: &Engine<Store>, ids: &[&str]) -> Result<Vec<Account>, String> {
    let states: Vec<Account> = ids.iter().map(|id| Account::new(*id)).collect();
    let (accounts, _) = engine
        .load(states)
        .await
        .map_err(|e| format!("loading the accounts failed: {e}"))?;
    for a in &accounts {
        println!(
            "  {:<6} {:>9}  (overdraft {:>7}, {:?})",
            a.account,
            money(a.balance_cents),
            money(a.overdraft_cents),
            a.status
        );
    }
    Ok(accounts)
}

/// Every rule of the domain, once.
async fn story(problems: &mut Vec<String>) {
    let now = SystemTime::now();
    let mut s = Story {
        engine: Engine::new(Latency::new(MemoryStore::new(), LATENCY)),
        start: now,
        problems: Vec::new(),
    };
    let close = |account: &str| CloseAccount {
        account: account.into(),
    };
    println!("== a story: alice, bob and carol");
    s.ok(OpenAccount::new("alice", "Alice", 10_000)).await;
    s.ok(OpenAccount::new("bob", "Bob", 0)).await;
    s.ok(OpenAccount::new("carol", "Carol", 0)).await;
    s.no(OpenAccount::new("bob", "Robert", 0)).await;
    s.ok(Deposit::new("alice", 100_000)).await;
    s.no(Deposit::new("bob", 0)).await;
    s.no(Deposit::new("dave", 1_000)).await;

    println!("== transfers: one read of both accounts, one event tagged with both");
    s.ok(Transfer::new("alice", "bob", 30_000)).await;
    s.no(Transfer::new("alice", "bob", 90_000)).await;
    s.ok(Transfer::new("alice", "carol", 80_000)).await;
    s.no(Transfer::new("bob", "bob", 5_000)).await;
    s.no(Transfer::new("bob", "dave", 5_000)).await;

    println!(
        "== cash: at most {} per 24 h, counted back from the `now` each command carries",
        money(DAILY_WITHDRAWAL_LIMIT_CENTS)
    );
    let later = now + DAY + Duration::from_secs(60 * 60);
    s.ok(Withdraw::new("carol", 40_000, now)).await;
    s.no(Withdraw::new("carol", 20_000, now)).await;
    s.ok(Withdraw::new("carol", 10_000, now)).await;
    s.no(Withdraw::new("alice", 10_000, now)).await;
    s.ok(Withdraw::new("carol", 20_000, later)).await;
    s.no(Withdraw::new("carol", 20_000, later)).await;

    println!("== closing: only at a balance of exactly zero");
    s.no(close("bob")).await;
    s.ok(Transfer::new("bob", "alice", 30_000)).await;
    s.ok(close("bob")).await;
    s.no(close("bob")).await;
    s.no(Deposit::new("bob", 1_000)).await;
    s.no(Transfer::new("carol", "bob", 1_000)).await;
    s.no(close("alice")).await;

    println!("== balances, folded with Engine::load");
    match print_balances(&s.engine, &["alice", "bob", "carol"]).await {
        Ok(accounts) => {
            // alice: 1000 - 300 - 800 + 300; bob: 300 - 300; carol: 800 - 400 - 100 - 200.
            let expected = [20_000, 0, 10_000];
            let got: Vec<i64> = accounts.iter().map(|a| a.balance_cents).collect();
            if got != expected {
                s.problems
                    .push(format!("story balances {got:?}, expected {expected:?}"));
            }
        }
        Err(e) => s.problems.push(e),
    }
    problems.append(&mut s.problems);
}

// The race: transfers between a few accounts, all at once, with deposits meanwhile.

const ACCOUNTS: [&str; 5] = ["ann", "ben", "cat", "dan", "eve"];
const OPENING_DEPOSIT: u32 = 20_000;
const OVERDRAFT: u32 = 10_000;
const TRANSFERS: usize = 200;
/// Deposits of 1.00 to each account during the race.
const DEPOSITS_PER_ACCOUNT: usize = 20;
/// Transfers arrive one after another, evenly over this window.
const ARRIVALS_OVER: Duration = Duration::from_millis(400);

/// A small deterministic generator (xorshift), so every run races the same transfers.
fn pseudo_random(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    // The high bits are the better mixed.
    *seed >> 32
}

/// The next transfer of the race: two different accounts, 10.00 to 100.00.
fn nth_transfer(seed: &mut u64) -> Transfer {
    let from = pseudo_random(seed) as usize % ACCOUNTS.len();
    let to = (from + 1 + pseudo_random(seed) as usize % (ACCOUNTS.len() - 1)) % ACCOUNTS.len();
    let cents = 1_000 + (pseudo_random(seed) % 91) as u32 * 100;
    Transfer::new(ACCOUNTS[from], ACCOUNTS[to], cents)
}

#[derive(Default)]
struct RaceTally {
    transferred: u64,
    refused: u64,
    most_attempts: u32,
    deposited_cents: i64,
    lost: Vec<String>,
}

async fn race(problems: &mut Vec<String>) {
    println!();
    println!(
        "== a race: {TRANSFERS} transfers between {} accounts within {} ms, \
         while each account takes {DEPOSITS_PER_ACCOUNT} deposits",
        ACCOUNTS.len(),
        ARRIVALS_OVER.as_millis()
    );
    let engine = Engine::new(Latency::new(MemoryStore::new(), LATENCY));
    let mut tally = RaceTally::default();
    for id in ACCOUNTS {
        let opened = engine.decide(&OpenAccount::new(id, id, OVERDRAFT)).await;
        let funded = engine.decide(&Deposit::new(id, OPENING_DEPOSIT)).await;
        if let Err(e) = opened.map(drop).and(funded.map(drop)) {
            problems.push(format!("race setup: {e}"));
            return;
        }
        tally.deposited_cents += i64::from(OPENING_DEPOSIT);
    }
    println!(
        "  each opened with {} and an overdraft of {}; appends take {} ms to reach the store",
        money(OPENING_DEPOSIT),
        money(OVERDRAFT),
        LATENCY.as_millis()
    );
    let before = engine.stats();
    let started = Instant::now();

    let mut transfers = JoinSet::new();
    let doors = tokio::time::Instant::now();
    let mut seed = 0x00c0_ffee_u64;
    for n in 0..TRANSFERS {
        let transfer = nth_transfer(&mut seed);
        let arrival = doors + ARRIVALS_OVER * n as u32 / TRANSFERS as u32;
        let engine = engine.clone();
        transfers.spawn(async move {
            tokio::time::sleep_until(arrival).await;
            engine.decide(&transfer).await.map(|o| o.attempts)
        });
    }
    let mut deposits = JoinSet::new();
    for id in ACCOUNTS {
        let engine = engine.clone();
        deposits.spawn(async move {
            let mut results = Vec::new();
            for _ in 0..DEPOSITS_PER_ACCOUNT {
                tokio::time::sleep(ARRIVALS_OVER / DEPOSITS_PER_ACCOUNT as u32).await;
                results.push(engine.decide(&Deposit::new(id, 100)).await.map(drop));
            }
            results
        });
    }
    while let Some(joined) = transfers.join_next().await {
        match joined {
            Ok(Ok(attempts)) => {
                tally.transferred += 1;
                tally.most_attempts = tally.most_attempts.max(attempts);
            }
            Ok(Err(DecideError::Domain(BankError::InsufficientFunds { .. }))) => {
                tally.refused += 1;
            }
            Ok(Err(e)) => tally.lost.push(format!("transfer: {e}")),
            Err(e) => tally.lost.push(format!("a transfer task failed: {e}")),
        }
    }
    while let Some(joined) = deposits.join_next().await {
        match joined {
            Ok(results) => {
                for result in results {
                    match result {
                        Ok(()) => tally.deposited_cents += 100,
                        Err(e) => tally.lost.push(format!("deposit: {e}")),
                    }
                }
            }
            Err(e) => tally.lost.push(format!("a deposit task failed: {e}")),
        }
    }
    let elapsed = started.elapsed();
    let after = engine.stats();

    println!(
        "  transfers: {} committed (up to {} attempts each), {} refused (insufficient funds), {} lost",
        tally.transferred,
        tally.most_attempts,
        tally.refused,
        tally.lost.len()
    );
    println!(
        "  engine.stats() during the race: {} committed, {} rejected, {} conflicts (then retried), in {} ms",
        after.committed - before.committed,
        after.rejected - before.rejected,
        after.conflicts - before.conflicts,
        elapsed.as_millis()
    );
    for lost in &tally.lost {
        problems.push(format!("race: lost {lost}"));
    }

    println!("== balances after the race, folded with Engine::load");
    let accounts = match print_balances(&engine, &ACCOUNTS).await {
        Ok(accounts) => accounts,
        Err(e) => {
            problems.push(e);
            return;
        }
    };
    let total: i64 = accounts.iter().map(|a| a.balance_cents).sum();
    println!(
        "  sum    {:>9}  (deposits {})",
        money(total),
        money(tally.deposited_cents)
    );
    if total == tally.deposited_cents {
        println!("  ok    money is conserved: the balances add up to the deposits");
    } else {
        problems.push(format!(
            "race: the balances add up to {}, the deposits to {}",
            money(total),
            money(tally.deposited_cents)
        ));
    }
    let overdrawn: Vec<&Account> = accounts
        .iter()
        .filter(|a| a.balance_cents < -i64::from(a.overdraft_cents))
        .collect();
    if overdrawn.is_empty() {
        println!("  ok    no account is beyond its overdraft");
    }
    for a in overdrawn {
        problems.push(format!(
            "race: {} is at {}, beyond its overdraft of {}",
            a.account,
            money(a.balance_cents),
            money(a.overdraft_cents)
        ));
    }
}

fn print_catalog() {
    print!("{}", catalog().describe());
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    if let Some(code) = factum::catalog::cli::run(&catalog(), std::env::args().skip(1)) {
        return code;
    }
    if let Some(arg) = std::env::args().nth(1) {
        eprintln!(
            "bank: unknown argument `{arg}`\nusage: bank [describe [--mermaid | --doc | --warnings] [--deny-warnings]]"
        );
        return ExitCode::FAILURE;
    }
    let mut problems = Vec::new();
    story(&mut problems).await;
    race(&mut problems).await;
    println!();
    println!("== the bank's catalog (`cargo run -p factum-examples --example bank -- describe`)");
    print_catalog();
    println!();
    if problems.is_empty() {
        println!("ok: every step went as expected, money is conserved, every overdraft held");
        ExitCode::SUCCESS
    } else {
        for problem in problems {
            eprintln!("error: {problem}");
        }
        ExitCode::FAILURE
    }
}
