//! Where and how a publisher sends integration events.

use std::time::Duration;

use super::PublishError;
use super::message::PayloadFormat;

/// The stream, subjects, listener name and timings of a [`Publisher`](super::Publisher).
///
/// Events go to `<prefix>.<event type>`; the stream `stream` holds `<prefix>.>`
/// (created or updated by [`ensure_stream`](super::ensure_stream)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishOptions {
    /// The JetStream stream holding the events (letters, digits, `-` and `_`).
    pub stream: String,
    /// The subject prefix: an event of type `T` goes to `<prefix>.T`.
    pub prefix: String,
    /// The listener's name: the key of its checkpoint and dead letters in the store.
    /// Keep it stable: a new name publishes the whole log again (which the broker
    /// deduplicates only within its duplicate window).
    pub name: String,
    /// How long the broker remembers message ids ([`ensure_stream`](super::ensure_stream)
    /// sets it on the stream). An event published again within it (after a crash
    /// between publish and checkpoint, or an acknowledgement lost while the broker went
    /// down) is dropped as a duplicate; one published again later is stored twice. It
    /// must exceed the **longest outage you want to survive without duplicates** — of the
    /// broker, of the publishing process, or of the network between them. The broker
    /// keeps one entry per message id in the window, so a longer window costs memory in
    /// proportion to the publishing rate.
    pub duplicate_window: Duration,
    /// How long to wait for JetStream's acknowledgement of one message before the
    /// attempt counts as failed (a transient error: the subscription retries it).
    pub ack_timeout: Duration,
    /// How long the stream keeps messages (`Duration::ZERO`: no limit). When set, it
    /// must be at least the duplicate window.
    pub max_age: Duration,
    /// How the event's payload is sent.
    pub payload: PayloadFormat,
}

impl PublishOptions {
    /// Options for the stream `stream` on the subjects `<prefix>.>`: listener name
    /// `publish.<stream>`, a 2 h duplicate window, a 5 s acknowledgement timeout, no age
    /// limit, JSON payloads.
    pub fn new(stream: impl Into<String>, prefix: impl Into<String>) -> Self {
        let stream = stream.into();
        PublishOptions {
            name: format!("publish.{stream}"),
            stream,
            prefix: prefix.into(),
            duplicate_window: Duration::from_secs(2 * 60 * 60),
            ack_timeout: Duration::from_secs(5),
            max_age: Duration::ZERO,
            payload: PayloadFormat::default(),
        }
    }

    /// The subject of events of type `event_type`: `<prefix>.<event type>`.
    pub fn subject(&self, event_type: &str) -> String {
        format!("{}.{event_type}", self.prefix)
    }

    /// The subjects the stream holds: `<prefix>.>`.
    pub fn stream_subjects(&self) -> String {
        format!("{}.>", self.prefix)
    }

    /// Checks the names and durations.
    pub fn validate(&self) -> Result<(), PublishError> {
        let invalid = |why: String| Err(PublishError::Options(why));
        if let Some(why) = crate::names::stream_name_problem(&self.stream)
            .or_else(|| crate::names::subject_prefix_problem(&self.prefix))
        {
            return invalid(why);
        }
        if self.name.is_empty() {
            return invalid("the listener name must not be empty".to_owned());
        }
        if self.duplicate_window.is_zero() || self.ack_timeout.is_zero() {
            return invalid("duplicate_window and ack_timeout must be above zero".to_owned());
        }
        if !self.max_age.is_zero() && self.max_age < self.duplicate_window {
            return invalid(format!(
                "max_age ({:?}) must be at least the duplicate window ({:?})",
                self.max_age, self.duplicate_window
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_validation() {
        let options = PublishOptions::new("SHOP_EVENTS", "shop.events");
        assert_eq!(
            options.subject("CouponApplied"),
            "shop.events.CouponApplied"
        );
        assert_eq!(options.stream_subjects(), "shop.events.>");
        assert_eq!(options.name, "publish.SHOP_EVENTS");
        assert!(options.validate().is_ok());

        for (stream, prefix) in [
            ("A.B", "p"),
            ("", "p"),
            ("S", ""),
            ("S", "a..b"),
            ("S", "a.*"),
        ] {
            let options = PublishOptions::new(stream, prefix);
            assert!(options.validate().is_err(), "{stream:?} {prefix:?}");
        }
        let short_age = PublishOptions {
            max_age: Duration::from_secs(60),
            ..PublishOptions::new("S", "p")
        };
        assert!(short_age.validate().is_err());
    }
}
