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
    /// The names of the module's own type items, which generated enums must not reuse.
    pub item_names: Vec<Ident>,
    /// Whether to generate the module's `Event` enum (not when the name is taken).
    pub all_enum: bool,
}

/// One event struct.
pub struct EventModel {
    pub ident: Ident,
    /// The stable type name (struct name unless renamed).
    pub name: String,
    pub name_span: proc_macro2::Span,
    /// The schema version; 0, which no real event has, when the struct has an error
    /// (already reported): the checks generated elsewhere then skip it, so the error does
    /// not cascade (a dropped `#[tag]` is not reported again by every fold).
    pub version: u32,
    pub tags: Vec<TagField>,
    pub groups: Vec<Ident>,
    /// The index of the struct in the module's items.
    pub item_index: usize,
    /// Whether it is a variant of the module's enums. A struct whose type name is already
    /// taken is not (an error says so), but it still gets its impls, so code naming it
    /// reports nothing more.
    pub in_enums: bool,
    /// Whether it has a shape an event can have (not generic, not a tuple struct). One
    /// that has not (an error says so) gets neutral impls instead, out of the enums, so
    /// code naming it reports nothing more.
    pub valid_shape: bool,
    pub generics: syn::Generics,
}

/// The keys of `#[event(..)]` and what each takes, for errors.
const KEYS: &[crate::attr::Key] = &[
    (
        "name",
        "the stored type name as a string, like `name = \"CouponIssued\"`",
    ),
    (
        "version",
        "the schema version, a whole number from 1 up, like `version = 2`",
    ),
];

/// `#[event(name = "...", version = N)]`.
#[derive(Default, FromMeta)]
#[darling(default)]
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
    let item_names = items
        .iter()
        .filter_map(|it| match it {
            Item::Struct(s) => Some(s.ident.clone()),
            Item::Enum(e) => Some(e.ident.clone()),
            Item::Union(u) => Some(u.ident.clone()),
            Item::Type(t) => Some(t.ident.clone()),
            Item::Trait(t) => Some(t.ident.clone()),
            _ => None,
        })
        .collect();
    for (index, it) in items.iter_mut().enumerate() {
        match it {
            Item::Struct(s) => {
                let before = errors.len();
                let mut event = parse_struct(s, index, errors);
                if errors.len() > before {
                    event.version = 0;
                }
                events.push(event);
            }
            Item::Enum(e) => {
                let tagged = e
                    .variants
                    .iter()
                    .flat_map(|v| &v.fields)
                    .any(|f| f.attrs.iter().any(|a| a.path().is_ident("tag")));
                if tagged || e.attrs.iter().any(|a| is_factum_attr(a.path())) {
                    errors.at(
                        e.enum_token,
                        "an enum cannot be an event type: declare one struct per event (`pub struct ItemAdded { .. }`), and #[factum::events] generates the enums, one per #[group(..)]",
                    );
                    // Drop factum's attributes, so the enum compiles as a plain enum.
                    e.attrs.retain(|a| !is_factum_attr(a.path()));
                    for variant in &mut e.variants {
                        tag_key::strip("tag", &mut variant.fields);
                    }
                }
            }
            _ => {}
        }
    }
    Some(Module {
        item,
        events,
        item_names,
        all_enum: true,
    })
}

fn is_factum_attr(path: &syn::Path) -> bool {
    path.is_ident("group") || path.is_ident("event") || path.is_ident("tag")
}

fn parse_struct(s: &mut ItemStruct, item_index: usize, errors: &mut Errors) -> EventModel {
    let attr: EventAttr = crate::attr::parse(&s.attrs, "event", KEYS, errors);
    let mut groups = Vec::new();
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

    let mut valid_shape = true;
    if !s.generics.params.is_empty() || s.generics.where_clause.is_some() {
        errors.at(
            &s.generics,
            "event types cannot be generic: a stored event needs one concrete type; use concrete field types",
        );
        valid_shape = false;
    }
    let tags: Vec<TagField> = if let syn::Fields::Unnamed(fields) = &s.fields {
        errors.at(
            fields,
            "an event cannot be a tuple struct: use named fields, so tags and the stored payload have stable names",
        );
        valid_shape = false;
        // Its `#[tag]`s cannot name a key; the error above covers them.
        Vec::new()
    } else {
        s.fields
            .iter()
            .filter_map(|f| tag_key::parse("tag", f, errors))
            .collect()
    };
    tag_key::strip("tag", &mut s.fields);

    let (name, name_span) = match &attr.name {
        Some(lit) if lit.value().is_empty() => {
            errors.at(
                lit,
                "an event type name cannot be empty: write a name, or drop `name` to use the struct's",
            );
            (s.ident.to_string(), lit.span())
        }
        Some(lit) => (lit.value(), lit.span()),
        None => (s.ident.to_string(), s.ident.span()),
    };
    let version = match &attr.version {
        None => 1,
        Some(lit) => match lit.base10_parse::<u32>() {
            Ok(v) if v >= 1 => v,
            _ => {
                errors.at(
                    lit,
                    "an event's schema version is a whole number from 1 up, like `version = 2`",
                );
                1
            }
        },
    };
    EventModel {
        ident: s.ident.clone(),
        name,
        name_span,
        version,
        tags,
        groups,
        item_index,
        in_enums: valid_shape,
        valid_shape,
        generics: s.generics.clone(),
    }
}
