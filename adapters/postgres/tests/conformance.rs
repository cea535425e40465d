//! The runtime's store conformance suite, each case against a fresh schema.

mod common;

factum::conformance_tests!(|| common::guarded("conformance"));

/// The listener cases: checkpoints, dead letters, the commit signal, a subscription.
mod listening {
    factum::listener_conformance_tests!(|| crate::common::guarded("listening"));
}
