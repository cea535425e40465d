//! Step 3 of `#[factum::fold]`: generate `State` and the compile-time checks.

use proc_macro2::TokenStream;
use quote::quote;

use super::model::FoldModel;
use crate::spans;

pub fn expand(model: &FoldModel) -> TokenStream {
    let item = &model.item;
    let state = &item.self_ty;
    let state_text = spans::text(state);
    // `<T as Foldable>` spanned on the handler's parameter type, so "not an event" errors
    // point at the parameter. A handler takes one event struct or a whole set (an enum).
    let as_fold: Vec<TokenStream> = model
        .handlers
        .iter()
        .map(|h| spans::as_trait(&h.event, quote!(::factum::decide::Foldable)))
        .collect();
    let calls = model.handlers.iter().zip(&as_fold).map(|(h, as_fold)| {
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
        let (start, _) = spans::bounds(ty);
        let decode = quote::quote_spanned!(start=> ::factum::__private::decode_folded::<#ty>);
        quote! {
            if #as_fold::FOLDED_TYPES.contains(&event.event_type.as_str()) {
                let decoded: #ty = #decode(event)?;
                #call;
                return ::std::result::Result::Ok(());
            }
        }
    });
    let id_checks: Vec<TokenStream> = model
        .handlers
        .iter()
        .zip(&as_fold)
        .flat_map(|(h, as_fold)| {
            let ty = &h.event;
            let one = format!(
                "`{}` does not carry every #[id] tag of state `{state_text}`, so the state could never see it: add a #[tag] field for each #[id] key of `{state_text}` to the event, or remove this handler",
                spans::text(ty),
            );
            let set = format!(
                "not every event type of `{}` carries every #[id] tag of state `{state_text}`, so the state could never see those: add a #[tag] field for each #[id] key of `{state_text}` to each of them, or fold a group whose events all carry them (#[group(..)])",
                spans::text(ty),
            );
            // `CHECKED` is false for an event struct with an error, already reported.
            let carries = quote! {
                !#as_fold::CHECKED
                    || ::factum::__private::contains_all(#as_fold::COMMON_TAG_KEYS, id_keys::<#state>())
            };
            [
                spans::assert_at(ty, quote!(#as_fold::IS_SET || #carries), &one),
                spans::assert_at(ty, quote!(!#as_fold::IS_SET || #carries), &set),
            ]
        })
        .collect();
    // Two handlers that take one stored type name (the same type through two paths,
    // same-named types of two modules, or a set and one of its types): only the first
    // would ever run.
    let distinct_checks: Vec<TokenStream> = model
        .handlers
        .iter()
        .zip(&as_fold)
        .enumerate()
        .skip(1)
        .flat_map(|(i, (h, this))| {
            let earlier = &as_fold[..i];
            let one = format!(
                "`{}` has the stored type name of an earlier handler's event in this fold, so this handler would never run: merge the handlers, or rename one event type with #[event(name = \"...\")]",
                spans::text(&h.event),
            );
            let set = format!(
                "`{}` shares an event type with an earlier handler of this fold, so that type's events would reach only the earlier one: fold each event type in one handler (a set's handler takes all its types), or fold the set's other types one handler each",
                spans::text(&h.event),
            );
            let distinct = quote! {
                !#this::CHECKED
                    || !::factum::__private::shares_any(&[#(#earlier::FOLDED_TYPES),*], #this::FOLDED_TYPES)
            };
            let any_set = quote!((#this::IS_SET #(|| #earlier::IS_SET)*));
            [
                spans::assert_at(&h.event, quote!(#any_set || #distinct), &one),
                spans::assert_at(&h.event, quote!(!#any_set || #distinct), &set),
            ]
        })
        .collect();
    // A state without ids reading every type would read the whole log, and its
    // decisions would conflict with every append in the store.
    let any_checks = model.any.iter().map(|any| {
        let message = format!(
            "state `{state_text}` has no #[id], so its #[any] handler would fold every event in the store and its decisions would conflict with every append: give `{state_text}` an #[id] its events carry as a tag, or fold the types it needs with typed handlers (a view of the whole log is a listener's job)"
        );
        spans::assert_at(&any.attr, quote!(!id_keys::<#state>().is_empty()), &message)
    });
    let id_checks: Vec<TokenStream> = id_checks
        .into_iter()
        .chain(distinct_checks)
        .chain(any_checks)
        .collect();
    // Typed handlers take their types first; every other event of the query (any type
    // carrying the ids) reaches the `#[any]` handler as it was stored.
    let any_call = model.any.as_ref().map(|any| {
        let method = &any.method;
        let stored = &any.stored;
        let (start, end) = spans::bounds(stored);
        let binding = quote::quote_spanned!(start=> let stored: #stored);
        let value = quote::quote_spanned!(end=> = event;);
        quote!({ #binding #value self.#method(stored); })
    });
    // Emitted only when set, so a typed fold's expansion stays as it was.
    let any_type = model.any.is_some().then(|| {
        quote!(
            const ANY_TYPE: bool = true;
        )
    });
    // Handlers that read the stored event (position, time, metadata): a serial lane must
    // not keep a state warm that folded such an event before it was committed.
    let reads_stored: Vec<&TokenStream> = model
        .handlers
        .iter()
        .zip(&as_fold)
        .filter(|(h, _)| h.stored.is_some())
        .map(|(_, as_fold)| as_fold)
        .collect();
    let types = concat_types(&as_fold.iter().collect::<Vec<_>>());
    let reads_stored = concat_types(&reads_stored);
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
                #(#id_checks)*
                // Empty without factum's `inventory` feature: the helper goes with it.
                ::factum::__submit! {
                    ::factum::catalog::StateEntry({
                        fn info<S: ::factum::State>() -> ::factum::catalog::StateInfo {
                            <S as ::factum::State>::info()
                        }
                        info::<#state>
                    })
                }
            };
        };
        (checks, quote!())
    };
    quote! {
        #item

        #[automatically_derived]
        impl #impl_generics ::factum::State for #state #where_clause {
            const TYPES: &'static [&'static str] = #types;
            const READS_STORED: &'static [&'static str] = #reads_stored;
            #any_type

            #[allow(unreachable_code)]
            fn apply(
                &mut self,
                event: &::factum::StoredEvent,
            ) -> ::std::result::Result<(), ::factum::DecodeError> {
                #inline_checks
                #(#calls)*
                #any_call
                ::std::result::Result::Ok(())
            }
        }

        #checks
    }
}

/// The handlers' folded types one after another, as a `&'static [&'static str]`
/// computed at compile time (a set's handler contributes all of its types).
fn concat_types(as_fold: &[&TokenStream]) -> TokenStream {
    if as_fold.is_empty() {
        return quote!(&[]);
    }
    quote! {{
        const LISTS: &[&[&str]] = &[#(#as_fold::FOLDED_TYPES),*];
        const TYPES: [&str; ::factum::__private::total_len(LISTS)] =
            ::factum::__private::concat_types(LISTS);
        &TYPES
    }}
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

        #[automatically_derived]
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
