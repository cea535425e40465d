//! Compile-fail UI tests: every misuse of factum's macros is a precise, helpful error.
//!
//! Each `ui/*.rs` is a complete small program with one intended mistake (or, where the
//! file says so, several), so a follow-on error would show in its `.stderr`.
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p factum-tests --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
}
