//! Step 3 of `#[derive(Decision)]`: generate `Decision`, the compile-time checks and the
//! catalog registration.

use proc_macro2::TokenStream;
use quote::quote;

use super::model::DecisionModel;
use crate::spans;

pub fn expand(model: &DecisionModel) -> TokenStream {
    let ident = &model.ident;
    let name = &model.name;
    let attr = &model.attr;
    let key_fn = |key: &Option<crate::type_list::FieldName>| {
        let field = key.as_ref().map(|f| &f.0);
        let ty = field.and_then(|field| {
            model
                .fields
                .iter()
                .flatten()
                .find(|(f, _)| f == field)
                .map(|(_, ty)| ty)
        });
        match (field, ty) {
            (Some(field), Some(ty)) => {
                let field = spans::field_ref(field, ty);
                quote!(::std::option::Option::Some(::factum::TagValue::tag_value(#field)))
            }
            _ => quote!(::std::option::Option::None),
        }
    };
    let partition_key = key_fn(&attr.partition);
    let idempotency_key = key_fn(&attr.idempotency);
    let name_of = |key: &Option<crate::type_list::FieldName>| match key {
        Some(f) => {
            let text = f.0.to_string();
            quote!(::std::option::Option::Some(#text))
        }
        None => quote!(::std::option::Option::None),
    };
    let partition = name_of(&attr.partition);
    let partition_tag = match &attr.partition_tag {
        Some(tag) => quote!(::std::option::Option::Some(#tag)),
        None => quote!(::std::option::Option::None),
    };
    let idempotency = name_of(&attr.idempotency);
    // Spanned at the `idempotency = ..` field, where a decision that is not `Serialize`
    // is reported. Without a key the trait's default (no fingerprint) stands.
    let fingerprint = attr.idempotency.as_ref().map(|field| {
        let call = quote::quote_spanned! {field.0.span()=>
            ::factum::__private::Fingerprinted::fingerprint(self, #name)
        };
        quote! {
            fn fingerprint(&self) -> ::std::option::Option<::factum::model::idempotency::Fingerprint> {
                #call
            }
        }
    });
    let excluded: Vec<TokenStream> = attr.exclude.types.iter().map(spans::as_event).collect();
    let emits = match attr.emits.span {
        Some(_) => {
            let types = attr.emits.types.iter().map(spans::as_event);
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
    // `MACRO_REPORTED_ERROR`: an event struct with an error, already reported. A state that
    // reads every type (`#[any]`) has an empty list in `TYPES_READ`: its query names no
    // type, so no exclusion removes anything from it.
    let types_read =
        quote!(<<#ident as ::factum::Decide>::State as ::factum::StateSet>::TYPES_READ);
    let exclude_checks = attr.exclude.types.iter().zip(&excluded).flat_map(|(ty, as_event)| {
        let text = spans::text(ty);
        let none = format!(
            "`{text}` is excluded, but no state of `{ident}` reads it: an exclusion removes a type the states fold from the validation query; remove it from `exclude`",
        );
        let only_any = format!(
            "`{text}` is excluded, but no state of `{ident}` folds it by name, and the query of a state with an #[any] handler covers every type and cannot leave one out, so the exclusion would remove nothing: remove it from `exclude`",
        );
        let kept = quote! {
            #as_event::MACRO_REPORTED_ERROR || ::factum::__private::any_contains(#types_read, #as_event::TYPE)
        };
        let any = quote!(::factum::__private::reads_every_type(#types_read));
        [
            spans::assert_at(ty, quote!(#any || #kept), &none),
            spans::assert_at(ty, quote!(!#any || #kept), &only_any),
        ]
    });
    let as_state = |ty: &syn::Type| spans::as_trait(ty, quote!(::factum::StateId));
    let only_in = match attr.exclude_from.span {
        Some(_) => {
            let states = attr.exclude_from.types.iter().map(as_state);
            quote!(::std::option::Option::Some(&[#(#states::NAME),*]))
        }
        None => quote!(::std::option::Option::None),
    };
    let exclude_from_checks = attr.exclude_from.types.iter().map(|ty| {
        let message = format!(
            "`{}` is in `exclude_from`, but `{ident}` does not read it (`Decide::State`): name only states the decision reads",
            spans::text(ty)
        );
        let as_state = as_state(ty);
        spans::assert_at(
            ty,
            quote! {
                ::factum::__private::contains(
                    <<#ident as ::factum::Decide>::State as ::factum::StateSet>::STATES_READ,
                    #as_state::NAME,
                )
            },
            &message,
        )
    });
    // With `exclude_from`, each excluded type must be folded by one of those states, or
    // the exclusion would quietly remove nothing.
    let state_types: Vec<TokenStream> = attr
        .exclude_from
        .types
        .iter()
        .map(|ty| {
            let as_state = spans::as_trait(ty, quote!(::factum::State));
            quote!(::factum::__private::query_types(#as_state::TYPES, #as_state::ANY_TYPE))
        })
        .collect();
    let scoped_exclude_checks = attr
        .exclude
        .types
        .iter()
        .zip(&excluded)
        .filter(|_| !state_types.is_empty())
        .flat_map(|(ty, as_event)| {
            let states = attr
                .exclude_from
                .types
                .iter()
                .map(|t| format!("`{}`", spans::text(t)))
                .collect::<Vec<_>>()
                .join(", ");
            let none = format!(
                "`{}` is excluded only from {states} (`exclude_from`), and no state there folds it, so the exclusion would remove nothing: list a state that folds it",
                spans::text(ty),
            );
            let only_any = format!(
                "`{}` is excluded only from {states} (`exclude_from`), where no state folds it by name, and the query of a state with an #[any] handler covers every type and cannot leave one out, so the exclusion would remove nothing: list a state that folds it by name",
                spans::text(ty),
            );
            let kept = quote! {
                #as_event::MACRO_REPORTED_ERROR
                    || ::factum::__private::any_contains(&[#(#state_types),*], #as_event::TYPE)
            };
            let any = quote!(::factum::__private::reads_every_type(&[#(#state_types),*]));
            [
                spans::assert_at(ty, quote!(#any || #kept), &none),
                spans::assert_at(ty, quote!(!#any || #kept), &only_any),
            ]
        });
    let emit_checks = attr.emits.types.iter().map(|ty| {
        let message = format!(
            "`{}` is in `emits`, but it is not in the event set `{ident}` returns (`Decide::Event`): add it to that set or remove it from `emits`",
            spans::text(ty)
        );
        let as_event = spans::as_event(ty);
        spans::assert_at(
            ty,
            quote! {
                #as_event::MACRO_REPORTED_ERROR || ::factum::__private::contains(
                    <<#ident as ::factum::Decide>::Event as ::factum::EventSet>::TYPES,
                    #as_event::TYPE,
                )
            },
            &message,
        )
    });
    // An exclusion that leaves no type to guard would make every append unconditional.
    let guard_check = attr.exclude.types.first().map(|first| {
        let message = format!(
            "`exclude` removes every event type `{ident}` reads, so its append would be guarded by nothing and always commit: keep a type the decision relies on (drop it from `exclude`, or narrow the exclusion with `exclude_from = [..]`)"
        );
        spans::assert_at(
            first,
            quote! {
                ::factum::__private::guards_something(
                    <<#ident as ::factum::Decide>::State as ::factum::StateSet>::TYPES_READ,
                    <<#ident as ::factum::Decide>::State as ::factum::StateSet>::STATES_READ,
                    &[#(#excluded::TYPE),*],
                    #only_in,
                )
            },
            &message,
        )
    });
    quote! {
        #[automatically_derived]
        impl ::factum::Decision for #ident {
            const META: ::factum::DecisionMeta = ::factum::DecisionMeta {
                name: #name,
                partition: #partition,
                partition_tag: #partition_tag,
                idempotency: #idempotency,
                exclude: ::factum::Exclusions {
                    types: &[#(#excluded::TYPE),*],
                    only_in: #only_in,
                },
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

            #fingerprint
        }

        const _: () = {
            #(#exclude_checks)*
            #guard_check
            #(#exclude_from_checks)*
            #(#scoped_exclude_checks)*
            #(#emit_checks)*
        };

        ::factum::__submit! {
            ::factum::catalog::DecisionEntry(<#ident as ::factum::Decide>::info)
        }
    }
}

/// A `Decision` impl with neutral metadata, emitted beside the errors so the user's
/// `impl Decide` does not fail too. It keeps the input's generics (an error already says
/// a decision cannot be generic), so the impl itself is well-formed.
pub fn fallback(model: &DecisionModel) -> TokenStream {
    let ident = &model.ident;
    let name = &model.name;
    let mut generics = model.generics.clone();
    if !generics.params.is_empty() {
        generics
            .make_where_clause()
            .predicates
            .push(syn::parse_quote!(
                Self: ::std::marker::Send + ::std::marker::Sync + 'static
            ));
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics ::factum::Decision for #ident #ty_generics #where_clause {
            const META: ::factum::DecisionMeta = ::factum::DecisionMeta {
                name: #name,
                partition: ::std::option::Option::None,
                partition_tag: ::std::option::Option::None,
                idempotency: ::std::option::Option::None,
                exclude: ::factum::Exclusions::NONE,
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
