//! Step 2 of `#[derive(Decision)]`: check keys against the fields and the retry policy.
//!
//! Whether excluded and emitted types are events, read by the states, and part of the
//! decision's event set depends on other items, so `expand` generates those checks as
//! compile-time assertions.

use quote::ToTokens;

use super::model::DecisionModel;
use crate::errors::{Errors, suggestion};

pub fn check(model: &mut DecisionModel, errors: &mut Errors) {
    if !model.generics.params.is_empty() {
        errors.at(
            &model.generics,
            "a decision cannot be generic: its metadata is registered once, for one concrete type",
        );
    }
    let fields: Vec<String> = model.fields.iter().map(ToString::to_string).collect();
    let ident = model.ident.to_string();
    for (what, key) in [
        ("partition", &mut model.attr.partition),
        ("idempotency", &mut model.attr.idempotency),
    ] {
        if let Some(name) = key {
            let text = name.0.to_string();
            if !fields.contains(&text) {
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
    let mut seen: Vec<String> = Vec::new();
    for path in &model.attr.exclude.0 {
        let text = path.to_token_stream().to_string();
        if seen.contains(&text) {
            errors.at(path, format!("`{text}` is excluded twice"));
        }
        seen.push(text);
    }
    if let Some(emits) = &model.attr.emits {
        if emits.0.is_empty() {
            errors.push(syn::Error::new(
                proc_macro2::Span::call_site(),
                "`emits = []` would forbid every event: list the types it may emit, or drop `emits`",
            ));
        }
    }
    if let (Some(min), Some(max)) = (&model.attr.min_delay_ms, &model.attr.max_delay_ms) {
        if **min > **max {
            errors.push(syn::Error::new(
                max.span(),
                format!("max_delay_ms ({}) is below min_delay_ms ({}): the longest delay must be at least the first", **max, **min),
            ));
        }
    }
}
