//! Step 3 of `#[factum::listener]`: generate `factum::listen::Listener`.

use proc_macro2::TokenStream;
use quote::quote;

use super::model::ListenerModel;
use crate::spans;

pub fn expand(model: &ListenerModel) -> TokenStream {
    let item = &model.item;
    let ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let name = match &model.attr.name {
        Some(name) => quote!(#name),
        None => {
            let text = spans::text(ty);
            quote!(#text)
        }
    };
    let as_event: Vec<TokenStream> = model
        .handlers
        .iter()
        .map(|h| spans::as_event(&h.event))
        .collect();
    let with_tags = match &model.attr.tags {
        Some(method) => quote!(.with_tags(self.#method())),
        None => quote!(),
    };
    let arms = model.handlers.iter().zip(&as_event).map(|(h, as_event)| {
        let method = &h.method;
        let event_ty = &h.event;
        let call = if h.stored {
            quote!(self.#method(&decoded, event))
        } else {
            quote!(self.#method(&decoded))
        };
        let call = if h.is_async {
            quote!(#call.await)
        } else {
            call
        };
        quote! {
            if event.event_type == #as_event::TYPE {
                let decoded: #event_ty = event.decode::<#event_ty>()?;
                return ::factum::listen::IntoHandled::into_handled(#call);
            }
        }
    });
    quote! {
        #item

        #[automatically_derived]
        impl #impl_generics ::factum::listen::Listener for #ty #where_clause {
            fn name(&self) -> &str {
                #name
            }

            fn query(&self) -> ::factum::Query {
                ::factum::Query::item(
                    ::factum::QueryItem::types([#(#as_event::TYPE),*]) #with_tags
                )
            }

            async fn handle(
                &mut self,
                event: &::factum::StoredEvent,
            ) -> ::std::result::Result<(), ::factum::listen::HandlerError> {
                #(#arms)*
                ::std::result::Result::Ok(())
            }
        }
    }
}
