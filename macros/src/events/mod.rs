//! `#[factum::events]`: an inline module of event structs becomes event types, the
//! module's `Event` enum and one enum per `#[group(..)]`.

mod check;
mod expand;
mod model;

use proc_macro2::TokenStream;

use crate::errors::Errors;

pub fn run(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = Errors::new();
    if !args.is_empty() {
        errors.at(&args, "#[factum::events] takes no arguments: put #[event(..)] and #[group(..)] on the structs");
    }
    let item: syn::ItemMod = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            errors.at(
                crate::spans::item_head(&input),
                "#[factum::events] goes on an inline module: `pub mod shop { pub struct CouponIssued { .. } }`",
            );
            // Emit the input as is, so the error does not hide behind follow-on errors.
            let errs = errors.to_compile_errors();
            return quote::quote!(#input #errs);
        }
    };
    let Some(mut module) = model::parse(item.clone(), &mut errors) else {
        let errs = errors.to_compile_errors();
        return quote::quote!(#item #errs);
    };
    check::check(&mut module, &mut errors);
    let mut out = expand::expand(module);
    out.extend(errors.to_compile_errors());
    out
}
