//! The runtime's store conformance suite, each case against a fresh schema.

mod common;

factum::conformance_tests!(|| common::guarded("conformance"));
