//! Step 1 of `#[factum::events]`: parse the module into a plain model.

use darling::FromMeta;
use syn::{Ident, Item, ItemMod, ItemStruct, LitStr};

use crate::errors::Errors;
use crate::tag_key::{self, TagField};

/// The module and its event structs.
pub struct Module {
    /// The module with factum's inert attributes removed, ready to re-emit.
    pub item: ItemMod,
    pub events: Vec<EventModel>,
}

/// One event struct.
pub struct EventModel {
    pub ident: Ident,
    /// The stable type name (struct name unless renamed).
    pub name: String,
    pub name_span: proc_macro2::Span,
    pub version: u32,
    pub tags: Vec<TagField>,
    pub groups: Vec<Ident>,
    /// The index of the struct in the module's items.
    pub item_index: usize,
}

/// `#[event(name = "...", version = N)]`.
#[derive(Default, FromMeta)]
struct EventAttr {
    name: Option<LitStr>,
    version: Option<syn::LitInt>,
}

/// Parses the module. Structs with errors are still kept when that avoids follow-on
/// errors; the errors are recorded.
pub fn parse(mut item: ItemMod, errors: &mut Errors) -> Option<Module> {
    let Some((_, items)) = item.content.as_mut() else {
        errors.at(
            &item,
            "#[factum::events] needs an inline module: write `mod name { ... }` with the event structs inside",
        );
        return None;
    };
    let mut events = Vec::new();
    for (index, it) in items.iter_mut().enumerate() {
        match it {
            Item::Struct(s) => {
                if let Some(event) = parse_struct(s, index, errors) {
                    events.push(event);
                }
            }
            Item::Enum(e) => {
                let marked = e.attrs.iter().any(|a| is_factum_attr(a.path()));
                if marked {
                    errors.at(
                        &e.enum_token,
                        "an enum cannot be an event type: declare one struct per event, and #[factum::events] generates the enums",
                    );
                    e.attrs.retain(|a| !is_factum_attr(a.path()));
                }
            }
            _ => {}
        }
    }
    Some(Module { item, events })
}

fn is_factum_attr(path: &syn::Path) -> bool {
    path.is_ident("group") || path.is_ident("event") || path.is_ident("tag")
}

fn parse_struct(s: &mut ItemStruct, item_index: usize, errors: &mut Errors) -> Option<EventModel> {
    let mut attr = EventAttr::default();
    let mut groups = Vec::new();
    for a in s.attrs.iter().filter(|a| a.path().is_ident("event")) {
        if let Some(parsed) = errors.ok_darling(EventAttr::from_meta(&a.meta)) {
            attr.name = parsed.name.or(attr.name);
            attr.version = parsed.version.or(attr.version);
        }
    }
    for a in s.attrs.iter().filter(|a| a.path().is_ident("group")) {
        let parsed = a.parse_args_with(
            syn::punctuated::Punctuated::<Ident, syn::Token![,]>::parse_terminated,
        );
        match parsed {
            Ok(list) if list.is_empty() => {
                errors.at(a, "name at least one group, like #[group(Coupon)]")
            }
            Ok(list) => groups.extend(list),
            Err(_) => errors.at(a, "expected group names, like #[group(Coupon, Cart)]"),
        }
    }
    s.attrs
        .retain(|a| !(a.path().is_ident("event") || a.path().is_ident("group")));

    let mut ok = true;
    if !s.generics.params.is_empty() || s.generics.where_clause.is_some() {
        errors.at(
            &s.generics,
            "event types cannot be generic: a stored event needs one concrete type; use concrete field types",
        );
        ok = false;
    }
    if let syn::Fields::Unnamed(fields) = &s.fields {
        errors.at(
            fields,
            "an event cannot be a tuple struct: use named fields, so tags and the stored payload have stable names",
        );
        ok = false;
    }
    let tags: Vec<TagField> = s
        .fields
        .iter()
        .filter_map(|f| tag_key::parse("tag", f, errors))
        .collect();
    tag_key::strip("tag", &mut s.fields);

    let (name, name_span) = match &attr.name {
        Some(lit) => (lit.value(), lit.span()),
        None => (s.ident.to_string(), s.ident.span()),
    };
    if name.is_empty() {
        errors.push(syn::Error::new(
            name_span,
            "an event type name cannot be empty",
        ));
        ok = false;
    }
    let version = match &attr.version {
        None => 1,
        Some(lit) => match lit.base10_parse::<u32>() {
            Ok(v) if v >= 1 => v,
            _ => {
                errors.at(lit, "an event's schema version is a whole number from 1 up");
                ok = false;
                1
            }
        },
    };
    ok.then(|| EventModel {
        ident: s.ident.clone(),
        name,
        name_span,
        version,
        tags,
        groups,
        item_index,
    })
}
