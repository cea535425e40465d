//! The timings a partition's consumer runs with, as the broker has them.

use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;

use crate::lanes::options::LanesOptions;

/// The timings of a partition's consumer as the broker has them (an existing consumer
/// keeps the configuration it was created with).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    /// Redelivery after this long without an acknowledgement.
    pub(crate) ack_wait: Duration,
    /// The pin expires after this long without a pull.
    pub(crate) pinned_ttl: Duration,
    /// Deliveries of a command at most (`<= 0`: no limit).
    pub(crate) max_deliver: i64,
}

impl Settings {
    /// The settings of `consumer`, warning where they differ from `options`.
    pub(crate) fn of(consumer: &PullConsumer, options: &LanesOptions, partition: u32) -> Self {
        let config = &consumer.cached_info().config;
        let settings = Settings {
            ack_wait: if config.ack_wait.is_zero() {
                Duration::from_secs(30)
            } else {
                config.ack_wait
            },
            pinned_ttl: if config.priority_timeout.is_zero() {
                options.pinned_ttl
            } else {
                config.priority_timeout
            },
            max_deliver: config.max_deliver,
        };
        if settings.ack_wait != options.ack_wait
            || settings.pinned_ttl != options.pinned_ttl
            || settings.max_deliver != options.max_deliver
        {
            tracing::warn!(
                partition,
                consumer = %consumer.cached_info().name,
                ack_wait = ?settings.ack_wait,
                pinned_ttl = ?settings.pinned_ttl,
                max_deliver = settings.max_deliver,
                "the partition's consumer exists with other timings than the options; \
                 using the consumer's (delete the stream to change them)"
            );
        }
        settings
    }

    /// How long one pull request waits: a third of the pin TTL (at least 100 ms).
    pub(super) fn pull_expires(&self) -> Duration {
        (self.pinned_ttl / 3).max(Duration::from_millis(100))
    }

    /// How often a command being decided (or waiting to be) is reported in progress.
    pub(super) fn progress_every(&self) -> Duration {
        (self.ack_wait / 2).max(Duration::from_millis(50))
    }

    /// Whether `delivery` is the last the broker makes.
    pub(super) fn is_last(&self, delivery: u64) -> bool {
        u64::try_from(self.max_deliver).is_ok_and(|max| max > 0 && delivery >= max)
    }
}
