//! Step 3 of `#[factum::fold]`: generate `State` and the compile-time checks.

use proc_macro2::TokenStream;
use quote::quote;

use super::model::FoldModel;
use crate::spans;

pub fn expand(model: &FoldModel) -> TokenStream {
    let item = &model.item;
    let state = &item.self_ty;
    let state_text = spans::text(state);
    // `<T as Event>` spanned on the handler's parameter type, so "not an event" errors
    // point at the parameter.
    let as_event: Vec<TokenStream> = model
        .handlers
        .iter()
        .map(|h| spans::as_event(&h.event))
        .collect();
    let calls = model.handlers.iter().zip(&as_event).map(|(h, as_event)| {
        let method = &h.method;
        let ty = &h.event;
        let call = match &h.stored {
            // A binding typed as the user wrote it, so a wrong type is reported on it.
            Some(stored) => {
                let (start, end) = spans::bounds(stored);
                let binding = quote::quote_spanned!(start=> let stored: #stored);
                let value = quote::quote_spanned!(end=> = event;);
                quote!({ #binding #value self.#method(&decoded, stored) })
            }
            None => quote!(self.#method(&decoded)),
        };
        quote! {
            if event.event_type == #as_event::TYPE {
                let decoded: #ty = event.decode::<#ty>()?;
                #call;
                return ::std::result::Result::Ok(());
            }
        }
    });
    let id_checks: Vec<TokenStream> = model
        .handlers
        .iter()
        .zip(&as_event)
        .map(|(h, as_event)| {
            let ty = &h.event;
            let message = format!(
                "`{}` does not carry every #[id] tag of state `{state_text}`, so the state could never see it: add a #[tag] field for each #[id] key of `{state_text}` to the event, or remove this handler",
                spans::text(ty),
            );
            spans::assert_at(
                ty,
                // `VERSION == 0`: an event struct with an error, already reported.
                quote! {
                    #as_event::VERSION == 0
                        || ::factum::__private::contains_all(#as_event::TAG_KEYS, id_keys::<#state>())
                },
                &message,
            )
        })
        .collect();
    // Two handlers whose types share one stored name (the same type through two paths,
    // or same-named types of two modules): only the first would ever run.
    let distinct_checks: Vec<TokenStream> = model
        .handlers
        .iter()
        .zip(&as_event)
        .enumerate()
        .skip(1)
        .map(|(i, (h, this))| {
            let earlier = &as_event[..i];
            let message = format!(
                "`{}` has the stored type name of an earlier handler's event in this fold, so this handler would never run: merge the handlers, or rename one event type with #[event(name = \"...\")]",
                spans::text(&h.event),
            );
            spans::assert_at(
                &h.event,
                quote! {
                    #this::VERSION == 0
                        || !::factum::__private::contains(&[#(#earlier::TYPE),*], #this::TYPE)
                },
                &message,
            )
        })
        .collect();
    let id_checks: Vec<TokenStream> = id_checks.into_iter().chain(distinct_checks).collect();
    // Handlers that read the stored event (position, time, metadata): a serial lane must
    // not keep a state warm that folded such an event before it was committed.
    let reads_stored: Vec<&TokenStream> = model
        .handlers
        .iter()
        .zip(&as_event)
        .filter(|(h, _)| h.stored.is_some())
        .map(|(_, as_event)| as_event)
        .collect();
    let generics = state_generics(&item.generics);
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    // A generic impl (only possible with a hand-written generic `StateId`: the derive
    // rejects generic states) gets its checks at monomorphization, and no catalog entry.
    let generic = !item.generics.params.is_empty();
    // The checks and the catalog entry reach the state only through `S: State` bounds:
    // when the state lacks `#[derive(State)]`, only the `impl State` reports it, once.
    let helpers = quote! {
        const fn id_keys<S: ::factum::State>() -> &'static [&'static str] {
            <S as ::factum::StateId>::ID_KEYS
        }
    };
    let (checks, inline_checks) = if generic {
        (quote!(), quote!(const { #helpers #(#id_checks)* }))
    } else {
        let checks = quote! {
            const _: () = {
                #helpers
                fn info<S: ::factum::State>() -> ::factum::catalog::StateInfo {
                    <S as ::factum::State>::info()
                }
                #(#id_checks)*
                ::factum::__private::inventory::submit! {
                    ::factum::catalog::StateEntry(info::<#state>)
                }
            };
        };
        (checks, quote!())
    };
    quote! {
        #item

        impl #impl_generics ::factum::State for #state #where_clause {
            const TYPES: &'static [&'static str] = &[#(#as_event::TYPE),*];
            const READS_STORED: &'static [&'static str] = &[#(#reads_stored::TYPE),*];

            #[allow(unreachable_code)]
            fn apply(
                &mut self,
                event: &::factum::StoredEvent,
            ) -> ::std::result::Result<(), ::factum::DecodeError> {
                #inline_checks
                #(#calls)*
                ::std::result::Result::Ok(())
            }
        }

        #checks
    }
}

/// The user's impl and a `State` that folds nothing, emitted beside the errors so the
/// decisions that read the state report nothing more.
pub fn fallback(model: &FoldModel) -> TokenStream {
    let item = &model.item;
    let state = &item.self_ty;
    let generics = state_generics(&item.generics);
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    quote! {
        #item

        impl #impl_generics ::factum::State for #state #where_clause {
            const TYPES: &'static [&'static str] = &[];

            fn apply(
                &mut self,
                _: &::factum::StoredEvent,
            ) -> ::std::result::Result<(), ::factum::DecodeError> {
                ::std::result::Result::Ok(())
            }
        }
    }
}

/// The impl's generics, plus `Self: StateId` when there are any, so the `State` impl is
/// well-formed whatever bounds the `StateId` impl has.
fn state_generics(generics: &syn::Generics) -> syn::Generics {
    let mut generics = generics.clone();
    if !generics.params.is_empty() {
        generics
            .make_where_clause()
            .predicates
            .push(syn::parse_quote!(Self: ::factum::StateId));
    }
    generics
}
