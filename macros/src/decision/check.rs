//! Step 2 of `#[derive(Decision)]`: check keys against the fields and the retry policy.
//!
//! Whether excluded and emitted types are events, read by the states, and part of the
//! decision's event set depends on other items, so `expand` generates those checks as
//! compile-time assertions.

use super::model::DecisionModel;
use crate::errors::{Errors, suggestion};
use crate::spans;

pub fn check(model: &mut DecisionModel, errors: &mut Errors) {
    if !model.generics.params.is_empty() {
        errors.at(
            &model.generics,
            "a decision cannot be generic: its metadata is registered once, for one concrete type",
        );
    }
    let ident = model.ident.to_string();
    // Not a struct with named fields: already reported, and there is nothing to check
    // the keys against.
    let fields: Vec<String> = model
        .fields
        .iter()
        .flatten()
        .map(|(f, _)| f.to_string())
        .collect();
    let check_fields = model.fields.is_some();
    for (what, key) in [
        ("partition", &mut model.attr.partition),
        ("idempotency", &mut model.attr.idempotency),
    ] {
        if let Some(name) = key {
            let text = name.0.to_string();
            if check_fields && !fields.contains(&text) {
                let hint = suggestion(&text, fields.iter().map(String::as_str));
                errors.at(
                    &name.0,
                    format!(
                        "`{text}` is not a field of `{ident}`{hint}: the {what} key names one of the decision's fields"
                    ),
                );
                *key = None;
            }
        }
    }
    if let Some(name) = &model.attr.name {
        let text = name.value();
        if text.is_empty() || text.contains([':', '\u{1f}']) {
            // The name scopes the decision's idempotency keys (`<name>:<key>`): a colon
            // in it would let `A:b` + `c` and `A` + `b:c` record the same key.
            errors.at(
                name,
                "a decision's name scopes its idempotency keys as `<name>:<key>`, so it cannot be empty or hold `:` or U+001F: write a plain name, like `name = \"ApplyCoupon\"`",
            );
        }
    }
    if let Some(tag) = &model.attr.partition_tag {
        if tag.value().is_empty() {
            errors.at(
                tag,
                "`partition_tag` names a tag key, so it cannot be empty: write the key, like `partition_tag = \"account\"`",
            );
            model.attr.partition_tag = None;
        } else if model.attr.partition.is_none() {
            errors.at(
                tag,
                "`partition_tag` says which tag the partition field holds, but there is no valid `partition = ..`: add one, or drop `partition_tag`",
            );
            model.attr.partition_tag = None;
        }
    }
    let mut seen: Vec<String> = Vec::new();
    for ty in &model.attr.exclude.types {
        let text = spans::text(ty);
        if seen.contains(&text) {
            errors.at(ty, format!("`{text}` is excluded twice: remove one"));
        }
        seen.push(text);
    }
    let mut seen: Vec<String> = Vec::new();
    for ty in &model.attr.emits.types {
        let text = spans::text(ty);
        if seen.contains(&text) {
            errors.at(
                ty,
                format!("`{text}` is listed twice in `emits`: remove one"),
            );
        }
        seen.push(text);
    }
    if let Some(span) = model.attr.emits.span
        && model.attr.emits.types.is_empty()
    {
        errors.push(syn::Error::new(
            span,
            "`emits = []` would forbid every event: list the types it may emit, or drop `emits`",
        ));
    }
    if let Some(span) = model.attr.exclude_from.span {
        if model.attr.exclude.types.is_empty() {
            errors.push(syn::Error::new(
                span,
                "`exclude_from` says which states lose the excluded types, but there is no `exclude = [..]`: add one, or drop `exclude_from`",
            ));
        } else if model.attr.exclude_from.types.is_empty() {
            errors.push(syn::Error::new(
                span,
                "`exclude_from = []` would exclude nothing: name the states, like `exclude_from = [Coupon]`, or drop `exclude_from` to exclude from every state",
            ));
        }
    }
    // The runtime's default longest delay, for a `min_delay_ms` set alone.
    const DEFAULT_MAX_DELAY_MS: u64 = 100;
    if let (Some(min), None) = (&model.attr.min_delay_ms, &model.attr.max_delay_ms)
        && **min > DEFAULT_MAX_DELAY_MS
    {
        errors.push(syn::Error::new(
            min.span(),
            format!("min_delay_ms ({}) is above the default max_delay_ms ({DEFAULT_MAX_DELAY_MS}): set max_delay_ms too, at least as large", **min),
        ));
    }
    if let Some(min) = &model.attr.min_delay_ms
        && **min == 0
    {
        errors.push(syn::Error::new(
            min.span(),
            "min_delay_ms = 0 would retry without any backoff: use at least 1",
        ));
    }
    if let (Some(min), Some(max)) = (&model.attr.min_delay_ms, &model.attr.max_delay_ms)
        && **min > **max
    {
        errors.push(syn::Error::new(
            max.span(),
            format!("max_delay_ms ({}) is below min_delay_ms ({}): the longest delay must be at least the first; raise max_delay_ms or lower min_delay_ms", **max, **min),
        ));
    }
}
