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
        errors.at(&args, "#[factum::fold] takes no arguments: write `#[factum::fold]` alone on the state's impl block");
    }
    let item: syn::ItemImpl = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            errors.at(
                crate::spans::item_head(&input),
                "#[factum::fold] goes on the state's impl block: `#[factum::fold] impl Coupon { fn issued(&mut self, e: &shop::CouponIssued) { .. } }`",
            );
            let errs = errors.to_compile_errors();
            return quote!(#input #errs);
        }
    };
    let Some(mut model) = model::parse(item.clone(), &mut errors) else {
        let errs = errors.to_compile_errors();
        return quote!(#item #errs);
    };
    check::check(&mut model, &mut errors);
    if !errors.is_empty() {
        // Keep the user's impl and a fallback `State`, so nothing else errors because of it.
        let mut out = expand::fallback(&model);
        out.extend(errors.to_compile_errors());
        return out;
    }
    expand::expand(&model)
}
