//! Idempotency keys as events carry them and stores record them, and the fingerprints
//! that tell two requests under one key apart.
//!
//! An event's [`Metadata::idempotency_key`](super::Metadata::idempotency_key) is either
//! a bare key or a key and a fingerprint, separated by [`SEPARATOR`] (`U+001F`, the
//! ASCII unit separator):
//!
//! ```text
//! <recorded key>                                  a key without fingerprint
//! <recorded key>\u{1f}<32 lowercase hex digits>   a key and the fingerprint of its request
//! ```
//!
//! Stores record, look up ([`EventStore::find_idempotency_keys`]) and report
//! ([`AppendError::Duplicate`]) only the **recorded key**, the part before the first
//! separator ([`recorded_key`]): two appends whose keys share it are duplicates whatever
//! follows. The fingerprint travels with the events, so whoever finds the key taken can
//! read back what the first request was.
//!
//! A decision's recorded key is scoped by its name, `<decision name>:<key>`
//! ([`IdempotencyKey::new`]), so one key on two decision types names two requests; its
//! fingerprint is a digest of the decision's content ([`Fingerprint::of`]). A decision
//! finding its recorded key taken replays the first outcome when the stored fingerprint
//! is its own (or either side has none), and fails with
//! [`DecideError::IdempotencyKeyReused`] when it differs.
//!
//! ```
//! use factum::model::idempotency::{Fingerprint, IdempotencyKey, recorded_key};
//!
//! let fingerprint = Fingerprint::of("ApplyCoupon", &("SPRING", "cart-1")).unwrap();
//! let key = IdempotencyKey::new("ApplyCoupon", "r-1", Some(fingerprint));
//! assert_eq!(key.recorded(), "ApplyCoupon:r-1");
//! assert_eq!(key.metadata_key(), format!("ApplyCoupon:r-1\u{1f}{fingerprint}"));
//! assert_eq!(recorded_key(key.metadata_key()), "ApplyCoupon:r-1");
//! assert_eq!(recorded_key("a bare key"), "a bare key");
//!
//! let other = Fingerprint::of("ApplyCoupon", &("SPRING", "cart-2")).unwrap();
//! assert!(IdempotencyKey::new("ApplyCoupon", "r-1", Some(other)).other_content(key.metadata_key()));
//! ```
//!
//! [`EventStore::find_idempotency_keys`]: crate::EventStore::find_idempotency_keys
//! [`AppendError::Duplicate`]: crate::AppendError::Duplicate
//! [`DecideError::IdempotencyKeyReused`]: crate::DecideError::IdempotencyKeyReused

mod canonical;
mod compound;

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

pub use canonical::FingerprintError;

/// Separates an event's recorded idempotency key from its fingerprint.
pub const SEPARATOR: char = '\u{1f}';

/// What a separator in a decision's own key becomes in its recorded key (`U+FFFD`), so a
/// key cannot cut itself short.
const SEPARATOR_STANDIN: char = '\u{fffd}';

/// The part of an event's idempotency key that stores record: everything before the
/// first [`SEPARATOR`], or the whole key when it has none.
pub fn recorded_key(metadata_key: &str) -> &str {
    metadata_key
        .split_once(SEPARATOR)
        .map_or(metadata_key, |(recorded, _)| recorded)
}

/// The fingerprint part of an event's idempotency key: the text after the first
/// [`SEPARATOR`], if any.
pub fn fingerprint_part(metadata_key: &str) -> Option<&str> {
    metadata_key.split_once(SEPARATOR).map(|(_, rest)| rest)
}

/// A 128-bit digest of a request's content: the first half of the SHA-256 of its
/// canonical serialization (see [`Fingerprint::of`]), written as 32 lowercase hex
/// digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(u128);

