//! The stream integration events are published to.

use async_nats::jetstream::{self, ErrorCode, context::GetStreamErrorKind, stream};
use tracing::{info, warn};

use super::error::StreamErrorSource;
use super::{PublishError, PublishOptions};

fn stream_error(options: &PublishOptions, source: impl Into<StreamErrorSource>) -> PublishError {
    PublishError::Stream {
        stream: options.stream.clone(),
        source: source.into(),
    }
}

fn is_not_found(kind: &GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

/// Creates the stream of `options`, or updates it, and returns its description.
///
/// A new stream holds `<prefix>.>` in file storage, with
/// [`PublishOptions::duplicate_window`] and [`PublishOptions::max_age`]. An existing
/// stream keeps its other settings (replicas, limits, retention): `<prefix>.>` is added
/// to its subjects if missing, its duplicate window is widened to the options' (never
/// shrunk, and at most its maximum age), and its maximum age is set only when
/// [`PublishOptions::max_age`] is not zero. The duplicate window must exceed the longest outage (of the broker or of
/// the publisher) you want to survive without duplicates: see
/// [`PublishOptions::duplicate_window`].
pub async fn ensure_stream(
    client: &async_nats::Client,
    options: &PublishOptions,
) -> Result<stream::Info, PublishError> {
    options.validate()?;
    let jetstream = jetstream::new(client.clone());
    let subjects = options.stream_subjects();
    match jetstream.get_stream(&options.stream).await {
        Ok(existing) => {
            let mut config = existing.cached_info().config.clone();
            if !config.subjects.contains(&subjects) {
                config.subjects.push(subjects);
            }
            let before = config.clone();
            // A maximum age only when the options set one; a duplicate window never
            // shrunk (another publisher may rely on it), and never above the maximum age.
            if !options.max_age.is_zero() {
                config.max_age = options.max_age;
            }
            config.duplicate_window = config.duplicate_window.max(options.duplicate_window);
            if !config.max_age.is_zero() {
                config.duplicate_window = config.duplicate_window.min(config.max_age);
            }
            if config.duplicate_window < options.duplicate_window {
                warn!(stream = %options.stream, duplicate_window = ?config.duplicate_window, wanted = ?options.duplicate_window, max_age = ?config.max_age, "the stream's maximum age keeps its duplicate window below the options'");
            }
            if config == before {
                return Ok(existing.cached_info().clone());
            }
            let info = jetstream
                .update_stream(&config)
                .await
                .map_err(|e| stream_error(options, e))?;
            info!(stream = %options.stream, subjects = ?info.config.subjects, duplicate_window = ?options.duplicate_window, "updated the integration events stream");
            Ok(info)
        }
        Err(e) if is_not_found(&e.kind()) => {
            let created = jetstream
                .create_stream(stream::Config {
                    name: options.stream.clone(),
                    subjects: vec![subjects],
                    storage: stream::StorageType::File,
                    duplicate_window: options.duplicate_window,
                    max_age: options.max_age,
                    ..Default::default()
                })
                .await
                .map_err(|e| stream_error(options, e))?;
            info!(stream = %options.stream, prefix = %options.prefix, duplicate_window = ?options.duplicate_window, "created the integration events stream");
            Ok(created.cached_info().clone())
        }
        Err(e) => Err(stream_error(options, e)),
    }
}

/// Deletes the stream of `options` and every message in it. Deleting a stream that
/// does not exist is not an error.
pub async fn delete_stream(
    client: &async_nats::Client,
    options: &PublishOptions,
) -> Result<(), PublishError> {
    let jetstream = jetstream::new(client.clone());
    match jetstream.delete_stream(&options.stream).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e.kind()) => Ok(()),
        Err(e) => Err(stream_error(options, e)),
    }
}
