//! A batch whose statement the server refuses for one request — here a trigger no client
//! could foresee — runs again with each request isolated: only that request fails, with
//! the server's SQLSTATE, message, detail and hint, the requests building on it fail with
//! `Dependency`, and everything else commits, with the same checks as ever (duplicates
//! and conflicts within the batch). Both batch paths: the SQL function (up to
//! `pipeline_above` requests) and the pipelined one.

#![allow(missing_docs)]

mod common;

use factum::prelude::*;
use factum::{AppendCondition, AppendError, AppendRequest, Appended, StoreError};
use factum_postgres::{PIPELINE_ABOVE, PostgresFailure, PostgresStore};

/// Makes the server refuse, from a trigger, every event of type `Evil`.
async fn refuse_evil(store: &PostgresStore) {
    let schema = store.schema();
    common::connect_raw()
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION \"{schema}\".refuse() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.type = 'Evil' THEN
                     RAISE EXCEPTION 'no evil here'
                         USING ERRCODE = 'FX123', DETAIL = 'event at position ' || NEW.position,
                               HINT = 'ask an admin';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON \"{schema}\".events
                 FOR EACH ROW EXECUTE FUNCTION \"{schema}\".refuse();"
        ))
        .await
        .expect("install the trigger");
}

fn keyed(event_type: &str, tag: &str, key: &str) -> NewEvent {
    let mut event = common::event(event_type, &[("n", tag)]);
    event.metadata.idempotency_key = Some(key.to_owned());
    event
}

/// The server's refusal, as the failed request carries it.
#[track_caller]
fn assert_refused_by_server(result: &Result<Appended, AppendError>, what: &str) {
    let Err(AppendError::Store(StoreError::Backend(error))) = result else {
        panic!("{what}: expected the server's refusal, got {result:?}");
    };
    let text = error.to_string();
    for part in ["FX123", "no evil here", "event at position", "ask an admin"] {
        assert!(text.contains(part), "{what}: {text:?} lacks {part:?}");
    }
    let failure = error
        .downcast_ref::<PostgresFailure>()
        .unwrap_or_else(|| panic!("{what}: not a PostgresFailure: {error:?}"));
    assert_eq!(failure.code(), Some("FX123"), "{what}");
    assert_eq!(
        failure.db_error().and_then(|e| e.hint()),
        Some("ask an admin")
    );
}

#[tokio::test]
async fn a_request_the_server_refuses_fails_alone_on_both_batch_paths() {
    let (store, _guard) = common::store("isolation").await;
    refuse_evil(&store).await;
    let single = store
        .append(vec![common::event("Evil", &[("n", "single")])], None)
        .await;
    assert_refused_by_server(&single, "a single append");

    let mut written = 0;
    for (round, padding) in [(0, 0), (1, PIPELINE_ABOVE)] {
        let tag = |what: &str| format!("{round}-{what}");
        let mut requests = vec![
            // 0: good, with a key.
            AppendRequest::new(vec![keyed("Good", &tag("a"), &tag("key-a"))], None),
            // 1: refused by the trigger (its second event).
            AppendRequest::new(
                vec![
                    common::event("Good", &[("n", &tag("evil-pair"))]),
                    common::event("Evil", &[("n", &tag("evil"))]),
                ],
                None,
            ),
            // 2: builds on the refused one.
            AppendRequest::new(vec![common::event("Good", &[("n", &tag("dep"))])], None)
                .building_on([1]),
            // 3: the key of request 0 again, within the batch: a duplicate.
            AppendRequest::new(vec![keyed("Good", &tag("b"), &tag("key-a"))], None),
        ];
        if padding > 0 {
            // 4: conflicts with request 0's event.
            requests.push(AppendRequest::new(
                vec![common::event("Good", &[("n", &tag("c"))])],
                Some(AppendCondition::new(
                    Query::item(QueryItem::any().with_tags([Tag::new("n", tag("a"))])),
                    None,
                )),
            ));
            // 5: its condition would fail on the refused request's events, which were
            // never written: it commits.
            requests.push(AppendRequest::new(
                vec![common::event("Good", &[("n", &tag("after-evil"))])],
                Some(AppendCondition::new(
                    Query::item(QueryItem::types(["Evil"])),
                    None,
                )),
            ));
        }
        let size = requests.len();
        assert_eq!(
            size > PIPELINE_ABOVE,
            padding > 0,
            "round {round} takes the path it names"
        );
        let results = store.append_batch(requests).await.unwrap_or_else(|e| {
            panic!("round {round}: the batch of {size} must not fail whole: {e}")
        });
        assert_eq!(results.len(), size);
        assert!(results[0].is_ok(), "round {round}: {:?}", results[0]);
        assert_refused_by_server(&results[1], &format!("round {round}, request 1"));
        assert!(
            matches!(results[2], Err(AppendError::Dependency { index: 1 })),
            "round {round}: {:?}",
            results[2]
        );
        assert!(
            matches!(&results[3], Err(AppendError::Duplicate { key, .. }) if *key == tag("key-a")),
            "round {round}: {:?}",
            results[3]
        );
        if padding > 0 {
            assert!(
                matches!(results[4], Err(AppendError::Conflict { .. })),
                "round {round}: {:?}",
                results[4]
            );
            assert!(results[5].is_ok(), "round {round}: {:?}", results[5]);
        }
        written += 1 + usize::from(padding > 0);
        let stored = common::read_all(&store).await;
        assert_eq!(
            stored.len(),
            written,
            "round {round}: the good requests only"
        );
        assert!(stored.iter().all(|e| e.event_type == "Good"));
        // The accepted key is recorded: the first request's positions.
        let found = store.find_idempotency_keys(&[tag("key-a")]).await.unwrap();
        assert_eq!(
            found[0].as_deref(),
            results[0].as_ref().ok().map(|a| &a.positions[..])
        );
    }
}
