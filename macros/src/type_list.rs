//! `exclude = [a::B, C]` in darling attribute structs: a list of type paths.

use darling::FromMeta;
use syn::{Expr, Path};

/// A list of type paths written `= [A, b::C]` (or `(A, b::C)`).
#[derive(Clone, Debug, Default)]
pub struct TypeList(pub Vec<Path>);

impl FromMeta for TypeList {
    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        match expr {
            Expr::Array(array) => {
                let mut errors = darling::Error::accumulator();
                let paths = array
                    .elems
                    .iter()
                    .filter_map(|e| errors.handle(path_of(e)))
                    .collect();
                errors.finish_with(TypeList(paths))
            }
            Expr::Group(group) => Self::from_expr(&group.expr),
            other => Err(darling::Error::custom(
                "expected a list of event types in brackets, like `[shop::CouponApplied]`",
            )
            .with_span(other)),
        }
    }

    fn from_list(items: &[darling::ast::NestedMeta]) -> darling::Result<Self> {
        let mut errors = darling::Error::accumulator();
        let paths = items
            .iter()
            .filter_map(|item| match item {
                darling::ast::NestedMeta::Meta(syn::Meta::Path(p)) => Some(p.clone()),
                other => {
                    errors.push(
                        darling::Error::custom("expected an event type path").with_span(other),
                    );
                    None
                }
            })
            .collect();
        errors.finish_with(TypeList(paths))
    }
}

fn path_of(expr: &Expr) -> darling::Result<Path> {
    match expr {
        Expr::Path(p) if p.qself.is_none() => Ok(p.path.clone()),
        Expr::Group(g) => path_of(&g.expr),
        other => Err(darling::Error::custom(
            "expected an event type path, like `shop::CouponApplied`",
        )
        .with_span(other)),
    }
}

/// A field name written `= coupon` (or `= "coupon"`).
#[derive(Clone, Debug)]
pub struct FieldName(pub syn::Ident);

impl FromMeta for FieldName {
    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        match expr {
            Expr::Path(p) if p.qself.is_none() => match p.path.get_ident() {
                Some(ident) => Ok(FieldName(ident.clone())),
                None => {
                    Err(darling::Error::custom("expected a field name, like `coupon`").with_span(p))
                }
            },
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => s.parse().map(FieldName).map_err(|_| {
                darling::Error::custom("expected a field name, like `coupon`").with_span(s)
            }),
            Expr::Group(g) => Self::from_expr(&g.expr),
            other => {
                Err(darling::Error::custom("expected a field name, like `coupon`").with_span(other))
            }
        }
    }
}
