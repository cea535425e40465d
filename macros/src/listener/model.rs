//! Step 1 of `#[factum::listener]`: parse the arguments and the impl block's handlers.

use proc_macro2::TokenStream;
use syn::punctuated::Punctuated;
use syn::{ImplItem, ItemImpl, Type};

use crate::errors::Errors;
use crate::handler::{Messages, check_mut_self, event_arguments};

/// `#[factum::listener(name = "..", tags = method)]`.
#[derive(Default)]
pub struct ListenerAttr {
    /// The stable name (checkpoint key); the type's name when absent.
    pub name: Option<syn::LitStr>,
    /// A method `fn(&self) -> Vec<Tag>` restricting the query to those tags.
    pub tags: Option<syn::Ident>,
}

pub struct ListenerModel {
    pub item: ItemImpl,
    pub attr: ListenerAttr,
    pub handlers: Vec<Handler>,
}

/// `[async] fn name(&mut self, event: &EventType[, stored: &StoredEvent]) [-> Result<(), E>]`.
pub struct Handler {
    pub method: syn::Ident,
    pub event: Type,
    pub stored: bool,
    pub is_async: bool,
}

pub const SHAPE: &str = "a listener handler is `async fn applied(&mut self, event: &shop::CouponApplied) -> Result<(), HandlerError>`, optionally with a second argument `stored: &factum::StoredEvent`; it may be sync, and may return nothing; put other methods in another impl block";

pub fn parse_args(args: TokenStream, errors: &mut Errors) -> ListenerAttr {
    let mut attr = ListenerAttr::default();
    if args.is_empty() {
        return attr;
    }
    let parser = Punctuated::<syn::MetaNameValue, syn::Token![,]>::parse_terminated;
    let list = match syn::parse::Parser::parse2(parser, args.clone()) {
        Ok(list) => list,
        Err(_) => {
            errors.at(
                &args,
                "expected `name = \"..\"` and `tags = method`, like #[factum::listener(name = \"coupon-audit\")]",
            );
            return attr;
        }
    };
    for nv in list {
        let key = nv
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match (key.as_str(), &nv.value) {
            (
                "name",
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }),
            ) if attr.name.is_none() => attr.name = Some(s.clone()),
            ("tags", syn::Expr::Path(p)) if attr.tags.is_none() && p.path.get_ident().is_some() => {
                attr.tags = p.path.get_ident().cloned();
            }
            ("name" | "tags", _) if (key == "name" && attr.name.is_some()) || (key == "tags" && attr.tags.is_some()) => {
                errors.at(&nv.path, format!("`{key}` is set twice in #[factum::listener(..)]: keep one"));
            }
            ("name", value) => errors.at(
                value,
                "`name` takes the listener's stable name as a string, like `name = \"coupon-audit\"`: it keys its checkpoint",
            ),
            ("tags", value) => errors.at(
                value,
                "`tags` takes the name of a method `fn(&self) -> Vec<factum::Tag>`, like `tags = region_tags`",
            ),
            _ => errors.at(
                &nv.path,
                format!(
                    "unknown key `{key}` in #[factum::listener(..)]{}: the keys are `name`, `tags`",
                    crate::errors::suggestion(&key, ["name", "tags"])
                ),
            ),
        }
    }
    attr
}

/// Parses the impl block. `None` when it is a trait impl.
pub fn parse(item: ItemImpl, attr: ListenerAttr, errors: &mut Errors) -> Option<ListenerModel> {
    if let Some((path, _)) = &item.trait_ {
        errors.at(
            path,
            "#[factum::listener] goes on the listener's inherent impl (`impl Audit { .. }`), not on a trait impl",
        );
        return None;
    }
    let mut handlers = Vec::new();
    for it in &item.items {
        if let ImplItem::Fn(f) = it
            && let Some(h) = parse_handler(&f.sig, attr.tags.as_ref(), errors)
        {
            handlers.push(h);
        }
    }
    Some(ListenerModel {
        item,
        attr,
        handlers,
    })
}

fn parse_handler(
    sig: &syn::Signature,
    tags: Option<&syn::Ident>,
    errors: &mut Errors,
) -> Option<Handler> {
    // The `tags` method is not a handler.
    if tags.is_some_and(|t| *t == sig.ident) {
        return None;
    }
    let mut ok = check_mut_self(
        sig,
        format!("a listener handler takes `&mut self`: {SHAPE}"),
        errors,
    );
    if !sig.generics.params.is_empty() {
        errors.at(
            &sig.generics,
            format!("a listener handler cannot be generic: {SHAPE}"),
        );
        ok = false;
    }
    let by_reference =
        |event: &str| format!("take the event by shared reference, `&{event}`: {SHAPE}");
    let messages = Messages {
        no_event: format!("this listener handler takes no event: {SHAPE}"),
        by_reference: &by_reference,
        too_many: format!("too many arguments: {SHAPE}"),
    };
    let (event, stored) = event_arguments(sig, &messages, &mut ok, errors)?;
    ok.then(|| Handler {
        method: sig.ident.clone(),
        event,
        stored: stored.is_some(),
        is_async: sig.asyncness.is_some(),
    })
}
