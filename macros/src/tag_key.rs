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
}

/// Reads the `#[<name>]` attribute of `field`, if any. Errors go to `errors`.
pub fn parse(name: &str, field: &Field, errors: &mut Errors) -> Option<TagField> {
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
    let (key, key_span) = match &attr.meta {
        syn::Meta::Path(_) => (ident.to_string(), ident.span()),
        syn::Meta::List(_) => {
            let lit = errors.ok(attr.parse_args::<LitStr>().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!("expected a tag key as a string, like #[{name}(\"username\")]"),
                )
            }))?;
            (lit.value(), lit.span())
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
    })
}

/// Removes `#[<name>]` attributes from every field: they are inert markers for the macro.
pub fn strip(name: &str, fields: &mut syn::Fields) {
    for field in fields.iter_mut() {
        field.attrs.retain(|a| !a.path().is_ident(name));
    }
}
