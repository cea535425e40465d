//! The DCB vocabulary: events, tags, queries, positions, metadata and payload codecs.

mod codec;
mod condition;
mod error;
mod event;
mod event_info;
mod guard;
pub mod idempotency;
mod position;
mod query;
mod tag;
mod tag_values;

pub use codec::{Codec, Payload};
pub use condition::AppendCondition;
pub use error::{DecodeError, DecodeReason, EncodeError, EncodeReason, PayloadError};
pub use event::{Event, EventSet, Metadata, NewEvent, StoredEvent, Upcaster, whole_micros};
pub use event_info::EventInfo;
pub use position::Position;
pub use query::{Query, QueryItem};
pub use tag::{Tag, TagValue};
pub use tag_values::TagValues;
#[doc(hidden)]
pub use tag_values::dedup_tags;
