//! What fold and listener handlers share: `&mut self`, and one event taken by shared
//! reference, optionally followed by the stored event.

use syn::{FnArg, Type};

use crate::errors::Errors;

/// Whether the method takes `&mut self`; if not, reports `message` at its receiver (or
/// its name when it has no argument).
pub fn check_mut_self(sig: &syn::Signature, message: String, errors: &mut Errors) -> bool {
    let ok = matches!(
        sig.receiver(),
        Some(r) if matches!(r.kind, syn::ReceiverKind::Reference(_, _, Some(_)))
    );
    if !ok {
        let at: &dyn quote::ToTokens = match sig.inputs.first() {
            Some(first) => first,
            None => &sig.ident,
        };
        errors.at(at, message);
    }
    ok
}

/// The messages of [`event_arguments`], which differ by macro.
pub struct Messages<'a> {
    /// When the handler takes no argument besides `self`.
    pub no_event: String,
    /// When the event is not taken by shared reference, given the event type as written.
    pub by_reference: &'a dyn Fn(&str) -> String,
    /// When it takes more than the event and the stored event.
    pub too_many: String,
}

/// The event type a handler takes (by shared reference) and whether it also takes a
/// second argument (the stored event); `None` when there is no usable event argument.
/// A third argument is reported, and makes the handler unusable (`ok` is cleared).
pub fn event_arguments(
    sig: &syn::Signature,
    messages: &Messages<'_>,
    ok: &mut bool,
    errors: &mut Errors,
) -> Option<(Type, Option<Type>)> {
    let args: Vec<&syn::PatType> = sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let event = match args.first() {
        None => {
            errors.at(&sig.ident, &messages.no_event);
            return None;
        }
        Some(arg) => match &*arg.ty {
            Type::Reference(r) if r.mutability.is_none() => (*r.elem).clone(),
            other => {
                let event = match other {
                    Type::Reference(r) => crate::spans::text(&r.elem),
                    _ => crate::spans::text(other),
                };
                errors.at(other, (messages.by_reference)(&event));
                return None;
            }
        },
    };
    if args.len() > 2 {
        errors.at(args[2], &messages.too_many);
        *ok = false;
    }
    Some((event, args.get(1).map(|a| (*a.ty).clone())))
}
