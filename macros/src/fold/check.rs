//! Step 2 of `#[factum::fold]`: check the handlers as a whole.
//!
//! Whether each handler's type is an event, and whether it carries the state's id tags,
//! depends on other macros' output, so those checks are generated as compile-time
//! assertions instead (see `expand`).

use super::model::FoldModel;
use crate::errors::Errors;
use crate::spans;

pub fn check(model: &mut FoldModel, errors: &mut Errors) {
    if model.handlers.is_empty() && model.any.is_none() && errors.is_empty() {
        errors.at(
            &model.item.self_ty,
            "this fold has no handler: add one method per event type, like `fn issued(&mut self, event: &shop::CouponIssued)`",
        );
    }
    let mut seen: Vec<(String, syn::Ident)> = Vec::new();
    model.handlers.retain(|h| {
        let key = spans::text(&h.event);
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
            errors.at(
                &h.event,
                format!("`{key}` already has a handler (`{first}`): a state folds each event type in one handler; merge the two into one method"),
            );
            return false;
        }
        seen.push((key, h.method.clone()));
        true
    });
}
