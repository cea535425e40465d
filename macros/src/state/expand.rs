//! Step 3 of `#[derive(State)]`: generate `StateId` and the constructor.

use proc_macro2::TokenStream;
use quote::quote;

use super::model::StateModel;

pub fn expand(model: &StateModel) -> TokenStream {
    let ident = &model.ident;
    let name = &model.name;
    let keys: Vec<&str> = model.ids.iter().map(|i| i.key.as_str()).collect();
    let id_fields: Vec<&syn::Ident> = model.ids.iter().map(|i| &i.field).collect();
    let state_id = quote! {
        impl ::factum::StateId for #ident {
            const NAME: &'static str = #name;
            const ID_KEYS: &'static [&'static str] = &[#(#keys),*];

            fn ids(&self) -> ::std::vec::Vec<::factum::Tag> {
                ::std::vec![#(::factum::Tag::new(#keys, &self.#id_fields)),*]
            }

            fn has_ids(&self, tags: &[::factum::Tag]) -> bool {
                true #(&& tags.iter().any(|t| {
                    t.key == #keys && ::factum::TagValue::tag_value_is(&self.#id_fields, &t.value)
                }))*
            }
        }
    };
    if !model.constructor || !model.valid_shape {
        return state_id;
    }
    let vis = &model.vis;
    let params = model.ids.iter().map(|id| {
        let field = &id.field;
        let ty = &model
            .fields
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, ty)| ty);
        quote!(#field: impl ::std::convert::Into<#ty>)
    });
    let inits = model.fields.iter().map(|(field, _)| {
        if model.ids.iter().any(|id| id.field == *field) {
            quote!(#field: ::std::convert::Into::into(#field))
        } else {
            quote!(#field: ::std::default::Default::default())
        }
    });
    let doc = format!(
        "A `{ident}` with its ids set and every other field at its default: the state before any event is folded."
    );
    quote! {
        #state_id

        impl #ident {
            #[doc = #doc]
            #vis fn new(#(#params),*) -> Self {
                Self { #(#inits),* }
            }
        }
    }
}
