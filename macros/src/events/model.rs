//! Step 1 of `#[factum::events]`: parse the module into a plain model.

use darling::FromMeta;
use quote::ToTokens;
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
    /// The schema version.
    pub version: u32,
    /// Whether the struct has an error (already reported): its impls then say so
    /// (`Event::MACRO_REPORTED_ERROR`) and the checks generated elsewhere skip it, so the
    /// error does not cascade (a dropped `#[tag]` is not reported again by every fold).
    pub reported: bool,
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
    /// The `version = N` literal, when written: where chain errors point.
    pub version_span: Option<proc_macro2::Span>,
    /// The `#[upcast(from = N, with = path)]` steps, as written.
    pub upcasts: Vec<Upcast>,
    /// Whether it is an integration event (`#[event(public)]`), published after commit.
    pub public: bool,
}

/// One `#[upcast(from = N, with = path)]`: a step from stored version `from` to `from + 1`.
pub struct Upcast {
    pub from: u32,
    pub from_lit: syn::LitInt,
    pub with: syn::Path,
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
    (
        "public",
        "a flag, written alone: `public` marks an integration event, published after commit",
    ),
];

/// `#[event(name = "...", version = N, public)]`.
#[derive(Default, FromMeta)]
#[darling(default)]
struct EventAttr {
    name: Option<LitStr>,
    version: Option<syn::LitInt>,
    public: darling::util::Flag,
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
                event.reported = errors.len() > before;
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
    path.is_ident("group")
        || path.is_ident("event")
        || path.is_ident("tag")
        || path.is_ident("upcast")
}

const UPCAST_USAGE: &str = "write #[upcast(from = 1, with = path::to::function)], where the function is `fn(serde_json::Value) -> serde_json::Value` and turns a version-1 payload into a version-2 one";

/// Reads every `#[upcast(from = N, with = path)]` of a struct, one step per attribute.
fn parse_upcasts(attrs: &[syn::Attribute], errors: &mut Errors) -> Vec<Upcast> {
    let mut upcasts = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("upcast")) {
        let pairs = match attr.parse_args_with(
            syn::punctuated::Punctuated::<syn::MetaNameValue, syn::Token![,]>::parse_terminated,
        ) {
            Ok(pairs) => pairs,
            Err(_) => {
                errors.at(attr, UPCAST_USAGE);
                continue;
            }
        };
        let mut from: Option<syn::LitInt> = None;
        let mut with: Option<syn::Path> = None;
        let mut ok = true;
        for pair in &pairs {
            let key = pair
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            match (key.as_str(), &pair.value) {
                ("from", _) if from.is_some() => {
                    errors.at(&pair.path, "`from` is set twice in #[upcast(..)]: keep one");
                    ok = false;
                }
                ("with", _) if with.is_some() => {
                    errors.at(&pair.path, "`with` is set twice in #[upcast(..)]: keep one");
                    ok = false;
                }
                (
                    "from",
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Int(lit),
                        ..
                    }),
                ) => {
                    from = Some(lit.clone());
                }
                ("from", other) => {
                    errors.at(other, "`from` takes the stored version this step reads, a whole number from 1 up, like `from = 1`");
                    ok = false;
                }
                ("with", syn::Expr::Path(p)) => with = Some(p.path.clone()),
                ("with", other) => {
                    errors.at(other, "`with` takes the path of a function `fn(serde_json::Value) -> serde_json::Value`, like `with = v1_to_v2`");
                    ok = false;
                }
                _ => {
                    errors.at(
                        &pair.path,
                        format!(
                            "unknown key `{}` in #[upcast(..)]{}: it takes `from` and `with`",
                            pair.path.to_token_stream(),
                            crate::errors::suggestion(&key, ["from", "with"])
                        ),
                    );
                    ok = false;
                }
            }
        }
        let (Some(from_lit), Some(with)) = (from, with) else {
            if ok {
                errors.at(
                    attr,
                    format!("#[upcast(..)] needs both `from` and `with`: {UPCAST_USAGE}"),
                );
            }
            continue;
        };
        if !ok {
            continue;
        }
        match from_lit.base10_parse::<u32>() {
            Ok(from) if from >= 1 => upcasts.push(Upcast {
                from,
                from_lit,
                with,
            }),
            _ => errors.at(
                &from_lit,
                "`from` takes the stored version this step reads, a whole number from 1 up, like `from = 1`",
            ),
        }
    }
    upcasts
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
    let upcasts = parse_upcasts(&s.attrs, errors);
    s.attrs.retain(|a| {
        !(a.path().is_ident("event") || a.path().is_ident("group") || a.path().is_ident("upcast"))
    });

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
            .filter_map(|f| tag_key::parse_with("tag", f, true, errors))
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
        reported: false,
        tags,
        groups,
        item_index,
        in_enums: valid_shape,
        valid_shape,
        generics: s.generics.clone(),
        version_span: attr.version.as_ref().map(syn::LitInt::span),
        upcasts,
        public: attr.public.is_present(),
    }
}
