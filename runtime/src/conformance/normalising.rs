//! The cases of what a store makes of an append before writing it: repeated tags are
//! stored once, and a condition that would guard nothing is refused.

use super::support::{append, assert_unchanged, event, head, named, read, tag_set, tags, types};
use crate::model::{AppendCondition, Position, Query, StoredEvent, Tag};
use crate::store::{AppendError, AppendRequest, EventStore, ReadOptions};

/// A tag given twice or more on an event is stored and read back once, whether the event
/// came through [`EventStore::append`] or [`EventStore::append_batch`]; the event keeps
/// the set of its tags, and a read by a repeated tag returns it once.
pub async fn repeated_tags_stored_once<S: EventStore + Clone + 'static>(store: S) {
    named("repeated_tags_stored_once", async move {
        let written = [
            (
                "UsernameChanged",
                vec![("user", "u1"), ("user", "u1"), ("org", "o1")],
            ),
            (
                "Moved",
                vec![("a", "1"), ("b", "2"), ("a", "1"), ("a", "1"), ("b", "2")],
            ),
            ("Single", vec![("s", "1")]),
        ];
        let [
            (first, first_tags),
            (second, second_tags),
            (third, third_tags),
        ] = &written;
        let appended = append(&store, vec![event(first, first_tags)], None).await;
        let batch = vec![AppendRequest::new(
            vec![event(second, second_tags), event(third, third_tags)],
            Some(AppendCondition::new(types(&["Other"]), appended.last())),
        )];
        let results = store
            .append_batch(batch)
            .await
            .unwrap_or_else(|e| panic!("a batch of events with repeated tags failed: {e}"));
        if let Some(Err(e)) = results.first() {
            panic!("a batch request of events with repeated tags failed: {e}");
        }

        let stored = read(&store, &Query::all(), ReadOptions::forward()).await;
        assert_eq!(stored.len(), written.len(), "the events read back");
        for (event, (event_type, given)) in stored.iter().zip(&written) {
            assert_tags_once(event, event_type, given);
        }
        let by_tag = read(&store, &tags(&[("a", "1")]), ReadOptions::forward()).await;
        assert_eq!(
            by_tag.len(),
            1,
            "a read by a tag given three times returns its event once"
        );
        assert_tags_once(&by_tag[0], second, second_tags);
    })
    .await;
}

fn assert_tags_once(stored: &StoredEvent, event_type: &str, given: &[(&str, &str)]) {
    let given: Vec<Tag> = given.iter().map(|(k, v)| Tag::new(*k, *v)).collect();
    assert_eq!(stored.event_type, event_type, "the events in order");
    assert_eq!(
        stored.tags.len(),
        tag_set(&given).len(),
        "the tags of {event_type}, given as {given:?}, came back as {:?}: each must come back once",
        stored.tags
    );
    assert_eq!(
        tag_set(&stored.tags),
        tag_set(&given),
        "the tag set of {event_type}"
    );
}

/// A condition over [`Query::none`], which would guard nothing, is refused with
/// [`AppendError::EmptyCondition`] and writes nothing, with or without a position, on an
/// empty store and on a non-empty one, alone and as a request of a batch (whose other
/// requests still commit, and whose requests building on it fail with
/// [`AppendError::Dependency`]). An empty append is still [`AppendError::Empty`].
pub async fn empty_condition_refused<S: EventStore + Clone + 'static>(store: S) {
    named("empty_condition_refused", async move {
        let nothing = |after| Some(AppendCondition::new(Query::none(), after));
        let result = store.append(vec![event("A", &[])], nothing(None)).await;
        assert!(
            matches!(result, Err(AppendError::EmptyCondition)),
            "an append on an empty store under a condition on Query::none returned {result:?}"
        );
        assert_eq!(
            head(&store).await,
            None,
            "a refused append on an empty store wrote something"
        );

        let first = append(&store, vec![event("A", &[("x", "1")])], None).await;
        let before = read(&store, &Query::all(), ReadOptions::forward()).await;
        for after in [None, Some(Position(0)), first.last()] {
            let result = store
                .append(vec![event("B", &[("x", "1")])], nothing(after))
                .await;
            assert!(
                matches!(result, Err(AppendError::EmptyCondition)),
                "an append under a condition on Query::none after {after:?} returned {result:?}"
            );
        }
        assert_unchanged(
            &store,
            &before,
            "after appends under a condition on Query::none",
        )
        .await;

        let result = store.append(Vec::new(), nothing(None)).await;
        assert!(
            matches!(result, Err(AppendError::Empty)),
            "an empty append under a condition on Query::none returned {result:?}: an empty \
             append is refused as empty first"
        );

        let batch = vec![
            AppendRequest::new(vec![event("C", &[])], nothing(first.last())),
            AppendRequest::new(vec![event("D", &[])], None),
            AppendRequest::new(vec![event("E", &[])], None).building_on([0]),
        ];
        let results = store
            .append_batch(batch)
            .await
            .unwrap_or_else(|e| panic!("a batch with a condition on Query::none failed: {e}"));
        assert_eq!(results.len(), 3, "one result per request");
        assert!(
            matches!(results[0], Err(AppendError::EmptyCondition)),
            "request 0 of a batch, under a condition on Query::none, returned {:?}",
            results[0]
        );
        assert!(
            results[1].is_ok(),
            "request 1 of the batch (no condition) returned {:?}",
            results[1]
        );
        assert!(
            matches!(results[2], Err(AppendError::Dependency { index: 0 })),
            "request 2 of the batch builds on the refused request 0, and returned {:?}",
            results[2]
        );
        let after = read(&store, &Query::all(), ReadOptions::forward()).await;
        let written: Vec<&str> = after.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            written,
            ["A", "D"],
            "only the batch's request without a condition is written"
        );
    })
    .await;
}
