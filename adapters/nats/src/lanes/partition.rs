//! Which partition a key belongs to, and the subject of each partition.
//!
//! The partition of a key is the 64-bit FNV-1a hash of its UTF-8 bytes, modulo the
//! number of partitions. FNV-1a is fixed by its specification (offset basis
//! `0xcbf29ce484222325`, prime `0x100000001b3`), so every process, build and Rust
//! version agrees on it — unlike std's `DefaultHasher`, whose algorithm may change and
//! which `RandomState` seeds per process. Changing the number of partitions moves keys:
//! do it with a new stream (or prefix), not under running workers.

use std::hash::Hasher;

/// The 64-bit FNV-1a hash of `key`'s UTF-8 bytes.
pub fn hash(key: &str) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(key.as_bytes());
    hasher.finish()
}

/// The partition of `key` among `partitions` (`0..partitions`; 0 partitions count as 1).
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    let partitions = u64::from(partitions.max(1));
    // The remainder is below `partitions`, which fits in a u32.
    u32::try_from(hash(key) % partitions).unwrap_or(0)
}

/// The subject the commands of `partition` are published on: `<prefix>.cmd.<partition>`.
pub fn command_subject(prefix: &str, partition: u32) -> String {
    format!("{prefix}.cmd.{partition}")
}

/// The subjects of the commands stream: every partition's (`<prefix>.cmd.*`).
pub(crate) fn all_commands(prefix: &str) -> String {
    format!("{prefix}.cmd.*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_reference_values() {
        // From the FNV reference test suite.
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash("foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn zero_partitions_count_as_one() {
        assert_eq!(partition_of("anything", 0), 0);
        assert_eq!(partition_of("anything", 1), 0);
    }
}
