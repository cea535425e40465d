//! Step 1 of `#[derive(Decision)]`: parse the command struct and its `#[decision(..)]`.

use darling::{FromDeriveInput, util::SpannedValue};
use syn::{DeriveInput, Ident};

use crate::errors::Errors;
use crate::type_list::{FieldName, TypeList};

/// The `#[decision(..)]` attribute. darling reports unknown keys with "did you mean".
#[derive(Default, FromDeriveInput)]
#[darling(attributes(decision), default)]
pub struct DecisionAttr {
    /// The decision's name in the catalog (the struct name unless set).
    pub name: Option<syn::LitStr>,
    /// The field whose value is the partition key.
    pub partition: Option<FieldName>,
    /// The field whose value is the idempotency key.
    pub idempotency: Option<FieldName>,
    /// Event types removed from the validation query.
    pub exclude: TypeList,
    /// Event types it may emit.
    pub emits: Option<TypeList>,
    /// Retries after the first attempt.
    pub retries: Option<SpannedValue<u32>>,
    /// First backoff delay in milliseconds.
    pub min_delay_ms: Option<SpannedValue<u64>>,
    /// Longest backoff delay in milliseconds.
    pub max_delay_ms: Option<SpannedValue<u64>>,
}

pub struct DecisionModel {
    pub ident: Ident,
    pub name: String,
    pub fields: Vec<Ident>,
    pub attr: DecisionAttr,
    pub generics: syn::Generics,
}

pub fn parse(input: &DeriveInput, errors: &mut Errors) -> DecisionModel {
    let attr = errors
        .ok_darling(DecisionAttr::from_derive_input(input))
        .unwrap_or_default();
    let mut fields = Vec::new();
    match &input.data {
        syn::Data::Struct(s) => match &s.fields {
            syn::Fields::Named(named) => fields.extend(named.named.iter().filter_map(|f| f.ident.clone())),
            syn::Fields::Unit => {}
            syn::Fields::Unnamed(u) => errors.at(
                u,
                "a decision cannot be a tuple struct: use named fields, so `partition` and `idempotency` can name them",
            ),
        },
        syn::Data::Enum(e) => errors.at(
            e.enum_token,
            "a decision must be a struct, not an enum: make one decision struct per command",
        ),
        syn::Data::Union(u) => errors.at(u.union_token, "a decision must be a struct, not a union"),
    }
    DecisionModel {
        ident: input.ident.clone(),
        name: attr
            .name
            .as_ref()
            .map_or_else(|| input.ident.to_string(), syn::LitStr::value),
        fields,
        attr,
        generics: input.generics.clone(),
    }
}
