//! `#[factum::listener]`: an impl block of handlers, one per event type, becomes a
//! `factum::listen::Listener` whose query is the handlers' types.

mod check;
mod expand;
mod model;

use proc_macro2::TokenStream;
use quote::quote;

use crate::errors::Errors;

pub fn run(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = Errors::new();
    let attr = model::parse_args(args, &mut errors);
    let item: syn::ItemImpl = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            errors.at(
                crate::spans::item_head(&input),
                "#[factum::listener] goes on the listener's impl block: `#[factum::listener] impl Audit { async fn applied(&mut self, e: &shop::CouponApplied) -> Result<(), HandlerError> { .. } }`",
            );
            let errs = errors.to_compile_errors();
            return quote!(#input #errs);
        }
    };
    let Some(mut model) = model::parse(item.clone(), attr, &mut errors) else {
        let errs = errors.to_compile_errors();
        return quote!(#item #errs);
    };
    check::check(&mut model, &mut errors);
    if !errors.is_empty() {
        // Keep the user's impl, so nothing else errors because of it.
        let errs = errors.to_compile_errors();
        let item = &model.item;
        return quote!(#item #errs);
    }
    expand::expand(&model)
}
