//! Values of attribute keys: `exclude = [a::B, C]` (a list of types) and
//! `partition = coupon` (a field name).

use darling::FromMeta;
use darling::ast::MetaNameValueInvalidExpr;
use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::Expr;
use syn::parse::Parser;

/// A list of event types written `= [A, b::C]`.
///
/// Read from the raw tokens, so a type that is not an expression (`Vec<u8>`) is still
/// read as a type, and reported as "not an event type" where it is used. Not an
/// `Option<TypeList>` field: darling's `Option` drops such raw values, so `span` tells
/// whether the key was written.
#[derive(Clone, Debug, Default)]
pub struct TypeList {
    pub types: Vec<syn::Type>,
    /// The span of the written list; `None` when the key is absent.
    pub span: Option<Span>,
}

const EXPECTED_LIST: &str =
    "expected a list of event types in brackets, like `[shop::CouponApplied]`";

impl TypeList {
    fn from_tokens(tokens: TokenStream) -> darling::Result<Self> {
        let mut trees = tokens.clone().into_iter();
        let group = match (trees.next(), trees.next()) {
            (Some(TokenTree::Group(g)), None) if g.delimiter() == Delimiter::None => {
                return Self::from_tokens(g.stream());
            }
            (Some(TokenTree::Group(g)), None) if g.delimiter() == Delimiter::Bracket => g,
            _ => return Err(darling::Error::custom(EXPECTED_LIST).with_span(&tokens)),
        };
        let types = syn::punctuated::Punctuated::<syn::Type, syn::Token![,]>::parse_terminated
            .parse2(group.stream())
            .map_err(|e| {
                darling::Error::from(syn::Error::new(
                    e.span(),
                    format!("{e}: expected event types separated by commas, like `[shop::CouponApplied, shop::CouponIssued]`"),
                ))
            })?;
        Ok(TypeList {
            types: types.into_iter().collect(),
            span: Some(group.span()),
        })
    }
}

impl FromMeta for TypeList {
    fn from_expr(expr: &Expr) -> darling::Result<Self> {
        Self::from_tokens(expr.to_token_stream())
    }

    fn from_invalid_expr(value: &MetaNameValueInvalidExpr) -> darling::Result<Self> {
        Self::from_tokens(value.value.clone())
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
