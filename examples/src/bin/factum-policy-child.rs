//! The process the policy crash test kills: it runs the [`SprintPolicy`] over a SQLite
//! store from its checkpoint until it has caught up, then prints `caught up` and exits.
//! Batches of 3 events, and a pause after each decision (`PAUSE_MS`, default 5), so a
//! kill lands between a decision's commit and the checkpoint that covers it.
//!
//! `factum-policy-child PATH`

use std::process::ExitCode;
use std::time::Duration;

use factum::listen::{Listener, Subscription, SubscriptionOptions};
use factum::prelude::*;
use factum_examples::sprints::SprintPolicy;

/// The policy, slowed down after each event it handles.
struct Slow<S> {
    policy: SprintPolicy<S>,
    pause: Duration,
}

impl<S: EventStore + Send + Sync + 'static> Listener for Slow<S> {
    fn name(&self) -> &str {
        self.policy.name()
    }

    fn query(&self) -> Query {
        self.policy.query()
    }

    async fn handle(&mut self, event: &StoredEvent) -> Result<(), factum::listen::HandlerError> {
        let handled = self.policy.handle(event).await;
        tokio::time::sleep(self.pause).await;
        handled
    }

    async fn give_up(
        &mut self,
        event: &StoredEvent,
        error: &factum::listen::HandlerError,
    ) -> Result<bool, factum::listen::HandlerError> {
        let given_up = self.policy.give_up(event, error).await;
        tokio::time::sleep(self.pause).await;
        given_up
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: factum-policy-child PATH");
        return ExitCode::from(2);
    };
    let pause = std::env::var("PAUSE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_millis(5), Duration::from_millis);
    let store = match factum_sqlite::open(&path).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("cannot open {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let policy = Slow {
        policy: SprintPolicy::new(Engine::new(store.clone())),
        pause,
    };
    let options = SubscriptionOptions {
        batch: 3,
        ..SubscriptionOptions::default()
    };
    let mut subscription = Subscription::listener(store, policy).with_options(options);
    match subscription.catch_up().await {
        Ok(progress) => {
            println!("caught up: {progress:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("the policy failed: {e}");
            ExitCode::FAILURE
        }
    }
}
