//! A queued decision as a lane sees it, and how it is decided on the lane's warm states.

use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tracing::Instrument;

use super::taken::{Aligned, Taken};
use super::warm::{Cold, WarmStates};
use crate::decide::{
    Context, Counters, Decide, DecideError, Engine, Member, MemberKey, Outcome, StateSet, answered,
    prepare_events,
};
use crate::model::idempotency::IdempotencyKey;
use crate::model::{AppendCondition, Position, Query, Tag};
use crate::store::{AppendRequest, EventStore, StoreError, Unstorable};
use crate::telemetry;

pub(crate) type Reply<D> =
    oneshot::Sender<Result<Outcome<<D as Decide>::Event>, DecideError<<D as Decide>::Error>>>;

/// What a lane keeps while it forms one batch.
pub(crate) struct LaneCtx<S> {
    /// The lane's number.
    pub(crate) lane: usize,
    pub(crate) engine: Engine<S>,
    pub(crate) warm: WarmStates,
    /// The type and tags of the events of each request of the batch so far.
    pub(crate) batch: Vec<Vec<(String, Vec<Tag>)>>,
}

/// Where deciding a queued decision left it.
pub(crate) enum Step {
    /// Joins the batch: its request, and the keys of the warm states it used.
    Append {
        request: AppendRequest,
        members: Vec<MemberKey>,
        /// Members that folded one of its events with a handler reading the stored event:
        /// they hold a provisional position or time, so they are not kept warm.
        provisional: Vec<MemberKey>,
    },
    /// Already answered (failed without touching the store).
    Answered,
    /// Refused by the domain, or decided that nothing needs to happen, on states holding
    /// the events of the batch's requests `after`: answered once they committed (and,
    /// for a refusal with an idempotency key, once no duplicate turned out to have
    /// committed meanwhile); decided again if one of them failed.
    Held(Held),
    /// Cannot be decided in this batch (it needs a state that holds events not yet
    /// committed, or one that a batch request touched without folding); first in the
    /// next.
    Defer,
}

/// A refusal or no-op waiting for its batch to settle: what it was decided on.
pub(crate) struct Held {
    /// The batch requests whose events it was decided after.
    pub(crate) after: Vec<usize>,
    /// The warm states it was decided on.
    pub(crate) members: Vec<MemberKey>,
    /// Their query, and the position they were complete to: an event of the query
    /// past it from outside the batch means it was decided on a stale view.
    pub(crate) query: Query,
    pub(crate) position: Option<Position>,
}

/// A queued decision of any type, as a lane sees it.
pub(crate) trait Job<S>: Send {
    /// The decision's name.
    fn decision(&self) -> &'static str;
    /// The idempotency key the store records for it (see [`IdempotencyKey::recorded`]).
    fn idempotency_key(&self) -> Option<&str>;
    /// Adds to `cold` the states it will decide on that the lane holds nothing for, so
    /// the lane reads them all in one go.
    fn cold_states(&self, warm: &WarmStates, cold: &mut Vec<Cold>);
    fn decide<'a>(&'a mut self, lane: &'a mut LaneCtx<S>) -> BoxFuture<'a, Step>;
    fn committed(self: Box<Self>, positions: Vec<Position>);
    /// Its append conflicted: the job back, if its retry policy allows another attempt.
    fn conflicted(
        self: Box<Self>,
        position: Position,
        event_type: String,
    ) -> Option<Box<dyn Job<S>>>;
    fn failed(self: Box<Self>, error: StoreError);
    /// The store refused an event it emitted as past a limit: nothing of it was appended,
    /// and deciding it again cannot succeed.
    fn unstorable(self: Box<Self>, error: Unstorable);
    fn stopped(self: Box<Self>);
    /// Its `decide` or a fold panicked: nothing of it was appended.
    fn panicked(self: Box<Self>);
    /// Whether what it holds ([`Step::Held`]) is a refusal.
    fn holds_refusal(&self) -> bool;
    /// Answers with what it holds, counting it in `counters`.
    fn release(self: Box<Self>, counters: &Counters);
    /// Forgets what it holds, to be decided again.
    fn reset(&mut self);
    fn replay<'a>(
        self: Box<Self>,
        engine: &'a Engine<S>,
        positions: Vec<Position>,
    ) -> BoxFuture<'a, ()>;
}

