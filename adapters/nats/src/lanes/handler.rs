//! The decision types a worker handles, looked up by name: each decodes its command and
//! runs it through the dispatcher.

use std::collections::HashMap;
use std::sync::Arc;

use factum::lanes::Dispatcher;
use factum::{Decide, DecideError, ErrorChain, EventStore};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;

use super::wire::Answer;

/// What running a command came to.
pub(crate) enum Handled {
    /// An answer to reply and acknowledge.
    Answer(Answer),
    /// A failure that may pass (the store, a conflict after the last retry, a lost lane,
    /// an unreadable stored event): hand it back to be delivered again later, unless this
    /// was its last delivery.
    Retry(String),
    /// Not run (the dispatcher is shutting down): leave it to the broker to deliver
    /// again, to this worker's successor.
    NotRun,
}

/// Decodes a command's payload and decides it.
type Handler<S> = Arc<dyn Fn(&Dispatcher<S>, &[u8]) -> BoxFuture<'static, Handled> + Send + Sync>;

/// The handlers by decision name.
pub(crate) struct Handlers<S> {
    by_name: HashMap<&'static str, Handler<S>>,
}

impl<S> Clone for Handlers<S> {
    fn clone(&self) -> Self {
        Handlers {
            by_name: self.by_name.clone(),
        }
    }
}

impl<S: EventStore + Clone + 'static> Handlers<S> {
    pub(crate) fn new() -> Self {
        Handlers {
            by_name: HashMap::new(),
        }
    }

    /// Handles commands named `D::META.name` as `D`.
    pub(crate) fn add<D: Decide + DeserializeOwned>(&mut self) {
        let handler: Handler<S> = Arc::new(|dispatcher: &Dispatcher<S>, payload: &[u8]| {
            let decoded = serde_json::from_slice::<D>(payload);
            let dispatcher = dispatcher.clone();
            Box::pin(async move {
                match decoded {
                    Ok(decision) => answer(dispatcher.decide(decision).await),
                    Err(e) => Handled::Answer(Answer::Malformed {
                        message: format!("the payload is not a {}: {e}", D::META.name),
                    }),
                }
            })
        });
        self.by_name.insert(D::META.name, handler);
    }

    /// The names it handles.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.by_name.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// Runs the command named `name`; `None` when no handler has that name.
    pub(crate) fn run(
        &self,
        name: &str,
        dispatcher: &Dispatcher<S>,
        payload: &[u8],
    ) -> Option<BoxFuture<'static, Handled>> {
        self.by_name
            .get(name)
            .map(|handler| handler(dispatcher, payload))
    }
}

fn answer<E, X: std::fmt::Display>(result: Result<factum::Outcome<E>, DecideError<X>>) -> Handled {
    match result {
        Ok(outcome) => Handled::Answer(Answer::Committed {
            positions: outcome.positions.iter().map(|p| p.0).collect(),
            replayed: outcome.replayed,
            attempts: outcome.attempts,
        }),
        Err(DecideError::Domain(e)) => Handled::Answer(Answer::Refused {
            message: e.to_string(),
        }),
        Err(DecideError::Stopped { .. }) => Handled::NotRun,
        // The error with its causes: it crosses the wire as text.
        Err(e) if e.is_retryable() => Handled::Retry(text(&e)),
        // An event this worker cannot decode may be one a worker of a newer release can
        // (a rolling deploy): another delivery may land there.
        Err(e @ DecideError::Decode(_)) => Handled::Retry(e.to_string()),
        // Would fail the same way again: a panic in the domain, an undeclared or
        // unencodable event, corrupt data in the store.
        Err(e) => Handled::Answer(Answer::Failed { message: text(&e) }),
    }
}

/// A failure as the text that crosses the wire: a store's error with its causes.
fn text<X: std::fmt::Display>(error: &DecideError<X>) -> String {
    match error {
        DecideError::Store(e) => ErrorChain(e).to_string(),
        e => e.to_string(),
    }
}
