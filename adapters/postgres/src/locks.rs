//! Advisory lock keys: what an append locks, hashed, merged and sorted.
//!
//! Which locks an append takes, and why, is in the crate documentation ("Concurrency").
//!
//! Keys are 64-bit FNV-1a hashes of the schema name and the key's parts, each
//! length-prefixed, so stores in different schemas never contend and `tag:a:b=c` cannot
//! meet `tag:a=b:c`. Two keys that collide only serialize more than needed.

use std::collections::{BTreeMap, HashSet};

use factum::{AppendCondition, NewEvent};

/// One advisory lock an append takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LockKey {
    /// The key passed to `pg_advisory_xact_lock` (or its `_shared` form).
    pub key: i64,
    /// Whether the lock is exclusive (`pg_advisory_xact_lock`) rather than shared
    /// (`pg_advisory_xact_lock_shared`).
    pub exclusive: bool,
}

/// The locks an append of `events` on `condition` takes in the store whose schema is
/// `schema`, in the order it takes them (ascending keys, each key once).
///
/// [`PostgresStore::lock_keys`](crate::PostgresStore::lock_keys) gives the same for a
/// store.
pub fn lock_keys(
    schema: &str,
    events: &[NewEvent],
    condition: Option<&AppendCondition>,
) -> Vec<LockKey> {
    let mut keys = Plan::default();
    keys.append(schema, events, condition);
    keys.into_sorted()
}

/// Lock keys collected from one or more appends.
#[derive(Default)]
pub(crate) struct Plan {
    /// Key → exclusive.
    keys: BTreeMap<i64, bool>,
}

impl Plan {
    fn add(&mut self, key: i64, exclusive: bool) {
        let entry = self.keys.entry(key).or_insert(exclusive);
        *entry |= exclusive;
    }

    /// Adds the locks of one append.
    pub(crate) fn append(
        &mut self,
        schema: &str,
        events: &[NewEvent],
        condition: Option<&AppendCondition>,
    ) {
        if events.is_empty() {
            return;
        }
        self.add(global_key(schema), false);
        // Hashed once per distinct type and tag: a bulk append's thousand events mostly
        // share them, and hashing each again was 2 % of its client time.
        let mut types: HashSet<&str> = HashSet::new();
        let mut tags: HashSet<(&str, &str)> = HashSet::new();
        for event in events {
            if types.insert(&event.event_type) {
                self.add(hash(schema, &["type", &event.event_type]), false);
            }
            for tag in &event.tags {
                if tags.insert((&tag.key, &tag.value)) {
                    self.add(hash(schema, &["tag", &tag.key, &tag.value]), false);
                }
            }
            if let Some(key) = &event.metadata.idempotency_key {
                // The recorded key: appends sharing it contend whatever their fingerprints.
                let recorded = factum::model::idempotency::recorded_key(key);
                self.add(hash(schema, &["idempotency", recorded]), true);
            }
        }
        for item in condition.iter().flat_map(|c| c.query.items()) {
            if let Some(tag) = item.tags.first() {
                self.add(hash(schema, &["tag", &tag.key, &tag.value]), true);
            } else if !item.types.is_empty() {
                for event_type in &item.types {
                    self.add(hash(schema, &["type", event_type]), true);
                }
            } else {
                self.add(global_key(schema), true);
            }
        }
    }

    /// The keys in ascending order, as two arrays for `lock_keys(keys, exclusive)`.
    pub(crate) fn arrays(&self) -> (Vec<i64>, Vec<bool>) {
        self.keys.iter().map(|(k, x)| (*k, *x)).unzip()
    }

    fn into_sorted(self) -> Vec<LockKey> {
        self.keys
            .into_iter()
            .map(|(key, exclusive)| LockKey { key, exclusive })
            .collect()
    }
}

pub(crate) fn global_key(schema: &str) -> i64 {
    hash(schema, &["global"])
}

/// The session-level lock key guarding position allocation in `schema`.
pub(crate) fn allocate_key(schema: &str) -> i64 {
    hash(schema, &["allocate"])
}

/// A hash of `schema` naming its notification channel when the name is too long to
/// spell out (not a lock).
pub(crate) fn notify_key(schema: &str) -> i64 {
    hash(schema, &["notify"])
}

/// The transaction-level lock key serializing migrations of `schema`.
pub(crate) fn migrate_key(schema: &str) -> i64 {
    hash(schema, &["migrate"])
}

/// The advisory lock [`PostgresStore::lock_partition`](crate::PostgresStore) takes for the
/// partition key `key` of the store in `schema`: the two `integer` keys of the
/// session-level `pg_advisory_lock(integer, integer)`, which `pg_locks` shows as `classid`
/// and `objid` (with `objsubid` 2).
///
/// Locks taken with two `integer` keys and locks taken with one `bigint` key (all the
/// other locks of this crate, see [`lock_keys`]) are separate key spaces in PostgreSQL,
/// so a partition lock never meets an append's lock, whatever the hashes. The schema is
/// part of the hash, so stores in different schemas lock different keys (two that
/// collide only serialize more than needed).
pub fn partition_lock_key(schema: &str, key: &str) -> (i32, i32) {
    let bits = hash(schema, &["partition", key]).to_be_bytes();
    let high = i32::from_be_bytes([bits[0], bits[1], bits[2], bits[3]]);
    let low = i32::from_be_bytes([bits[4], bits[5], bits[6], bits[7]]);
    (high, low)
}

