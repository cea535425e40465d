//! `#[factum::fold]`: one handler method per event type on a state's impl block becomes
//! the state's fold, and the handlers' types become its query's types.

mod check;
mod expand;
mod model;

use proc_macro2::TokenStream;
use quote::quote;

use crate::errors::Errors;

pub fn run(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = Errors::new();
    if !args.is_empty() {
        errors.at(&args, "#[factum::fold] takes no arguments");
    }
    let item: syn::ItemImpl = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            errors.at(
                &input,
                "#[factum::fold] goes on the state's impl block: `#[factum::fold] impl Coupon { fn issued(&mut self, e: &shop::CouponIssued) { .. } }`",
            );
            let errs = errors.to_compile_errors();
            return quote!(#input #errs);
        }
    };
    let mut model = model::parse(item, &mut errors);
    check::check(&mut model, &mut errors);
    if !errors.is_empty() {
        // Keep the user's impl and a fallback `State`, so nothing else errors because of it.
        let item = &model.item;
        let state = &item.self_ty;
        let errs = errors.to_compile_errors();
        return quote! {
            #item
            impl ::factum::State for #state {
                const TYPES: &'static [&'static str] = &[];
                fn apply(
                    &mut self,
                    _: &::factum::StoredEvent,
                ) -> ::std::result::Result<(), ::factum::DecodeError> {
                    ::std::result::Result::Ok(())
                }
            }
            #errs
        };
    }
    expand::expand(&model)
}
