//! `#[name(key = value, ..)]` attributes, read with darling one key at a time, so that one
//! wrong key neither hides the other mistakes nor drops the keys written right.

use darling::FromMeta;
use darling::ast::{MetaNameValueInvalidExpr, NestedMeta};
use proc_macro2::{Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::{Attribute, Meta};

use crate::errors::{Errors, did_you_mean};

/// One key of an attribute, and what its value is, for errors: `("retries", "a whole
/// number, like `retries = 5`")`.
pub type Key = (&'static str, &'static str);

/// Reads every `#[name(..)]` of `attrs` into `T`, whose keys are `keys`.
///
/// Unknown keys (with "did you mean"), keys set twice and bad values are recorded in
/// `errors`, each at its own span; `T` gets every key that was written right.
pub fn parse<T: FromMeta + Default>(
    attrs: &[Attribute],
    name: &str,
    keys: &[Key],
    errors: &mut Errors,
) -> T {
    let names: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
    let mut good: Vec<NestedMeta> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident(name)) {
        let list = match &attr.meta {
            Meta::List(list) => list,
            Meta::Path(_) => continue,
            Meta::NameValue(nv) => {
                errors.at(
                    nv,
                    format!(
                        "write the keys in parentheses, like #[{name}({} = ..)]",
                        names[0]
                    ),
                );
                continue;
            }
        };
        for chunk in split_at_commas(list.tokens.clone()) {
            let Some(item) = errors.ok(nested_meta(chunk)) else {
                continue;
            };
            let Some(key) = key_of(&item) else {
                errors.at(
                    &item,
                    format!(
                        "expected `key = value` in #[{name}(..)], like #[{name}({} = ..)]",
                        names[0]
                    ),
                );
                continue;
            };
            let text = key.to_string();
            let Some((_, takes)) = keys.iter().find(|(k, _)| *k == text) else {
                errors.at(&key, unknown_key(&text, name, &names));
                continue;
            };
            if seen.contains(&text) {
                errors.at(
                    &key,
                    format!("`{text}` is set twice in #[{name}(..)]: keep one"),
                );
                continue;
            }
            seen.push(text.clone());
            match T::from_list(std::slice::from_ref(&item)) {
                Ok(_) => good.push(item),
                // darling's own messages ("Unknown value: `five`") do not say what the
                // key takes: say it, on the whole value.
                Err(_) => errors.at(value_of(&item), format!("`{text}` takes {takes}")),
            }
        }
    }
    errors.ok_darling(T::from_list(&good)).unwrap_or_default()
}

/// The value of `key = value`, or the whole item when it has none.
fn value_of(item: &NestedMeta) -> TokenStream {
    match item {
        NestedMeta::Meta(Meta::NameValue(nv)) => nv.value.to_token_stream(),
        NestedMeta::NameValueInvalidExpr(invalid) => invalid.value.clone(),
        other => other.to_token_stream(),
    }
}

fn key_of(item: &NestedMeta) -> Option<syn::Ident> {
    let path = match item {
        NestedMeta::Meta(meta) => meta.path(),
        NestedMeta::NameValueInvalidExpr(invalid) => &invalid.path,
        NestedMeta::Lit(_) => return None,
    };
    path.get_ident().cloned()
}

fn unknown_key(key: &str, name: &str, keys: &[&str]) -> String {
    match did_you_mean(key, keys.iter().copied()) {
        Some(close) => format!("unknown key `{key}` in #[{name}(..)]: did you mean `{close}`?"),
        None => {
            let list: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
            format!(
                "unknown key `{key}` in #[{name}(..)]: the keys are {}",
                list.join(", ")
            )
        }
    }
}

/// The items of an attribute list, split at its top-level commas.
fn split_at_commas(tokens: TokenStream) -> Vec<TokenStream> {
    let mut items = Vec::new();
    let mut current = TokenStream::new();
    for tree in tokens {
        match &tree {
            TokenTree::Punct(p) if p.as_char() == ',' => items.push(std::mem::take(&mut current)),
            _ => current.extend([tree]),
        }
    }
    items.push(current);
    items.retain(|item| !item.is_empty());
    items
}

/// One item as darling's `NestedMeta`. A `key = value` whose value is not an expression
/// (`emits = [Vec<u8>]`) is kept as raw tokens for the key's own parser, as darling does;
/// parsing each item apart keeps syn from failing the whole list on such a value.
fn nested_meta(item: TokenStream) -> syn::Result<NestedMeta> {
    let trees: Vec<TokenTree> = item.clone().into_iter().collect();
    if let [TokenTree::Ident(key), TokenTree::Punct(eq), value @ ..] = trees.as_slice()
        && eq.as_char() == '='
        && eq.spacing() == Spacing::Alone
    {
        let path = syn::Path::from(key.clone());
        let eq_token = syn::Token![=](eq.span());
        let value: TokenStream = value.iter().cloned().collect();
        if value.is_empty() {
            return Err(syn::Error::new(
                eq.span(),
                format!("expected a value after `{key} =`"),
            ));
        }
        return Ok(match syn::parse2::<syn::Expr>(value.clone()) {
            Ok(expr) => NestedMeta::Meta(Meta::NameValue(syn::MetaNameValue {
                path,
                eq_token,
                value: expr,
            })),
            Err(error) => NestedMeta::NameValueInvalidExpr(MetaNameValueInvalidExpr {
                path,
                eq_token,
                value,
                error: error.into(),
            }),
        });
    }
    syn::parse2(item)
}