pub(crate) struct Pending<D: Decide> {
    decision: D,
    context: Context,
    key: Option<IdempotencyKey>,
    reply: Option<Reply<D>>,
    events: Vec<D::Event>,
    held: Option<Answer<D::Error>>,
    attempts: u32,
    /// When it was submitted, and the span it was submitted in.
    submitted: Instant,
    span: tracing::Span,
}

/// A decision dropped unanswered (its lane's queue closed, or a batch panicked): its
/// caller gets `Stopped` or `LaneFailed`, and it counts as failed.
impl<D: Decide> Drop for Pending<D> {
    fn drop(&mut self) {
        if self.reply.is_some() {
            telemetry::answered(D::META.name, telemetry::Answered::Failed, self.submitted);
        }
    }
}

/// The answer a decision holds until the batch it was decided in settles.
enum Answer<E> {
    Refused(E),
    Nothing,
}

impl<D: Decide> Pending<D> {
    pub(crate) fn new(decision: D, context: Context, reply: Reply<D>) -> Self {
        Pending {
            key: decision.idempotency(),
            decision,
            context,
            reply: Some(reply),
            events: Vec::new(),
            held: None,
            attempts: 1,
            submitted: Instant::now(),
            span: tracing::Span::current(),
        }
    }

    fn answer(&mut self, result: Result<Outcome<D::Event>, DecideError<D::Error>>) {
        if let Some(reply) = self.reply.take() {
            telemetry::answered(D::META.name, answered(&result), self.submitted);
            // The caller may have given up waiting; the decision ran all the same.
            let _ = reply.send(result);
        }
    }
}

impl<S: EventStore + Clone + 'static, D: Decide> Job<S> for Pending<D> {
    fn decision(&self) -> &'static str {
        D::META.name
    }

    fn idempotency_key(&self) -> Option<&str> {
        self.key.as_ref().map(IdempotencyKey::recorded)
    }

    fn cold_states(&self, warm: &WarmStates, cold: &mut Vec<Cold>) {
        let mut wanted: Vec<Option<(MemberKey, Box<dyn Member>)>> = Vec::new();
        // Only keys the lane holds nothing under: a warm state from another start may be
        // what the next decision in the batch needs, and `decide_in` drops it when not.
        self.decision.state().into_members(&mut |key, member| {
            wanted.push((!warm.contains(&key)).then_some((key, member)));
        });
        if wanted.iter().all(Option::is_none) {
            return;
        }
        // The unfolded twin of each, built again: `state()` is the only way to a copy, and
        // one that comes out different is no start to file the state under.
        let mut wanted = wanted.into_iter();
        self.decision.state().into_members(&mut |_, start| {
            if let Some(Some((key, state))) = wanted.next()
                && state.same_start(&*start)
            {
                cold.push(Cold { key, state, start });
            }
        });
    }

    fn decide<'a>(&'a mut self, lane: &'a mut LaneCtx<S>) -> BoxFuture<'a, Step> {
        // A child of the span the caller submitted it in: its trace goes through the
        // lane. Submitted outside any span, it is a child of the lane's batch (the span
        // this runs in).
        let parent = if self.span.is_none() {
            tracing::Span::current()
        } else {
            self.span.clone()
        };
        let span = tracing::debug_span!(
            parent: &parent,
            "decide_in_lane",
            decision = D::META.name,
            lane = lane.lane
        );
        Box::pin(self.decide_in(lane).instrument(span))
    }

    fn committed(mut self: Box<Self>, positions: Vec<Position>) {
        let events = std::mem::take(&mut self.events);
        let attempts = self.attempts;
        self.answer(Ok(Outcome {
            events,
            positions,
            attempts,
            replayed: false,
        }));
    }

    fn conflicted(
        mut self: Box<Self>,
        position: Position,
        event_type: String,
    ) -> Option<Box<dyn Job<S>>> {
        if self.attempts > D::META.retry.max_retries {
            let attempts = self.attempts;
            self.answer(Err(DecideError::Conflict {
                decision: D::META.name,
                attempts,
                position,
                event_type,
            }));
            return None;
        }
        self.attempts += 1;
        self.events.clear();
        Some(self)
    }

    fn failed(mut self: Box<Self>, error: StoreError) {
        self.answer(Err(DecideError::Store(error)));
    }

    fn unstorable(mut self: Box<Self>, error: Unstorable) {
        self.answer(Err(DecideError::Unstorable {
            decision: D::META.name,
            error,
        }));
    }

    fn stopped(mut self: Box<Self>) {
        self.answer(Err(DecideError::Stopped {
            decision: D::META.name,
        }));
    }

    fn panicked(mut self: Box<Self>) {
        self.answer(Err(DecideError::Panicked {
            decision: D::META.name,
        }));
    }

    fn holds_refusal(&self) -> bool {
        matches!(self.held, Some(Answer::Refused(_)))
    }

    fn release(mut self: Box<Self>, counters: &Counters) {
        match self.held.take() {
            Some(Answer::Refused(error)) => {
                counters.rejected.fetch_add(1, Ordering::Relaxed);
                self.answer(Err(DecideError::Domain(error)))
            }
            Some(Answer::Nothing) => {
                counters.committed.fetch_add(1, Ordering::Relaxed);
                let attempts = self.attempts;
                self.answer(Ok(Outcome {
                    events: Vec::new(),
                    positions: Vec::new(),
                    attempts,
                    replayed: false,
                }));
            }
            None => {}
        }
    }

    fn reset(&mut self) {
        self.held = None;
        self.events.clear();
    }

    fn replay<'a>(
        mut self: Box<Self>,
        engine: &'a Engine<S>,
        positions: Vec<Position>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let result = engine.replay::<D>(self.key.as_ref(), positions).await;
            self.answer(result);
        })
    }
}

