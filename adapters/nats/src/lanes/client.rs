//! Sending decisions to the worker that owns their partition, and waiting for the
//! answer.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use factum::{Decision, Position};
use futures::StreamExt;
use serde::Serialize;

use super::broker::ensure_stream;
use super::server::check_server;
use super::wire::{Answer, DECISION_HEADER, REPLY_HEADER, Reply};
use super::{LanesError, LanesOptions, partition_of};

/// A decision's outcome as the worker that committed it reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteOutcome {
    /// The positions of the events it appended (of the first commit, if replayed); empty
    /// when it decided nothing needed to happen.
    pub positions: Vec<Position>,
    /// Whether this is the outcome of an earlier commit with the same idempotency key,
    /// returned without deciding again.
    pub replayed: bool,
    /// Read-decide-append attempts (0 when replayed).
    pub attempts: u32,
    /// The id of the worker that answered.
    pub worker: String,
    /// The partition the decision went to.
    pub partition: u32,
    /// Which delivery of the command the answer is for (1 unless the broker redelivered
    /// it).
    pub delivery: u64,
}

/// Sends decisions through the distributed lanes: each to the subject of its partition
/// key's partition, with a reply subject of its own, waiting for the answer of the
/// worker that owns the partition.
///
/// Cloning is cheap and shares the connection.
#[derive(Clone, Debug)]
pub struct LanesClient {
    nats: async_nats::Client,
    jetstream: jetstream::Context,
    options: LanesOptions,
    next: std::sync::Arc<AtomicU32>,
}

impl LanesClient {
    /// A client on the connection `nats`: checks the server's version and that the
    /// connection's inboxes are under [`LanesOptions::reply_prefix`], and creates the
    /// commands stream if it does not exist, so commands sent before any worker runs
    /// wait in it.
    pub async fn new(nats: async_nats::Client, options: LanesOptions) -> Result<Self, LanesError> {
        options.validate()?;
        check_server(&nats)?;
        let inbox = nats.new_inbox();
        if !options.accepts_reply_subject(&inbox) {
            return Err(LanesError::Options(format!(
                "the connection's inboxes ({inbox}) are not under the reply prefix {:?}: \
                 workers would not answer; set LanesOptions::reply_prefix to the connection's \
                 inbox prefix",
                options.reply_prefix
            )));
        }
        let jetstream = jetstream::new(nats.clone());
        ensure_stream(&jetstream, &options).await?;
        Ok(LanesClient {
            nats,
            jetstream,
            options,
            next: std::sync::Arc::new(AtomicU32::new(0)),
        })
    }

    /// The options it sends with.
    pub fn options(&self) -> &LanesOptions {
        &self.options
    }

    /// The partition `decision` goes to: its partition key's, else its idempotency
    /// key's, else the next one in turn.
    pub fn partition_for<D: Decision>(&self, decision: &D) -> u32 {
        match decision
            .partition_key()
            .or_else(|| decision.idempotency_key())
        {
            Some(key) => partition_of(&key, self.options.partitions),
            None => self.next.fetch_add(1, Ordering::Relaxed) % self.options.partitions.max(1),
        }
    }

    /// Sends `decision` and waits up to [`LanesOptions::reply_timeout`] for its outcome.
    pub async fn request<D: Decision + Serialize>(
        &self,
        decision: &D,
    ) -> Result<RemoteOutcome, LanesError> {
        self.request_within(decision, self.options.reply_timeout)
            .await
    }

    /// Sends `decision` and waits up to `timeout` for its outcome: the commit's positions,
    /// or the domain's refusal as [`LanesError::Refused`], or [`LanesError::Timeout`].
    pub async fn request_within<D: Decision + Serialize>(
        &self,
        decision: &D,
        timeout: Duration,
    ) -> Result<RemoteOutcome, LanesError> {
        let name = D::META.name;
        let payload = serde_json::to_vec(decision).map_err(|source| LanesError::Encode {
            decision: name.to_owned(),
            source,
        })?;
        let partition = self.partition_for(decision);
        let subject = self.options.subject(partition);
        // Subscribed before publishing: the server sees the subscription first.
        let inbox = self.nats.new_inbox();
        let mut replies = self
            .nats
            .subscribe(inbox.clone())
            .await
            .map_err(|e| publish_error(name, &subject, e))?;
        let mut headers = HeaderMap::new();
        headers.insert(DECISION_HEADER, name);
        headers.insert(REPLY_HEADER, inbox.as_str());
        let started = tokio::time::Instant::now();
        let stored = self
            .jetstream
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await
            .map_err(|e| publish_error(name, &subject, e))?;
        let waited = tokio::time::timeout(timeout, async {
            stored.await.map_err(|e| publish_error(name, &subject, e))?;
            Ok::<_, LanesError>(replies.next().await)
        })
        .await;
        let message = match waited {
            Ok(Ok(Some(message))) => message,
            Ok(Err(e)) => return Err(e),
            Ok(Ok(None)) => {
                return Err(LanesError::ReplyLost {
                    decision: name.to_owned(),
                    subject,
                    partition,
                });
            }
            Err(_) => {
                return Err(LanesError::Timeout {
                    decision: name.to_owned(),
                    subject,
                    partition,
                    waited: started.elapsed(),
                });
            }
        };
        let reply: Reply =
            serde_json::from_slice(&message.payload).map_err(|e| LanesError::BadReply {
                decision: name.to_owned(),
                message: e.to_string(),
            })?;
        tracing::trace!(decision = name, partition, worker = %reply.worker, "answered");
        into_outcome(name, reply)
    }
}

fn publish_error(
    decision: &str,
    subject: &str,
    source: impl Into<super::error::BoxError>,
) -> LanesError {
    LanesError::Publish {
        decision: decision.to_owned(),
        subject: subject.to_owned(),
        source: source.into(),
    }
}

fn into_outcome(decision: &str, reply: Reply) -> Result<RemoteOutcome, LanesError> {
    let decision = decision.to_owned();
    let Reply {
        worker,
        partition,
        delivery,
        answer,
    } = reply;
    match answer {
        Answer::Committed {
            positions,
            replayed,
            attempts,
        } => Ok(RemoteOutcome {
            positions: positions.into_iter().map(Position).collect(),
            replayed,
            attempts,
            worker,
            partition,
            delivery,
        }),
        Answer::Refused { message } => Err(LanesError::Refused {
            decision,
            worker,
            message,
        }),
        Answer::UnknownDecision => Err(LanesError::UnknownDecision { decision, worker }),
        Answer::Malformed { message } => Err(LanesError::Malformed {
            decision,
            worker,
            message,
        }),
        Answer::Failed { message } => Err(LanesError::Failed {
            decision,
            worker,
            message,
        }),
    }
}
