//! Step 3 of `#[derive(State)]`: generate `StateId` and the constructor.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse_quote;

use super::model::StateModel;

pub fn expand(model: &StateModel) -> TokenStream {
    let ident = &model.ident;
    let name = &model.name;
    let keys: Vec<&str> = model.ids.iter().map(|i| i.key.as_str()).collect();
    // `&self.field`, spanned on the field's type (where a type that is no tag value is
    // reported); both uses need `Type: TagValue`, so such a type is reported once.
    let id_fields: Vec<TokenStream> = model
        .ids
        .iter()
        .map(|i| crate::spans::field_ref(&i.field, &i.ty))
        .collect();
    // A generic state is an error, but the impls keep its generics (bounded so they are
    // well-formed), so the fold and the decisions using it report nothing more.
    let generic = !model.generics.params.is_empty();
    let mut generics = model.generics.clone();
    if generic {
        let predicates = &mut generics.make_where_clause().predicates;
        predicates.push(parse_quote!(Self: ::std::marker::Send + ::std::marker::Sync + 'static));
        for ty in model.ids.iter().map(|i| &i.ty) {
            predicates.push(parse_quote!(#ty: ::factum::TagValue));
        }
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let snapshot = match &model.snapshot {
        Some(snapshot) if !generic => {
            let every = snapshot.every;
            let version = snapshot.version;
            // Spanned at `snapshot_every`, where a state without serde derives is reported.
            let codec = quote::quote_spanned! {snapshot.span=>
                fn to_snapshot(&self) -> ::std::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                    ::factum::__private::SnapshotState::encode(self)
                }

                fn from_snapshot(bytes: &[u8]) -> ::std::result::Result<Self, ::std::string::String> {
                    <Self as ::factum::__private::SnapshotState>::decode(bytes)
                }
            };
            quote! {
                const SNAPSHOT: ::std::option::Option<::factum::SnapshotPolicy> =
                    ::std::option::Option::Some(::factum::SnapshotPolicy { every: #every, version: #version });
                #codec
            }
        }
        _ => quote!(),
    };
    // Every field, ids too: cheap, and no field a command sets can be missed. Spanned on
    // each field's type, where a type without `PartialEq` is reported.
    let same_start = (!generic && model.valid_shape).then(|| {
        let comparisons = model.fields.iter().map(|(field, ty)| {
            let value = crate::spans::as_trait(ty, quote!(::factum::__private::StartValue));
            quote!(#value::same_value(&self.#field, &other.#field))
        });
        quote! {
            fn same_start(&self, other: &Self) -> bool {
                true #(&& #comparisons)*
            }
        }
    });
    let state_id = quote! {
        #[automatically_derived]
        impl #impl_generics ::factum::StateId for #ident #ty_generics #where_clause {
            const NAME: &'static str = #name;
            const ID_KEYS: &'static [&'static str] = &[#(#keys),*];

            fn ids(&self) -> ::std::vec::Vec<::factum::Tag> {
                ::std::vec![#(::factum::Tag::new(#keys, ::factum::TagValue::tag_value(#id_fields))),*]
            }

            fn has_ids(&self, tags: &[::factum::Tag]) -> bool {
                true #(&& tags.iter().any(|t| {
                    t.key == #keys && ::factum::TagValue::tag_value_is(#id_fields, &t.value)
                }))*
            }

            #same_start

            #snapshot
        }
    };
    if !model.constructor || !model.valid_shape {
        return state_id;
    }
    let vis = &model.vis;
    let params = model.ids.iter().map(|id| {
        let field = &id.field;
        let ty = &id.ty;
        quote!(#field: impl ::std::convert::Into<#ty>)
    });
    let inits = model.fields.iter().map(|(field, ty)| {
        if model.ids.iter().any(|id| id.field == *field) {
            quote!(#field: ::std::convert::Into::into(#field))
        } else if let Some(initial) = model.initials.iter().find(|i| i.field == *field) {
            // Typed as the field, so a value of another type is reported on the value.
            let expr = &initial.expr;
            let value = quote::quote_spanned!(syn::spanned::Spanned::span(expr)=> {
                let value: #ty = #expr;
                value
            });
            quote!(#field: #value)
        } else {
            // Spanned on the field's type, so a type without `Default` is reported there,
            // with the way out (see `FieldDefault`).
            let value = crate::spans::as_trait(ty, quote!(::factum::__private::FieldDefault));
            quote!(#field: #value::field_default())
        }
    });
    let (impl_generics, ty_generics, where_clause) = model.generics.split_for_impl();
    let new_where = generic.then(|| {
        let defaults = model
            .fields
            .iter()
            .filter(|(field, _)| {
                !model.ids.iter().any(|id| id.field == *field)
                    && !model.initials.iter().any(|i| i.field == *field)
            })
            .map(|(_, ty)| ty);
        quote!(where #(#defaults: ::std::default::Default),*)
    });
    let doc = format!(
        "A `{ident}` with its ids set and every other field at its `#[initial(..)]` value or its default: the state before any event is folded."
    );
    quote! {
        #state_id

        impl #impl_generics #ident #ty_generics #where_clause {
            #[doc = #doc]
            #vis fn new(#(#params),*) -> Self #new_where {
                Self { #(#inits),* }
            }
        }
    }
}
