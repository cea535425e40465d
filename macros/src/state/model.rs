//! Step 1 of `#[derive(State)]`: parse the struct into a plain model.

use darling::FromMeta;
use syn::{DeriveInput, Ident, Type, Visibility};

use crate::errors::Errors;
use crate::tag_key::{self, TagField};

pub struct StateModel {
    pub ident: Ident,
    pub vis: Visibility,
    pub name: String,
    pub ids: Vec<TagField>,
    /// Every named field, with its type, for the constructor and the start comparison.
    pub fields: Vec<(Ident, Type)>,
    /// Fields whose starting value is given by `#[initial(expr)]` instead of `Default`.
    pub initials: Vec<Initial>,
    pub constructor: bool,
    /// Whether the input is a struct with named (or no) fields; generation falls back to
    /// a neutral `StateId` otherwise.
    pub valid_shape: bool,
    /// The input's generics: a state cannot be generic (an error says so), but the
    /// fallback impls keep them, so the user's other code still compiles.
    pub generics: syn::Generics,
    pub snapshot: Option<SnapshotModel>,
}

/// `#[initial(expr)]` on a field: the constructor's value for it.
pub struct Initial {
    pub field: Ident,
    pub expr: syn::Expr,
    /// The attribute, where misuse is reported.
    pub attr: syn::Attribute,
    /// Whether the field is also an `#[id]` (an error: ids come from the arguments).
    pub on_id: bool,
}

/// The keys of `#[state(..)]` and what each takes, for errors.
const KEYS: &[crate::attr::Key] = &[
    (
        "name",
        "the state's name as a string, like `name = \"Coupon\"`",
    ),
    (
        "constructor",
        "`true` or `false`, like `constructor = false`",
    ),
    (
        "snapshot_every",
        "how many events a load folds before it saves a snapshot, a whole number from 1 up, like `snapshot_every = 500`",
    ),
    (
        "snapshot_version",
        "a whole number to bump when a fold handler's logic changes, like `snapshot_version = 2`",
    ),
];

/// `#[state(name = "...", constructor = false)]`.
#[derive(Default, FromMeta)]
#[darling(default)]
struct StateAttr {
    name: Option<syn::LitStr>,
    constructor: Option<bool>,
    snapshot_every: Option<syn::LitInt>,
    snapshot_version: Option<syn::LitInt>,
}

/// `#[state(snapshot_every = N, snapshot_version = V)]`, checked.
pub struct SnapshotModel {
    pub every: u64,
    pub version: u32,
    /// Where a state that cannot be serialized is reported.
    pub span: proc_macro2::Span,
}

pub fn parse(input: &DeriveInput, errors: &mut Errors) -> StateModel {
    let attr: StateAttr = crate::attr::parse(&input.attrs, "state", KEYS, errors);
    let mut valid_shape = true;
    let mut ids = Vec::new();
    let mut fields = Vec::new();
    let mut initials = Vec::new();
    match &input.data {
        syn::Data::Struct(data) => match &data.fields {
            syn::Fields::Named(named) => {
                for f in &named.named {
                    let id = tag_key::parse("id", f, errors);
                    if let Some(initial) = parse_initial(f, id.is_some(), errors) {
                        initials.push(initial);
                    }
                    if let Some(id) = id {
                        ids.push(id);
                    }
                    if let Some(ident) = &f.ident {
                        fields.push((ident.clone(), f.ty.clone()));
                    }
                }
            }
            syn::Fields::Unit => {}
            syn::Fields::Unnamed(unnamed) => {
                errors.at(
                    unnamed,
                    "a state cannot be a tuple struct: use named fields, so `#[id]` fields can name their tag keys",
                );
                valid_shape = false;
            }
        },
        syn::Data::Enum(e) => {
            errors.at(
                e.enum_token,
                "a state must be a struct with named fields, not an enum: keep the variants' data as fields of one struct",
            );
            valid_shape = false;
        }
        syn::Data::Union(u) => {
            errors.at(
                u.union_token,
                "a state must be a struct with named fields, not a union",
            );
            valid_shape = false;
        }
    }
    if !input.generics.params.is_empty() {
        errors.at(
            &input.generics,
            "a state cannot be generic: the catalog and the folds need one concrete type; use concrete field types",
        );
    }
    let snapshot = parse_snapshot(&attr, errors);
    StateModel {
        snapshot,
        ident: input.ident.clone(),
        vis: input.vis.clone(),
        name: attr
            .name
            .map_or_else(|| input.ident.to_string(), |l| l.value()),
        ids,
        fields,
        initials,
        constructor: attr.constructor.unwrap_or(true),
        valid_shape,
        generics: input.generics.clone(),
    }
}

/// Reads `#[initial(expr)]` on `field`, if any.
fn parse_initial(field: &syn::Field, on_id: bool, errors: &mut Errors) -> Option<Initial> {
    let attrs: Vec<&syn::Attribute> = field
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("initial"))
        .collect();
    let attr = *attrs.first()?;
    for dup in &attrs[1..] {
        errors.at(
            dup,
            "duplicate #[initial] on one field: a field starts from one value; remove this one",
        );
    }
    let field_ident = field.ident.clone()?;
    let example = "like #[initial(1)] or #[initial(Limit::DEFAULT)]";
    let expr = match &attr.meta {
        syn::Meta::List(list) if !list.tokens.is_empty() => {
            errors.ok(list.parse_args::<syn::Expr>().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!("#[initial(..)] takes the field's starting value as one expression, {example}"),
                )
            }))?
        }
        syn::Meta::NameValue(nv) => {
            errors.at(
                nv,
                format!(
                    "write the starting value in parentheses: #[initial({})]",
                    quote::ToTokens::to_token_stream(&nv.value)
                ),
            );
            return None;
        }
        _ => {
            errors.at(
                attr,
                format!("#[initial] needs the field's starting value, {example}"),
            );
            return None;
        }
    };
    Some(Initial {
        field: field_ident,
        expr,
        attr: attr.clone(),
        on_id,
    })
}

fn parse_snapshot(attr: &StateAttr, errors: &mut Errors) -> Option<SnapshotModel> {
    let every = match &attr.snapshot_every {
        Some(lit) => match lit.base10_parse::<u64>() {
            Ok(n) if n >= 1 => Some((n, lit.span())),
            _ => {
                errors.at(
                    lit,
                    "`snapshot_every` takes how many events a load folds before it saves a snapshot, a whole number from 1 up, like `snapshot_every = 500`",
                );
                return None;
            }
        },
        None => None,
    };
    let version = match &attr.snapshot_version {
        Some(lit) => match lit.base10_parse::<u32>() {
            Ok(v) => Some(v),
            Err(_) => {
                errors.at(
                    lit,
                    "`snapshot_version` takes a whole number, like `snapshot_version = 2`",
                );
                return None;
            }
        },
        None => None,
    };
    match (every, version, &attr.snapshot_version) {
        (Some((every, span)), version, _) => Some(SnapshotModel {
            every,
            version: version.unwrap_or(0),
            span,
        }),
        (None, Some(_), Some(lit)) => {
            errors.at(
                lit,
                "`snapshot_version` only matters for a state that keeps snapshots: add `snapshot_every = N`, or drop it",
            );
            None
        }
        _ => None,
    }
}
