//! Step 1 of `#[derive(Decision)]`: parse the command struct and its `#[decision(..)]`.

use darling::{FromMeta, util::SpannedValue};
use syn::{DeriveInput, Ident};

use crate::errors::Errors;
use crate::type_list::{FieldName, TypeList};

/// The keys of `#[decision(..)]` and what each takes, for errors.
const KEYS: &[crate::attr::Key] = &[
    ("partition", "a field name, like `partition = coupon`"),
    (
        "partition_tag",
        "the tag key the partition field holds a value of, as a string, like `partition_tag = \"account\"`",
    ),
    ("idempotency", "a field name, like `idempotency = request`"),
    (
        "exclude",
        "a list of event types in brackets, like `exclude = [shop::CouponApplied]`",
    ),
    (
        "exclude_from",
        "a list of the decision's state types whose queries lose the excluded types, like `exclude_from = [Coupon]`",
    ),
    (
        "emits",
        "a list of event types in brackets, like `emits = [shop::CouponApplied]`",
    ),
    (
        "retries",
        "a whole number of retries after the first attempt, like `retries = 5`",
    ),
    (
        "min_delay_ms",
        "a whole number of milliseconds, like `min_delay_ms = 1`",
    ),
    (
        "max_delay_ms",
        "a whole number of milliseconds, like `max_delay_ms = 100`",
    ),
    (
        "name",
        "the decision's name as a string, like `name = \"ApplyCoupon\"`",
    ),
];

/// The `#[decision(..)]` attribute, read key by key (see `crate::attr`).
#[derive(Default, FromMeta)]
#[darling(default)]
pub struct DecisionAttr {
    /// The decision's name in the catalog (the struct name unless set).
    pub name: Option<syn::LitStr>,
    /// The field whose value is the partition key.
    pub partition: Option<FieldName>,
    /// The tag key the partition field holds a value of, when named otherwise.
    pub partition_tag: Option<syn::LitStr>,
    /// The field whose value is the idempotency key.
    pub idempotency: Option<FieldName>,
    /// Event types removed from the validation query.
    pub exclude: TypeList,
    /// The states whose queries lose the excluded types (all of them when absent).
    pub exclude_from: TypeList,
    /// Event types it may emit.
    pub emits: TypeList,
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
    /// The named fields, or `None` when the input is not a struct with named fields (an
    /// error already says so, and keys are not checked against fields).
    pub fields: Option<Vec<(Ident, syn::Type)>>,
    pub attr: DecisionAttr,
    pub generics: syn::Generics,
}

pub fn parse(input: &DeriveInput, errors: &mut Errors) -> DecisionModel {
    let attr: DecisionAttr = crate::attr::parse(&input.attrs, "decision", KEYS, errors);
    let fields = match &input.data {
        syn::Data::Struct(s) => match &s.fields {
            syn::Fields::Named(named) => Some(
                named
                    .named
                    .iter()
                    .filter_map(|f| Some((f.ident.clone()?, f.ty.clone())))
                    .collect(),
            ),
            syn::Fields::Unit => Some(Vec::new()),
            syn::Fields::Unnamed(u) => {
                errors.at(
                    u,
                    "a decision cannot be a tuple struct: use named fields, so `partition` and `idempotency` can name them",
                );
                None
            }
        },
        syn::Data::Enum(e) => {
            errors.at(
                e.enum_token,
                "a decision must be a struct, not an enum: make one decision struct per command, with the command's data as named fields",
            );
            None
        }
        syn::Data::Union(u) => {
            errors.at(
                u.union_token,
                "a decision must be a struct with named fields, not a union",
            );
            None
        }
    };
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
