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
    /// Whether the input had a shape the macro supports (generation falls back otherwise).
    pub valid_shape: bool,
}

/// `#[state(name = "...", constructor = false)]`.
#[derive(Default, FromMeta)]
struct StateAttr {
    name: Option<syn::LitStr>,
    constructor: Option<bool>,
}

pub fn parse(input: &DeriveInput, errors: &mut Errors) -> StateModel {
    let mut attr = StateAttr::default();
    for a in input.attrs.iter().filter(|a| a.path().is_ident("state")) {
        if let Some(parsed) = errors.ok_darling(StateAttr::from_meta(&a.meta)) {
            attr.name = parsed.name.or(attr.name);
            attr.constructor = parsed.constructor.or(attr.constructor);
        }
    }
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
            "a state cannot be generic: the catalog and the folds need one concrete type",
        );
        valid_shape = false;
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
    }
}
