//! Spans for generated checks, so an error in generated code underlines exactly the
//! user's tokens (a whole `shop::CouponApplied`, not just `shop`).

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};

/// The spans of the first and the last token of `at`.
pub fn bounds(at: &impl ToTokens) -> (Span, Span) {
    let mut tokens = at.to_token_stream().into_iter();
    let start = tokens.next().map_or_else(Span::call_site, |t| t.span());
    let end = tokens.last().map_or(start, |t| t.span());
    (start, end)
}

/// `<ty as ::factum::Event>`, spanned from the first to the last token of `ty`, so a type
/// that is not an event is reported on the whole type.
pub fn as_event(ty: &impl ToTokens) -> TokenStream {
    as_trait(ty, quote!(::factum::Event))
}

/// `<ty as trait_>`, spanned like [`as_event`].
pub fn as_trait(ty: &impl ToTokens, trait_: TokenStream) -> TokenStream {
    let (start, end) = bounds(ty);
    let open = quote_spanned!(start=> <);
    let close = quote_spanned!(end=> as #trait_>);
    quote!(#open #ty #close)
}

/// `::std::assert!(cond, message);`, spanned from the first to the last token of `at`, so
/// a failed compile-time assertion underlines all of `at`.
pub fn assert_at(at: &impl ToTokens, cond: TokenStream, message: &str) -> TokenStream {
    let (start, end) = bounds(at);
    let path = quote_spanned!(start=> ::std::assert!);
    let mut args = Group::new(Delimiter::Parenthesis, quote!(#cond, #message));
    args.set_span(end);
    let semi = quote_spanned!(end=> ;);
    quote!(#path #args #semi)
}

/// `&self.field`, spanned on the field's type, so a type that cannot be a tag value is
/// reported on the type.
pub fn field_ref(field: &proc_macro2::Ident, ty: &impl ToTokens) -> TokenStream {
    let (start, end) = bounds(ty);
    let mut field = field.clone();
    field.set_span(end);
    let this = quote_spanned!(start=> &self.);
    quote!(#this #field)
}

/// A type or path as the user writes it: `shop::CouponApplied`, `Vec<u8>`, `&str`.
pub fn text(at: &impl ToTokens) -> String {
    let mut text = at.to_token_stream().to_string();
    for (from, to) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" < ", "<"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        ("& ", "&"),
        (" ,", ","),
    ] {
        text = text.replace(from, to);
    }
    text
}

/// The head of an item, to point an error at: `struct CouponIssued`, `fn main`,
/// `impl Coupon`; the whole input when it is not one of those.
pub fn item_head(input: &TokenStream) -> TokenStream {
    use syn::Item;
    match syn::parse2::<Item>(input.clone()) {
        Ok(Item::Struct(s)) => head(&s.struct_token, &s.ident),
        Ok(Item::Enum(e)) => head(&e.enum_token, &e.ident),
        Ok(Item::Union(u)) => head(&u.union_token, &u.ident),
        Ok(Item::Fn(f)) => head(&f.sig.fn_token, &f.sig.ident),
        Ok(Item::Trait(t)) => head(&t.trait_token, &t.ident),
        Ok(Item::Type(t)) => head(&t.type_token, &t.ident),
        Ok(Item::Mod(m)) => head(&m.mod_token, &m.ident),
        Ok(Item::Impl(i)) => head(&i.impl_token, &i.self_ty),
        _ => input.clone(),
    }
}

fn head(keyword: &impl ToTokens, name: &impl ToTokens) -> TokenStream {
    quote!(#keyword #name)
}
