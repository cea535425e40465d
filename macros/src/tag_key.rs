//! `#[tag]` / `#[tag("key")]` and `#[id]` / `#[id("key")]`: which tag key a field gives.

use syn::{Attribute, Field, Ident, LitStr};

use crate::errors::Errors;

/// A field that gives (or matches) a tag.
pub struct TagField {
    pub field: Ident,
    /// The field's type, where errors about its value point.
    pub ty: syn::Type,
    pub key: String,
    /// Where to point errors about the key.
    pub key_span: proc_macro2::Span,
    /// `#[tag(each)]`: the field is a collection, and gives one tag per element.
    pub each: bool,
}

/// How `#[tag(each)]` is written, for errors.
const EACH_USAGE: &str = "#[tag(each)] (key = field name) or #[tag(\"product\", each)] gives one tag per element of a collection field";

/// Reads the `#[<name>]` attribute of `field`, if any. Errors go to `errors`.
pub fn parse(name: &str, field: &Field, errors: &mut Errors) -> Option<TagField> {
    parse_with(name, field, false, errors)
}

/// Like [`parse`], also taking `each` when `each_allowed` (an event's `#[tag]`).
pub fn parse_with(
    name: &str,
    field: &Field,
    each_allowed: bool,
    errors: &mut Errors,
) -> Option<TagField> {
    let attrs: Vec<&Attribute> = field
        .attrs
        .iter()
        .filter(|a| a.path().is_ident(name))
        .collect();
    let attr = *attrs.first()?;
    for dup in &attrs[1..] {
        errors.at(
            dup,
            format!("duplicate #[{name}] on one field: a field gives one tag; remove this one"),
        );
    }
    let Some(ident) = field.ident.clone() else {
        errors.at(
            attr,
            format!(
                "#[{name}] needs a named field: tuple fields have no name to use as the tag key"
            ),
        );
        return None;
    };
    let mut each = false;
    let (key, key_span) = match &attr.meta {
        syn::Meta::Path(_) => (ident.to_string(), ident.span()),
        syn::Meta::List(list) if list.tokens.is_empty() => {
            errors.at(
                attr,
                format!(
                    "empty parentheses: write #[{name}] for the key `{0}`, or the key in them, like #[{name}(\"{0}\")]",
                    ident.to_string().trim_start_matches("r#")
                ),
            );
            return None;
        }
        syn::Meta::List(_) => {
            let args = errors
                .ok(attr.parse_args_with(|input: syn::parse::ParseStream| list_args(input, name)))?;
            let before = errors.len();
            let lit = check_args(args, name, each_allowed, &mut each, errors);
            if errors.len() > before {
                return None;
            }
            match lit {
                Some(lit) => (lit.value(), lit.span()),
                None => (ident.to_string(), ident.span()),
            }
        }
        syn::Meta::NameValue(nv) => {
            let example = match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => s.value(),
                _ => ident.to_string(),
            };
            errors.at(
                nv,
                format!("write the tag key in parentheses: #[{name}({example:?})]"),
            );
            return None;
        }
    };
    if key.is_empty() || key.contains(':') || key.chars().any(char::is_whitespace) {
        errors.push(syn::Error::new(
            key_span,
            format!(
                "invalid tag key {key:?}: a tag reads `key:value`, so a key is not empty and has no `:` or spaces; write the key alone, like #[{name}({:?})] (the value is the field's)",
                ident.to_string().trim_start_matches("r#")
            ),
        ));
        return None;
    }
    Some(TagField {
        field: ident,
        ty: field.ty.clone(),
        key: key.trim_start_matches("r#").to_owned(),
        key_span,
        each,
    })
}

/// One argument of `#[tag(..)]`: the key, or a word such as `each`.
enum Arg {
    Key(LitStr),
    Word(Box<syn::Meta>),
}

/// `"key"`, `each` and such, comma-separated, in any order.
fn list_args(input: syn::parse::ParseStream, name: &str) -> syn::Result<Vec<Arg>> {
    let mut args = Vec::new();
    while !input.is_empty() {
        if input.peek(LitStr) {
            args.push(Arg::Key(input.parse()?));
        } else if input.peek(Ident) {
            args.push(Arg::Word(Box::new(input.parse()?)));
        } else {
            return Err(input.error(format!(
                "expected a tag key as a string, like #[{name}(\"username\")]"
            )));
        }
        if !input.is_empty() {
            input.parse::<syn::Token![,]>()?;
        }
    }
    Ok(args)
}

/// The key among `args`, if any; sets `each`; every misuse goes to `errors`.
fn check_args(
    args: Vec<Arg>,
    name: &str,
    each_allowed: bool,
    each: &mut bool,
    errors: &mut Errors,
) -> Option<LitStr> {
    let mut key: Option<LitStr> = None;
    for arg in args {
        let meta = match arg {
            Arg::Key(lit) if key.is_some() => {
                errors.at(
                    &lit,
                    format!(
                        "a second tag key in one #[{name}(..)]: a field gives one key; keep one"
                    ),
                );
                continue;
            }
            Arg::Key(lit) => {
                key = Some(lit);
                continue;
            }
            Arg::Word(meta) => *meta,
        };
        match meta {
            syn::Meta::Path(p) if p.is_ident("each") && !each_allowed => errors.at(
                &p,
                format!("`each` is only for an event's #[tag]: a state's #[{name}] is one value; write #[{name}] on a field that holds one"),
            ),
            syn::Meta::Path(p) if p.is_ident("each") && *each => {
                errors.at(&p, "`each` is written twice: keep one")
            }
            syn::Meta::Path(p) if p.is_ident("each") => *each = true,
            meta if meta.path().is_ident("each") => errors.at(
                &meta,
                format!("`each` takes no value, it is a flag written alone: {EACH_USAGE}"),
            ),
            meta => {
                let word = crate::spans::text(meta.path());
                let (expected, candidates): (String, &[&str]) = if each_allowed {
                    (
                        format!("#[{name}] takes the tag key as a string and the flag `each`: {EACH_USAGE}"),
                        &["each"],
                    )
                } else {
                    (
                        format!("expected a tag key as a string, like #[{name}(\"username\")]"),
                        &[],
                    )
                };
                errors.at(
                    &meta,
                    format!(
                        "unknown `{word}` in #[{name}(..)]{}: {expected}",
                        crate::errors::suggestion(&word, candidates.iter().copied())
                    ),
                );
            }
        }
    }
    key
}

/// Removes `#[<name>]` attributes from every field: they are inert markers for the macro.
pub fn strip(name: &str, fields: &mut syn::Fields) {
    for field in fields.iter_mut() {
        field.attrs.retain(|a| !a.path().is_ident(name));
    }
}
