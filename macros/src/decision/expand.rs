//! Step 3 of `#[derive(Decision)]`: generate `Decision`, the compile-time checks and the
//! catalog registration.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::DecisionModel;

pub fn expand(model: &DecisionModel) -> TokenStream {
    let ident = &model.ident;
    let name = &model.name;
    let attr = &model.attr;
    let key_fn = |key: &Option<crate::type_list::FieldName>, what: &str| {
        let field = key.as_ref().map(|f| &f.0);
        let doc = format!("The {what} key, when declared");
        let _ = doc;
        match field {
            Some(field) => {
                quote!(::std::option::Option::Some(::factum::TagValue::tag_value(&self.#field)))
            }
            None => quote!(::std::option::Option::None),
        }
    };
    let partition_key = key_fn(&attr.partition, "partition");
    let idempotency_key = key_fn(&attr.idempotency, "idempotency");
    let name_of = |key: &Option<crate::type_list::FieldName>| match key {
        Some(f) => {
            let text = f.0.to_string();
            quote!(::std::option::Option::Some(#text))
        }
        None => quote!(::std::option::Option::None),
    };
    let partition = name_of(&attr.partition);
    let idempotency = name_of(&attr.idempotency);
    let as_event = |path: &syn::Path| quote_spanned!(path.span()=> <#path as ::factum::Event>);
    let excluded: Vec<TokenStream> = attr.exclude.0.iter().map(as_event).collect();
    let emits = match &attr.emits {
        Some(list) => {
            let types = list.0.iter().map(as_event);
            quote!(::std::option::Option::Some(&[#(#types::TYPE),*]))
        }
        None => quote!(::std::option::Option::None),
    };
    let retries =
        attr.retries
            .as_ref()
            .map_or(quote!(::factum::RetryPolicy::DEFAULT.max_retries), |v| {
                let v = **v;
                quote!(#v)
            });
    let min_delay =
        attr.min_delay_ms
            .as_ref()
            .map_or(quote!(::factum::RetryPolicy::DEFAULT.min_delay), |v| {
                let v = **v;
                quote!(::std::time::Duration::from_millis(#v))
            });
    let max_delay =
        attr.max_delay_ms
            .as_ref()
            .map_or(quote!(::factum::RetryPolicy::DEFAULT.max_delay), |v| {
                let v = **v;
                quote!(::std::time::Duration::from_millis(#v))
            });
    let exclude_checks = attr.exclude.0.iter().zip(&excluded).map(|(path, as_event)| {
        let message = format!(
            "`{}` is excluded, but no state of `{ident}` reads it: an exclusion removes a type the states fold from the validation query; remove it from `exclude`",
            path.to_token_stream()
        );
        quote_spanned! {path.span()=>
            ::std::assert!(
                ::factum::__private::any_contains(
                    <<#ident as ::factum::Decide>::State as ::factum::StateSet>::TYPES_READ,
                    #as_event::TYPE,
                ),
                #message
            );
        }
    });
    let emit_checks = attr.emits.iter().flat_map(|l| &l.0).map(|path| {
        let message = format!(
            "`{}` is in `emits`, but it is not in the event set `{ident}` returns (`Decide::Event`): add it to that set or remove it from `emits`",
            path.to_token_stream()
        );
        let as_event = as_event(path);
        quote_spanned! {path.span()=>
            ::std::assert!(
                ::factum::__private::contains(
                    <<#ident as ::factum::Decide>::Event as ::factum::EventSet>::TYPES,
                    #as_event::TYPE,
                ),
                #message
            );
        }
    });
    quote! {
        impl ::factum::Decision for #ident {
            const META: ::factum::DecisionMeta = ::factum::DecisionMeta {
                name: #name,
                partition: #partition,
                idempotency: #idempotency,
                exclude: &[#(#excluded::TYPE),*],
                emits: #emits,
                retry: ::factum::RetryPolicy {
                    max_retries: #retries,
                    min_delay: #min_delay,
                    max_delay: #max_delay,
                },
            };

            fn partition_key(&self) -> ::std::option::Option<::std::string::String> {
                #partition_key
            }

            fn idempotency_key(&self) -> ::std::option::Option<::std::string::String> {
                #idempotency_key
            }
        }

        const _: () = {
            #(#exclude_checks)*
            #(#emit_checks)*
        };

        ::factum::__private::inventory::submit! {
            ::factum::catalog::DecisionEntry(<#ident as ::factum::Decide>::info)
        }
    }
}

/// A `Decision` impl with neutral metadata, emitted beside the errors so the user's
/// `impl Decide` does not fail too.
pub fn fallback(model: &DecisionModel) -> TokenStream {
    let ident = &model.ident;
    let name = &model.name;
    quote! {
        impl ::factum::Decision for #ident {
            const META: ::factum::DecisionMeta = ::factum::DecisionMeta {
                name: #name,
                partition: ::std::option::Option::None,
                idempotency: ::std::option::Option::None,
                exclude: &[],
                emits: ::std::option::Option::None,
                retry: ::factum::RetryPolicy::DEFAULT,
            };
            fn partition_key(&self) -> ::std::option::Option<::std::string::String> {
                ::std::option::Option::None
            }
            fn idempotency_key(&self) -> ::std::option::Option<::std::string::String> {
                ::std::option::Option::None
            }
        }
    }
}
