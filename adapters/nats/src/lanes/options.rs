//! What clients and workers of one set of distributed lanes agree on.

use std::time::Duration;

use super::LanesError;
use super::partition::command_subject;

/// The priority group every partition consumer pins its clients in.
pub const PRIORITY_GROUP: &str = "factum";

/// The stream, subjects, partitions and timings of one set of distributed lanes. Clients
/// and workers must use the same `stream`, `prefix` and `partitions`; the stream and its
/// consumers are created by whoever comes first, with these values (an existing stream or
/// consumer is used as it is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LanesOptions {
    /// The JetStream stream holding the commands (letters, digits, `-` and `_`).
    pub stream: String,
    /// The subject prefix: commands go to `<prefix>.cmd.<partition>`.
    pub prefix: String,
    /// How many partitions keys hash onto (each is one consumer, pinned to one worker).
    pub partitions: u32,
    /// How long the broker waits for a command's acknowledgement before delivering it
    /// again (to whoever holds the partition then). A worker deciding a command signals
    /// progress every half of it, so only a worker that stopped (or hangs) lets it pass.
    pub ack_wait: Duration,
    /// How long a worker stays pinned to a partition without pulling: after a worker
    /// dies, its partitions move to a standby worker this long after its last pull.
    pub pinned_ttl: Duration,
    /// Commands of one partition a worker may hold unacknowledged (deciding, queued in
    /// its lanes); the broker delivers no more until some are acknowledged.
    pub max_ack_pending: i64,
    /// Commands asked for in one pull request.
    pub pull_batch: usize,
    /// Commands of one partition a worker hands to its dispatcher at once (the others it
    /// received wait in the partition's buffer, in delivery order). On a shutdown these
    /// are finished; the buffered ones are handed back to the broker (nak) at once, so a
    /// successor gets them in their order.
    pub max_in_flight: usize,
    /// How many times the broker delivers a command (`max_deliver` of the consumers). A
    /// decision failing for a reason that may pass (the store, a conflict after the last
    /// retry, a lost lane, an unreadable stored event) is handed back to be delivered
    /// again after [`LanesOptions::retry_delay`] (doubling per delivery, at most 30 s)
    /// and answered [`LanesError::Failed`] only on the last delivery.
    pub max_deliver: i64,
    /// How long the broker waits before delivering a command again after a failure that
    /// may pass; doubles with every delivery, up to 30 s.
    pub retry_delay: Duration,
    /// The subjects a worker publishes answers on must start with this prefix and a dot
    /// (`_INBOX` by default, what `async_nats` clients use unless configured otherwise):
    /// a command whose `Factum-Reply` header names another subject is decided but not
    /// answered, so no one can make a worker publish on arbitrary subjects.
    pub reply_prefix: String,
    /// How long [`LanesClient::request`](super::LanesClient::request) waits for the
    /// answer.
    pub reply_timeout: Duration,
}

impl LanesOptions {
    /// Options for the stream `stream` on the subjects `<prefix>.cmd.*`, with 16
    /// partitions, a 30 s ack wait, a 5 s pin TTL, 512 unacknowledged commands per
    /// partition, pulls of 64, 64 commands per partition at once with the dispatcher, 10
    /// deliveries (retried after 1 s, doubling), answers on `_INBOX.*` and a 10 s reply
    /// timeout.
    pub fn new(stream: impl Into<String>, prefix: impl Into<String>) -> Self {
        LanesOptions {
            stream: stream.into(),
            prefix: prefix.into(),
            partitions: 16,
            ack_wait: Duration::from_secs(30),
            pinned_ttl: Duration::from_secs(5),
            max_ack_pending: 512,
            pull_batch: 64,
            max_in_flight: 64,
            max_deliver: 10,
            retry_delay: Duration::from_secs(1),
            reply_prefix: "_INBOX".to_owned(),
            reply_timeout: Duration::from_secs(10),
        }
    }

    /// The subject of `partition`'s commands.
    pub fn subject(&self, partition: u32) -> String {
        command_subject(&self.prefix, partition)
    }

    /// The durable consumer of `partition`: `<stream>_p<partition>`.
    pub fn consumer_name(&self, partition: u32) -> String {
        format!("{}_p{partition}", self.stream)
    }

