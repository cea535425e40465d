//! Step 2 of `#[factum::listener]`: a listener needs at least one handler, each for a
//! distinct type as written.

use super::model::ListenerModel;
use crate::errors::Errors;

pub fn check(model: &mut ListenerModel, errors: &mut Errors) {
    // Methods that are not handlers were already reported; only an impl without any
    // method is missing its handlers.
    let methods = model
        .item
        .items
        .iter()
        .filter(|it| matches!(it, syn::ImplItem::Fn(_)))
        .count();
    let tags_method = usize::from(model.attr.tags.is_some());
    if model.handlers.is_empty() && methods <= tags_method {
        errors.at(
            &model.item.self_ty,
            format!(
                "this listener has no handler, so it would consume nothing: {}",
                super::model::SHAPE
            ),
        );
    }
    let mut seen: Vec<String> = Vec::new();
    for h in &model.handlers {
        let text = crate::spans::text(&h.event);
        if seen.contains(&text) {
            errors.at(
                &h.event,
                format!("a second handler for `{text}`: only the first would run; merge them"),
            );
        }
        seen.push(text);
    }
    if let Some(name) = &model.attr.name
        && name.value().is_empty()
    {
        errors.at(
            name,
            "a listener's name keys its checkpoint, so it cannot be empty",
        );
    }
}
