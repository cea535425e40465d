//! A transaction left open elsewhere on the server (another application, a session idle
//! in a transaction) does not hold back what this store's reads return: the watermark
//! counts only this store's appenders. With the server-wide `xmin` it would.

#![allow(missing_docs)]

mod common;

use std::time::Duration;

use factum::prelude::*;

#[tokio::test]
async fn an_unrelated_open_transaction_does_not_hide_new_events() {
    // No waiting allowed: a read must see the append at once.
    let (store, _guard) =
        common::store_with("long_tx", |o| o.visibility_wait = Duration::ZERO).await;
    store
        .append(vec![common::event("Before", &[("k", "1")])], None)
        .await
        .unwrap();

    // Another session takes a transaction id and keeps its transaction open.
    let other = common::connect_raw().await;
    other.batch_execute("BEGIN").await.unwrap();
    let held: String = other
        .query_one("SELECT pg_current_xact_id()::text", &[])
        .await
        .unwrap()
        .get(0);

    for n in 0..3 {
        let appended = store
            .append(vec![common::event("After", &[("k", "1")])], None)
            .await
            .unwrap();
        let log = common::read_all(&store).await;
        assert_eq!(
            log.last().map(|e| e.position),
            appended.last(),
            "append {n}: the read must see it although transaction {held} is still open"
        );
        assert_eq!(
            store.head().await.unwrap(),
            appended.last(),
            "the head after append {n}"
        );
    }
    other.batch_execute("COMMIT").await.unwrap();
}