/// FNV-1a (64 bits) over the schema and the parts, each preceded by its length.
fn hash(schema: &str, parts: &[&str]) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    feed(b"factum");
    feed(schema.as_bytes());
    for part in parts {
        feed(part.as_bytes());
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use factum::model::Payload;
    use factum::{Codec, Metadata, Query, QueryItem, Tag};

    use super::*;

    fn event(event_type: &str, tags: &[(&str, &str)]) -> NewEvent {
        NewEvent {
            event_type: event_type.to_owned(),
            version: 1,
            tags: tags.iter().map(|(k, v)| Tag::new(*k, *v)).collect(),
            payload: Payload {
                codec: Codec::Json,
                bytes: b"{}".to_vec(),
            },
            metadata: Metadata::new(),
            recorded_at: None,
        }
    }

    fn tag(k: &str, v: &str) -> i64 {
        hash("s", &["tag", k, v])
    }

    fn find(keys: &[LockKey], key: i64) -> Option<bool> {
        keys.iter().find(|k| k.key == key).map(|k| k.exclusive)
    }

    #[test]
    fn appends_share_tags_types_and_global() {
        let keys = lock_keys("s", &[event("A", &[("c", "1")]), event("B", &[])], None);
        assert_eq!(keys.len(), 4);
        assert_eq!(find(&keys, tag("c", "1")), Some(false));
        assert_eq!(find(&keys, hash("s", &["type", "A"])), Some(false));
        assert_eq!(find(&keys, hash("s", &["type", "B"])), Some(false));
        assert_eq!(find(&keys, global_key("s")), Some(false));
        assert!(keys.windows(2).all(|w| w[0].key < w[1].key), "sorted");
    }

    #[test]
    fn conditions_lock_one_tag_or_the_types_or_everything() {
        let query: Query = [
            QueryItem::types(["A"]).with_tags([Tag::new("c", "1"), Tag::new("d", "2")]),
            QueryItem::types(["X", "Y"]),
        ]
        .into_iter()
        .collect();
        let condition = AppendCondition::new(query, None);
        let keys = lock_keys("s", &[event("A", &[("c", "1")])], Some(&condition));
        assert_eq!(
            find(&keys, tag("c", "1")),
            Some(true),
            "shared and exclusive"
        );
        assert_eq!(
            find(&keys, tag("d", "2")),
            None,
            "one tag per item is enough"
        );
        assert_eq!(find(&keys, hash("s", &["type", "A"])), Some(false));
        assert_eq!(find(&keys, hash("s", &["type", "X"])), Some(true));
        assert_eq!(find(&keys, hash("s", &["type", "Y"])), Some(true));
        assert_eq!(find(&keys, global_key("s")), Some(false));
        assert_eq!(keys.len(), 5);

        // An item matching everything makes the query `all`: the global key, exclusive,
        // covers every other item of the union.
        let all = condition.query.union(Query::item(QueryItem::any()));
        let condition = AppendCondition::new(all, None);
        let keys = lock_keys("s", &[event("A", &[("c", "1")])], Some(&condition));
        assert_eq!(find(&keys, global_key("s")), Some(true));
        assert_eq!(find(&keys, tag("c", "1")), Some(false));
        assert_eq!(find(&keys, hash("s", &["type", "X"])), None);
    }

    #[test]
    fn keys_are_unambiguous_and_per_schema() {
        assert_ne!(tag("a:b", "c"), tag("a", "b:c"));
        assert_ne!(tag("ab", ""), tag("a", "b"));
        assert_ne!(hash("s", &["tag", "a", "b"]), hash("t", &["tag", "a", "b"]));
        assert_ne!(hash("s", &["type", "A"]), hash("s", &["tag", "A"]));
        assert_ne!(allocate_key("s"), migrate_key("s"));
        // Pinned: every process sharing a store must compute the same keys, so the hash
        // must never change between versions or machines.
        assert_eq!(hash("s", &["global"]), 3_736_332_356_892_604_202);
        assert_eq!(
            hash("shop", &["tag", "coupon", "SPRING24"]),
            -8_970_758_683_630_923_481
        );
    }

    #[test]
    fn partition_keys_are_per_schema_and_per_key() {
        assert_ne!(partition_lock_key("s", "k"), partition_lock_key("t", "k"));
        assert_ne!(partition_lock_key("s", "k"), partition_lock_key("s", "j"));
        let (high, low) = partition_lock_key("s", "k");
        let whole = hash("s", &["partition", "k"]);
        assert_eq!((i64::from(high) << 32) | i64::from(low as u32), whole);
        // Pinned, like the append keys: every process must compute the same.
        assert_eq!(
            partition_lock_key("shop", "coupon:SPRING24"),
            (1_068_114_235, -2_082_452_378)
        );
    }

    #[test]
    fn idempotency_keys_are_exclusive_and_empty_appends_lock_nothing() {
        let mut e = event("A", &[]);
        e.metadata.idempotency_key = Some("k".to_owned());
        let keys = lock_keys("s", &[e], None);
        assert_eq!(find(&keys, hash("s", &["idempotency", "k"])), Some(true));
        // A fingerprint after the recorded key locks the recorded key.
        e = event("A", &[]);
        e.metadata.idempotency_key = Some("k\u{1f}00ff".to_owned());
        let keys = lock_keys("s", &[e], None);
        assert_eq!(find(&keys, hash("s", &["idempotency", "k"])), Some(true));
        let condition = AppendCondition::new(Query::all(), None);
        assert!(lock_keys("s", &[], Some(&condition)).is_empty());
        let none = AppendCondition::new(Query::none(), None);
        assert_eq!(lock_keys("s", &[event("A", &[])], Some(&none)).len(), 2);
    }
}
