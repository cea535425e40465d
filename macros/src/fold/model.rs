//! Step 1 of `#[factum::fold]`: parse the impl block into handlers.

use syn::{ImplItem, ItemImpl, Type};

use crate::errors::Errors;
use crate::handler::{Messages, check_mut_self, event_arguments};

pub struct FoldModel {
    /// The impl block, without the `#[any]` attributes (they are the fold's, not Rust's).
    pub item: ItemImpl,
    pub handlers: Vec<Handler>,
    /// The `#[any]` handler, if there is one.
    pub any: Option<AnyHandler>,
}

/// `#[any] fn name(&mut self, stored: &StoredEvent)`: called for every event carrying
/// the state's ids that no typed handler takes, whatever its type.
pub struct AnyHandler {
    pub method: syn::Ident,
    /// The `#[any]` attribute, to point errors about the handler as a whole at.
    pub attr: syn::Attribute,
    /// The type of its argument, as written (checked to be `&StoredEvent` by a binding).
    pub stored: Type,
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

const ANY_SHAPE: &str = "an #[any] handler is `#[any] fn other(&mut self, stored: &factum::StoredEvent)`: it takes every event carrying the state's ids that no typed handler takes, and reads it through `stored.decode::<T>()` or `stored.payload.decode_value()`";

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
    let mut item = item;
    let mut handlers = Vec::new();
    let mut any: Option<AnyHandler> = None;
    for it in &mut item.items {
        let ImplItem::Fn(f) = it else { continue };
        let marks = take_any_attrs(&mut f.attrs, errors);
        let Some(attr) = marks else {
            if let Some(h) = parse_handler(&f.sig, errors) {
                handlers.push(h);
            }
            continue;
        };
        if let Some(first) = &any {
            errors.at(
                &attr,
                format!(
                    "this fold already has an #[any] handler (`{}`): a state takes the events no typed handler takes in one method; merge the two",
                    first.method
                ),
            );
            continue;
        }
        any = parse_any(&f.sig, attr, errors);
    }
    Some(FoldModel {
        item,
        handlers,
        any,
    })
}

/// Removes the `#[any]` attributes of a method, returning the first; a repeated one, or
/// one with arguments, is reported.
fn take_any_attrs(attrs: &mut Vec<syn::Attribute>, errors: &mut Errors) -> Option<syn::Attribute> {
    let mut first: Option<syn::Attribute> = None;
    attrs.retain(|attr| {
        if !attr.path().is_ident("any") {
            return true;
        }
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            errors.at(
                &attr.meta,
                "#[any] takes no arguments: write `#[any]` alone on the handler",
            );
        } else if first.is_some() {
            errors.at(attr, "#[any] is repeated on this handler: remove one");
        }
        if first.is_none() {
            first = Some(attr.clone());
        }
        false
    });
    first
}

fn parse_any(
    sig: &syn::Signature,
    attr: syn::Attribute,
    errors: &mut Errors,
) -> Option<AnyHandler> {
    let mut ok = check_common(sig, ANY_SHAPE, errors);
    let args: Vec<&syn::PatType> = sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            syn::FnArg::Typed(t) => Some(t),
            syn::FnArg::Receiver(_) => None,
        })
        .collect();
    let stored = match args.as_slice() {
        [] => {
            errors.at(
                &sig.ident,
                format!("this #[any] handler takes no stored event: {ANY_SHAPE}"),
            );
            return None;
        }
        [one, rest @ ..] => {
            if let Some(extra) = rest.first() {
                errors.at(
                    extra,
                    format!("an #[any] handler takes only the stored event (its type is not known, so there is no typed event to pass): {ANY_SHAPE}"),
                );
                ok = false;
            }
            match &*one.ty {
                Type::Reference(r) if r.mutability.is_none() => (*one.ty).clone(),
                other => {
                    errors.at(
                        other,
                        format!("take the stored event by shared reference, `&factum::StoredEvent`: {ANY_SHAPE}"),
                    );
                    return None;
                }
            }
        }
    };
    ok.then(|| AnyHandler {
        method: sig.ident.clone(),
        attr,
        stored,
    })
}

/// The checks every handler shares: `&mut self`, not async, not generic, no return.
fn check_common(sig: &syn::Signature, shape: &str, errors: &mut Errors) -> bool {
    let mut ok = check_mut_self(
        sig,
        format!("a fold handler takes `&mut self`, as it updates the state: {shape}"),
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
            format!("a fold handler cannot be generic: {shape}"),
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
    ok
}

fn parse_handler(sig: &syn::Signature, errors: &mut Errors) -> Option<Handler> {
    let mut ok = check_common(sig, SHAPE, errors);
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
