//! `#[derive(State)]`: the `#[id]` fields become the state's query tags, and a `new`
//! constructor takes them.

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
    let model = model::parse(&input, &mut errors);
    check::check(&model, &mut errors);
    // Generate even on error: the `StateId` impl keeps the fold and the decisions from
    // reporting follow-on errors about a missing trait.
    let mut out = expand::expand(&model);
    out.extend(errors.to_compile_errors());
    out
}
