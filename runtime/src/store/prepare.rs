//! What every store does with an append before touching its log, so that all of them
//! refuse the same requests and store the same tags.

use super::{AppendError, limits};
use crate::model::{AppendCondition, NewEvent};

/// Checks an append's shape and normalises its events; a store calls it first, for each
/// append and each request of a batch (after the request's dependencies), and writes
/// nothing when it fails.
///
/// - no event: [`AppendError::Empty`];
/// - a condition over a query with no item: [`AppendError::EmptyCondition`] (it would
///   guard nothing; see [`AppendCondition`]);
/// - an event past one of the [`limits`] every store holds events to (too
///   long a tag value, a NUL character, a JSON payload that is not JSON, ...):
///   [`AppendError::Unstorable`], naming the first such event and field;
/// - repeated tags of an event are dropped, the first of each kept in place (see
///   [`NewEvent::tags`]).
///
/// ```
/// use factum::{AppendCondition, AppendError, Codec, NewEvent, Query, Tag};
/// use factum::store::prepare_append;
///
/// let tag = Tag::new("seat", "1A");
/// let mut events = vec![NewEvent {
///     event_type: "SeatBooked".into(),
///     version: 1,
///     tags: vec![tag.clone(), tag.clone()],
///     payload: Codec::Json.encode("SeatBooked", &serde_json::json!({}))?,
///     metadata: Default::default(),
///     recorded_at: None,
/// }];
/// let nothing = AppendCondition::new(Query::none(), None);
/// assert!(matches!(
///     prepare_append(&mut events, Some(&nothing)),
///     Err(AppendError::EmptyCondition)
/// ));
/// prepare_append(&mut events, None).expect("a valid append");
/// assert_eq!(events[0].tags, [tag]);
/// assert!(matches!(prepare_append(&mut [], None), Err(AppendError::Empty)));
/// events[0].tags.push(Tag::new("seat", "\0"));
/// assert!(matches!(prepare_append(&mut events, None), Err(AppendError::Unstorable(_))));
/// # Ok::<(), factum::model::EncodeError>(())
/// ```
pub fn prepare_append(
    events: &mut [NewEvent],
    condition: Option<&AppendCondition>,
) -> Result<(), AppendError> {
    if events.is_empty() {
        return Err(AppendError::Empty);
    }
    if condition.is_some_and(AppendCondition::guards_nothing) {
        return Err(AppendError::EmptyCondition);
    }
    for event in events {
        limits::check(event)?;
        event.dedup_tags();
    }
    Ok(())
}
