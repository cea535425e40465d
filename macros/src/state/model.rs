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
    /// Every named field, with its type, for the constructor.
    pub fields: Vec<(Ident, Type)>,
    pub constructor: bool,
    /// Whether the input is a struct with named (or no) fields; generation falls back to
    /// a neutral `StateId` otherwise.
    pub valid_shape: bool,
    /// The input's generics: a state cannot be generic (an error says so), but the
    /// fallback impls keep them, so the user's other code still compiles.
    pub generics: syn::Generics,
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
];

/// `#[state(name = "...", constructor = false)]`.
#[derive(Default, FromMeta)]
#[darling(default)]
struct StateAttr {
    name: Option<syn::LitStr>,
    constructor: Option<bool>,
}

pub fn parse(input: &DeriveInput, errors: &mut Errors) -> StateModel {
    let attr: StateAttr = crate::attr::parse(&input.attrs, "state", KEYS, errors);
    let mut valid_shape = true;
    let mut ids = Vec::new();
    let mut fields = Vec::new();
    match &input.data {
        syn::Data::Struct(data) => match &data.fields {
            syn::Fields::Named(named) => {
                for f in &named.named {
                    if let Some(id) = tag_key::parse("id", f, errors) {
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
    StateModel {
        ident: input.ident.clone(),
        vis: input.vis.clone(),
        name: attr
            .name
            .map_or_else(|| input.ident.to_string(), |l| l.value()),
        ids,
        fields,
        constructor: attr.constructor.unwrap_or(true),
        valid_shape,
        generics: input.generics.clone(),
    }
}
