//! Step 3 of `#[factum::fold]`: generate `State` and the compile-time checks.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::FoldModel;

pub fn expand(model: &FoldModel) -> TokenStream {
    let item = &model.item;
    let state = &item.self_ty;
    let state_text = state.to_token_stream().to_string();
    // `<T as Event>` spanned on the handler's parameter type, so "not an event" errors
    // point at the parameter.
    let as_event: Vec<TokenStream> = model
        .handlers
        .iter()
        .map(|h| {
            let ty = &h.event;
            quote_spanned!(ty.span()=> <#ty as ::factum::Event>)
        })
        .collect();
    let calls = model.handlers.iter().zip(&as_event).map(|(h, as_event)| {
        let method = &h.method;
        let ty = &h.event;
        let call = if h.takes_stored {
            quote!(self.#method(&decoded, event))
        } else {
            quote!(self.#method(&decoded))
        };
        quote! {
            if event.event_type == #as_event::TYPE {
                let decoded: #ty = event.decode::<#ty>()?;
                #call;
                return ::std::result::Result::Ok(());
            }
        }
    });
    let id_checks = model.handlers.iter().zip(&as_event).map(|(h, as_event)| {
        let ty = &h.event;
        let message = format!(
            "`{}` does not carry every #[id] tag of state `{}`, so the state could never see it: add a #[tag] field for each id key to the event, or remove this handler",
            ty.to_token_stream(),
            state_text
        );
        quote_spanned! {ty.span()=>
            ::std::assert!(
                ::factum::__private::contains_all(
                    #as_event::TAG_KEYS,
                    <#state as ::factum::StateId>::ID_KEYS,
                ),
                #message
            );
        }
    });
    quote! {
        #item

        impl ::factum::State for #state {
            const TYPES: &'static [&'static str] = &[#(#as_event::TYPE),*];

            #[allow(unreachable_code)]
            fn apply(
                &mut self,
                event: &::factum::StoredEvent,
            ) -> ::std::result::Result<(), ::factum::DecodeError> {
                #(#calls)*
                ::std::result::Result::Ok(())
            }
        }

        const _: () = {
            #(#id_checks)*
        };

        ::factum::__private::inventory::submit! {
            ::factum::catalog::StateEntry(<#state as ::factum::State>::info)
        }
    }
}