impl<D: Decide> Pending<D> {
    /// Decides on the lane's warm states (read, or caught up, where they fall short) and
    /// folds what it decided into them for the decisions queued behind it.
    async fn decide_in<S: EventStore + Clone + 'static>(&mut self, lane: &mut LaneCtx<S>) -> Step {
        let LaneCtx {
            engine,
            warm,
            batch,
            ..
        } = lane;
        let mut taken = Taken::take(self.decision.state(), warm, || self.decision.state());
        if taken.any_provisional() {
            return Step::Defer;
        }
        let after = match taken.align(engine).await {
            Aligned::At(after) => after,
            Aligned::Defer => return Step::Defer,
            Aligned::Failed(e) => {
                taken.discard();
                self.answer(Err(e.into()));
                return Step::Answered;
            }
            Aligned::Unchecked(e) => {
                self.answer(Err(DecideError::Store(e)));
                return Step::Answered;
            }
        };
        let query = taken.query();
        let Some(builds_on) = taken.builds_on(batch, &query) else {
            return Step::Defer;
        };
        let (answer, events) = match self.decision.decide(taken.set()) {
            Ok(events) if !events.is_empty() => (None, events),
            Ok(_) => (Some(Answer::Nothing), Vec::new()),
            Err(error) => (Some(Answer::Refused(error)), Vec::new()),
        };
        if let Some(answer) = answer {
            self.held = Some(answer);
            return Step::Held(Held {
                after: builds_on,
                members: taken.keys(),
                query,
                position: after,
            });
        }
        let codec = engine.codec();
        let new_events = match prepare_events::<D>(&events, self.key.as_ref(), &self.context, codec)
        {
            Ok(new_events) => new_events,
            Err(e) => {
                self.answer(Err(e));
                return Step::Answered;
            }
        };
        let index = batch.len();
        let provisional = match taken.fold_own(&new_events, after, index) {
            Ok(provisional) => provisional,
            Err(e) => {
                taken.discard();
                self.answer(Err(e.into()));
                return Step::Answered;
            }
        };
        batch.push(
            new_events
                .iter()
                .map(|e| (e.event_type.clone(), e.tags.clone()))
                .collect(),
        );
        let members = taken.keys();
        drop(taken);
        self.events = events;
        // The whole read query guards the append, exclusions included: a warm state
        // that skipped excluded events written by others would drift for good.
        // None for a decision reading no state: a condition on no event guards nothing.
        let condition = AppendCondition::guarding(query, after);
        Step::Append {
            request: AppendRequest::new(new_events, condition).building_on(builds_on),
            members,
            provisional,
        }
    }
}