impl Fingerprint {
    /// The fingerprint of `value` (a decision's content) in `scope` (its name).
    ///
    /// The digest is of a canonical encoding of what `value`'s `Serialize` writes, fixed
    /// by this crate rather than by a format's settings: map and struct entries in a
    /// sorted order (so a `HashMap` field fingerprints the same in every process),
    /// integers by value whatever their width, `Some(x)` as `x`, newtypes as what they
    /// wrap. Fields `#[serde(skip)]` leaves out are not part of it. A sequence keeps its
    /// order, so a field serialized in an unstable order (a `HashSet`) gives equal
    /// requests different fingerprints: use a `BTreeSet` there.
    ///
    /// Fails only when `value`'s `Serialize` fails.
    pub fn of<T: serde::Serialize + ?Sized>(
        scope: &str,
        value: &T,
    ) -> Result<Fingerprint, FingerprintError> {
        let mut hasher = Sha256::new();
        // The encoding's version: a different encoding must never compare equal.
        hasher.update(b"factum fingerprint v1\0");
        hasher.update((scope.len() as u64).to_be_bytes());
        hasher.update(scope.as_bytes());
        hasher.update(canonical::encode(value)?);
        let digest = hasher.finalize();
        let mut half = [0u8; 16];
        half.copy_from_slice(&digest[..16]);
        Ok(Fingerprint(u128::from_be_bytes(half)))
    }

    /// The fingerprint with these 128 bits.
    pub const fn from_bits(bits: u128) -> Fingerprint {
        Fingerprint(bits)
    }

    /// Its 128 bits.
    pub const fn bits(self) -> u128 {
        self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Text that is not 32 hex digits, where a [`Fingerprint`] was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a fingerprint is 32 hex digits, not {0:?}")]
pub struct ParseFingerprintError(String);

impl FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseFingerprintError(text.to_owned()));
        }
        u128::from_str_radix(text, 16)
            .map(Fingerprint)
            .map_err(|_| ParseFingerprintError(text.to_owned()))
    }
}

/// A decision's idempotency key: the key it gives, the key stores record for it, and
/// the key its events carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    key: String,
    recorded: String,
    metadata: String,
    fingerprint: Option<Fingerprint>,
}

impl IdempotencyKey {
    /// The key `key` of a decision named `scope`, with the fingerprint of its content:
    /// recorded as `<scope>:<key>` (a [`SEPARATOR`] in `key` becomes `U+FFFD` there),
    /// carried by its events as `<scope>:<key>\u{1f}<fingerprint>` (see the
    /// [module documentation](self)).
    pub fn new(scope: &str, key: &str, fingerprint: Option<Fingerprint>) -> IdempotencyKey {
        let mut recorded = String::with_capacity(scope.len() + 1 + key.len());
        recorded.push_str(scope);
        recorded.push(':');
        recorded.extend(
            key.chars()
                .map(|c| if c == SEPARATOR { SEPARATOR_STANDIN } else { c }),
        );
        let metadata = match fingerprint {
            Some(fingerprint) => format!("{recorded}{SEPARATOR}{fingerprint}"),
            None => recorded.clone(),
        };
        IdempotencyKey {
            key: key.to_owned(),
            recorded,
            metadata,
            fingerprint,
        }
    }

    /// The key as the decision gave it.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key stores record and look up: `<scope>:<key>`.
    pub fn recorded(&self) -> &str {
        &self.recorded
    }

    /// The key the decision's events carry in their metadata.
    pub fn metadata_key(&self) -> &str {
        &self.metadata
    }

