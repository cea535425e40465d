//! The stream and the partition consumers, created where missing.

use async_nats::jetstream::{self, consumer, stream};

use super::options::PRIORITY_GROUP;
use super::partition::all_commands;
use super::{LanesError, LanesOptions};

/// Creates the commands stream of `options` if it does not exist (work-queue retention:
/// a command is removed once acknowledged; file storage), and returns it.
pub async fn ensure_stream(
    jetstream: &jetstream::Context,
    options: &LanesOptions,
) -> Result<stream::Stream, LanesError> {
    options.validate()?;
    jetstream
        .get_or_create_stream(stream::Config {
            name: options.stream.clone(),
            subjects: vec![all_commands(&options.prefix)],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| LanesError::broker(format!("creating stream {}", options.stream), e))
}

/// The durable pull consumer of `partition`, created if missing: explicit acks,
/// redelivery after [`LanesOptions::ack_wait`], and the `pinned_client` priority policy
/// in the group [`PRIORITY_GROUP`] with [`LanesOptions::pinned_ttl`], at most
/// [`LanesOptions::max_deliver`] deliveries. An existing consumer is used as it is (a
/// worker warns when its timings differ from `options`, and goes by the consumer's), but
/// one that is not a pinned pull consumer of this partition's subject is an error.
pub async fn ensure_consumer(
    stream: &stream::Stream,
    options: &LanesOptions,
    partition: u32,
) -> Result<consumer::PullConsumer, LanesError> {
    let name = options.consumer_name(partition);
    stream
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: options.subject(partition),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: options.ack_wait,
                max_ack_pending: options.max_ack_pending,
                max_deliver: options.max_deliver,
                deliver_policy: consumer::DeliverPolicy::All,
                priority_policy: consumer::PriorityPolicy::PinnedClient,
                priority_groups: vec![PRIORITY_GROUP.to_owned()],
                priority_timeout: options.pinned_ttl,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| LanesError::broker(format!("creating consumer {name}"), e))
        .and_then(|consumer| {
            let config = &consumer.cached_info().config;
            let subject = options.subject(partition);
            let filtered = config.filter_subject == subject
                || (config.filter_subject.is_empty() && config.filter_subjects == [subject.clone()]);
            if filtered
                && config.priority_policy == consumer::PriorityPolicy::PinnedClient
                && config.priority_groups.iter().any(|group| group == PRIORITY_GROUP)
                && config.ack_policy == consumer::AckPolicy::Explicit
            {
                Ok(consumer)
            } else {
                Err(LanesError::Options(format!(
                    "consumer {name} exists but is not an explicit-ack pull consumer of                      {subject} pinning its clients in the group {PRIORITY_GROUP}: delete it"
                )))
            }
        })
}

/// Deletes the commands stream of `options` and its consumers (commands not yet
/// acknowledged are lost). Deleting a stream that does not exist is not an error.
pub async fn delete_stream(
    client: &async_nats::Client,
    options: &LanesOptions,
) -> Result<(), LanesError> {
    let jetstream = jetstream::new(client.clone());
    match jetstream.delete_stream(&options.stream).await {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::DeleteStreamErrorKind::JetStream(ref js)
                    if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(LanesError::broker(
            format!("deleting stream {}", options.stream),
            e,
        )),
    }
}
