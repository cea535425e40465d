//! `#[derive(Decision)]`: a command struct's concurrency metadata from `#[decision(..)]`.

mod check;
mod expand;
mod model;

use proc_macro2::TokenStream;

use crate::errors::Errors;

pub fn run(input: TokenStream) -> TokenStream {
    let input: syn::DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let mut errors = Errors::new();
    let mut model = model::parse(&input, &mut errors);
    check::check(&mut model, &mut errors);
    if errors.is_empty() {
        expand::expand(&model)
    } else {
        let mut out = expand::fallback(&model);
        out.extend(errors.to_compile_errors());
        out
    }
}
