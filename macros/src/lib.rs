//! Stub while the macros are written.
use proc_macro::TokenStream;
/// x
#[proc_macro_attribute]
pub fn events(_a: TokenStream, i: TokenStream) -> TokenStream { i }
/// x
#[proc_macro_attribute]
pub fn fold(_a: TokenStream, i: TokenStream) -> TokenStream { i }
/// x
#[proc_macro_derive(State, attributes(id, state))]
pub fn state(_i: TokenStream) -> TokenStream { TokenStream::new() }
/// x
#[proc_macro_derive(Decision, attributes(decision))]
pub fn decision(_i: TokenStream) -> TokenStream { TokenStream::new() }
