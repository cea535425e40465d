//! Step 1 of `#[factum::fold]`: parse the impl block into handlers.

use syn::{ImplItem, ItemImpl, Type};

use crate::errors::Errors;
use crate::handler::{Messages, check_mut_self, event_arguments};

pub struct FoldModel {
    pub item: ItemImpl,
    pub handlers: Vec<Handler>,
}

/// `fn name(&mut self, event: &EventType[, meta: &StoredEvent])`.
pub struct Handler {
    pub method: syn::Ident,
    /// The event type, as written.
    pub event: Type,
    /// The type of its second argument, the stored event (position, time, metadata),
    /// when it takes one.
    pub stored: Option<Type>,
}

const SHAPE: &str = "a fold handler is `fn applied(&mut self, event: &shop::CouponApplied)`, optionally with a second argument `stored: &factum::StoredEvent` for position and time; put other methods in another impl block";

/// Parses the impl block. `None` when it is a trait impl: that is not a fold at all, so
/// nothing is generated for it (the state's real fold is usually another impl block).
pub fn parse(item: ItemImpl, errors: &mut Errors) -> Option<FoldModel> {
    if let Some((path, _)) = &item.trait_ {
        errors.at(
            path,
            "#[factum::fold] goes on the state's inherent impl (`impl Coupon { .. }`), not on a trait impl: move it to the impl block of the handlers",
        );
        return None;
    }
    let mut handlers = Vec::new();
    for it in &item.items {
        match it {
            ImplItem::Fn(f) => {
                if let Some(h) = parse_handler(&f.sig, errors) {
                    handlers.push(h);
                }
            }
            ImplItem::Const(_) | ImplItem::Type(_) | ImplItem::Macro(_) => {}
            _ => {}
        }
    }
    Some(FoldModel { item, handlers })
}

fn parse_handler(sig: &syn::Signature, errors: &mut Errors) -> Option<Handler> {
    let mut ok = check_mut_self(
        sig,
        format!("a fold handler takes `&mut self`, as it updates the state: {SHAPE}"),
        errors,
    );
    if sig.asyncness.is_some() {
        errors.at(
            sig.asyncness,
            "a fold handler cannot be async: folding is pure and synchronous",
        );
        ok = false;
    }
    if !sig.generics.params.is_empty() {
        errors.at(
            &sig.generics,
            format!("a fold handler cannot be generic: {SHAPE}"),
        );
        ok = false;
    }
    if let syn::ReturnType::Type(_, ty) = &sig.output {
        errors.at(
            ty,
            "a fold handler returns nothing: it only updates the state; reject things in `decide`, not while folding",
        );
        ok = false;
    }
    let by_reference = |event: &str| {
        format!(
            "take the event by shared reference: `&{event}`; a fold handler is `fn applied(&mut self, event: &shop::CouponApplied)`"
        )
    };
    let messages = Messages {
        no_event: format!("this fold handler takes no event: {SHAPE}"),
        by_reference: &by_reference,
        too_many: format!("too many arguments: {SHAPE}"),
    };
    let (event, stored) = event_arguments(sig, &messages, &mut ok, errors)?;
    ok.then(|| Handler {
        method: sig.ident.clone(),
        event,
        stored,
    })
}