    /// The fingerprint of the decision's content, if it has one.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.fingerprint
    }

    /// Whether an event carrying `stored` (its metadata key) was written under this
    /// recorded key by a request with other content. A key without fingerprint, on
    /// either side, is never other content: it replays as keys did before fingerprints.
    pub fn other_content(&self, stored: &str) -> bool {
        if recorded_key(stored) != self.recorded {
            return false;
        }
        match (fingerprint_part(stored), self.fingerprint) {
            (Some(theirs), Some(ours)) => theirs.parse::<Fingerprint>() != Ok(ours),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    #[derive(serde::Serialize)]
    struct Command {
        coupon: String,
        cart: String,
        uses: u32,
        limits: HashMap<String, u64>,
        note: Option<String>,
    }

    fn command(cart: &str) -> Command {
        Command {
            coupon: "SPRING".into(),
            cart: cart.into(),
            uses: 3,
            limits: (0..40).map(|i| (format!("k{i}"), i)).collect(),
            note: None,
        }
    }

    #[test]
    fn the_recorded_key_is_what_precedes_the_first_separator() {
        assert_eq!(recorded_key("a\u{1f}b\u{1f}c"), "a");
        assert_eq!(fingerprint_part("a\u{1f}b\u{1f}c"), Some("b\u{1f}c"));
        assert_eq!(recorded_key("plain"), "plain");
        assert_eq!(fingerprint_part("plain"), None);
        assert_eq!(recorded_key(""), "");
        assert_eq!(recorded_key("\u{1f}x"), "");
    }

    #[test]
    fn a_key_is_scoped_by_its_decision_and_cannot_cut_itself_short() {
        let key = IdempotencyKey::new("Pay", "r\u{1f}1", None);
        assert_eq!(key.key(), "r\u{1f}1");
        assert_eq!(key.recorded(), "Pay:r\u{fffd}1");
        assert_eq!(key.metadata_key(), "Pay:r\u{fffd}1");
        assert_eq!(recorded_key(key.metadata_key()), key.recorded());
        assert_ne!(
            IdempotencyKey::new("Pay", "r", None).recorded(),
            IdempotencyKey::new("Refund", "r", None).recorded()
        );
    }

    #[test]
    fn equal_contents_give_equal_fingerprints_whatever_the_map_order() {
        let a = Fingerprint::of("ApplyCoupon", &command("c1")).unwrap();
        for _ in 0..20 {
            // A fresh HashMap iterates in another order.
            assert_eq!(Fingerprint::of("ApplyCoupon", &command("c1")).unwrap(), a);
        }
        assert_ne!(Fingerprint::of("ApplyCoupon", &command("c2")).unwrap(), a);
        assert_ne!(Fingerprint::of("Other", &command("c1")).unwrap(), a);
    }

    #[test]
    fn fingerprints_are_fixed_by_this_crate() {
        // Stored fingerprints outlive builds: the encoding and digest must not drift.
        let mut limits = BTreeMap::new();
        limits.insert("b", 2u8);
        limits.insert("a", 1u8);
        let f = Fingerprint::of("Scope", &("text", 7u64, -1i8, 1.5f64, limits, true)).unwrap();
        assert_eq!(f.to_string(), GOLDEN);
        assert_eq!(GOLDEN.parse::<Fingerprint>(), Ok(f));
    }

    // Computed independently (Python: hashlib.sha256 over the encoding the canonical module
    // documents), so it pins the documented format, not only this implementation.
    const GOLDEN: &str = "bd7b62239d8718038656002adc9c68c6";

    #[test]
    fn only_a_different_stored_fingerprint_is_other_content() {
        let ours = Fingerprint::from_bits(1);
        let key = IdempotencyKey::new("D", "k", Some(ours));
        assert!(!key.other_content(key.metadata_key()));
        let theirs = IdempotencyKey::new("D", "k", Some(Fingerprint::from_bits(2)));
        assert!(key.other_content(theirs.metadata_key()));
        // Keys without fingerprint on either side replay as before.
        assert!(!key.other_content("D:k"));
        assert!(!IdempotencyKey::new("D", "k", None).other_content(theirs.metadata_key()));
        // A suffix that is no fingerprint of ours is someone else's.
        assert!(key.other_content("D:k\u{1f}not hex"));
        // Another recorded key is not this one's business.
        assert!(!key.other_content(IdempotencyKey::new("D", "j", Some(ours)).metadata_key()));
    }

    #[test]
    fn fingerprints_parse_only_from_32_hex_digits() {
        assert!("".parse::<Fingerprint>().is_err());
        assert!(
            "+0000000000000000000000000000000"
                .parse::<Fingerprint>()
                .is_err()
        );
        assert!("0".repeat(33).parse::<Fingerprint>().is_err());
        assert_eq!(
            "0".repeat(32).parse::<Fingerprint>(),
            Ok(Fingerprint::from_bits(0))
        );
    }
}