    /// How long one pull request waits: a third of the pin TTL (at least 100 ms), so a
    /// live worker renews its pin well before it expires.
    pub fn pull_expires(&self) -> Duration {
        (self.pinned_ttl / 3).max(Duration::from_millis(100))
    }

    /// Checks the names and numbers.
    pub fn validate(&self) -> Result<(), LanesError> {
        let invalid = |why: String| Err(LanesError::Options(why));
        if let Some(why) = crate::names::stream_name_problem(&self.stream)
            .or_else(|| crate::names::subject_prefix_problem(&self.prefix))
        {
            return invalid(why);
        }
        if self.partitions == 0 {
            return invalid("at least one partition is needed".to_owned());
        }
        if self.ack_wait.is_zero() || self.pinned_ttl.is_zero() || self.reply_timeout.is_zero() {
            return invalid("ack_wait, pinned_ttl and reply_timeout must be above zero".into());
        }
        if self.max_ack_pending < 1 || self.pull_batch == 0 || self.max_in_flight == 0 {
            return invalid(
                "max_ack_pending, pull_batch and max_in_flight must be at least 1".to_owned(),
            );
        }
        if self.max_deliver < 1 {
            return invalid("max_deliver must be at least 1".to_owned());
        }
        if self.reply_prefix.is_empty()
            || self
                .reply_prefix
                .split('.')
                .any(|token| token.is_empty() || token.contains(['*', '>', ' ', '\t', '\r', '\n']))
        {
            return invalid(format!(
                "reply prefix {:?}: use dot-separated tokens without wildcards or spaces",
                self.reply_prefix
            ));
        }
        Ok(())
    }

    /// Whether the worker may publish an answer on `subject`: under
    /// [`LanesOptions::reply_prefix`], without wildcards or spaces.
    pub fn accepts_reply_subject(&self, subject: &str) -> bool {
        subject
            .strip_prefix(self.reply_prefix.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|rest| {
                !rest.is_empty()
                    && rest.split('.').all(|token| {
                        !token.is_empty() && !token.contains(['*', '>', ' ', '\t', '\r', '\n'])
                    })
            })
    }

    /// How long the broker waits before delivering a command again after its `delivery`
    /// failed for a reason that may pass: [`LanesOptions::retry_delay`] doubled per
    /// delivery, at most 30 s.
    pub fn retry_delay_after(&self, delivery: u64) -> Duration {
        let doublings = u32::try_from(delivery.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(16);
        self.retry_delay
            .saturating_mul(1 << doublings)
            .min(Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_validation() {
        let options = LanesOptions::new("LANES_1", "app.lanes");
        assert_eq!(options.subject(3), "app.lanes.cmd.3");
        assert_eq!(options.consumer_name(3), "LANES_1_p3");
        assert!(options.validate().is_ok());
        assert!(LanesOptions::new("a.b", "x").validate().is_err());
        assert!(LanesOptions::new("a", "x.*").validate().is_err());
        assert!(LanesOptions::new("a", "x..y").validate().is_err());
        let none = LanesOptions {
            partitions: 0,
            ..options
        };
        assert!(none.validate().is_err());
    }

    #[test]
    fn reply_subjects_and_retry_delays() {
        let options = LanesOptions::new("LANES_1", "app.lanes");
        assert!(options.accepts_reply_subject("_INBOX.abc"));
        assert!(options.accepts_reply_subject("_INBOX.abc.def"));
        assert!(!options.accepts_reply_subject("_INBOX"));
        assert!(!options.accepts_reply_subject("_INBOX."));
        assert!(!options.accepts_reply_subject("_INBOXES.abc"));
        assert!(!options.accepts_reply_subject("app.lanes.cmd.1"));
        assert!(!options.accepts_reply_subject("_INBOX.*"));
        assert!(!options.accepts_reply_subject("_INBOX.a b"));
        assert_eq!(options.retry_delay_after(1), Duration::from_secs(1));
        assert_eq!(options.retry_delay_after(3), Duration::from_secs(4));
        assert_eq!(options.retry_delay_after(99), Duration::from_secs(30));
    }
}
