//! The conformance cases that append batches, with every batch forced through each of the
//! two paths (see `PostgresOptions::pipeline_above`): the SQL function, and pipelined
//! statements. (`conformance.rs` runs them all at the default threshold, where small
//! batches take the first path and larger ones the second.)

mod common;

mod function {
    use super::common;

    factum::conformance_tests!(@cases (|| async {
        let (store, guard) =
            common::store_with("conf_fn", |o| o.pipeline_above = usize::MAX).await;
        factum::conformance::Guarded::new(store, guard)
    })
        batch_appends
        batch_dependencies
        idempotency_lookup
        recorded_keys
        empty_condition_refused
        repeated_tags_stored_once
        exact_floats
        contended_decisions
    );
}

mod pipelined {
    use super::common;

    factum::conformance_tests!(@cases (|| async {
        let (store, guard) = common::store_with("conf_pipe", |o| o.pipeline_above = 0).await;
        factum::conformance::Guarded::new(store, guard)
    })
        batch_appends
        batch_dependencies
        idempotency_lookup
        recorded_keys
        empty_condition_refused
        repeated_tags_stored_once
        exact_floats
        contended_decisions
    );
}
