//! Caller-set times SQLite cannot hold: past about 292,000 years from 1970, microseconds
//! overflow its 64-bit integers. Such an append is refused alone, with the typed error of
//! the limits every store holds events to, instead of being recorded at a saturated time.

mod common;

use factum::store::limits::Field;
use factum::{AppendError, AppendRequest, EventStore};

#[tokio::test]
async fn a_time_too_far_out_fails_only_its_own_request() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = factum_sqlite::open(dir.path().join("events.db"))
        .await
        .expect("a fresh store");
    let year = std::time::Duration::from_secs(31_556_952);
    let far = std::time::UNIX_EPOCH + year * 300_000;
    let bad = common::event("Noted", &[("note", "far")]).with_recorded_at(far);
    let too_far = |r: &Result<factum::Appended, AppendError>| matches!(r, Err(AppendError::Unstorable(e)) if e.field == Field::RecordedAt);
    let single = store.append(vec![bad.clone()], None).await;
    assert!(too_far(&single), "{single:?}");
    let results = store
        .append_batch(vec![
            AppendRequest::new(vec![common::event("Noted", &[("note", "1")])], None),
            AppendRequest::new(vec![bad], None),
            AppendRequest::new(vec![common::event("Noted", &[("note", "2")])], None),
        ])
        .await
        .expect("the batch as a whole");
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(too_far(&results[1]), "{results:?}");
    assert_eq!(store.head().await.unwrap().map(|p| p.0), Some(2));
}
