//! Snapshots of what each macro generates, pretty-printed, so a change to the generated
//! code shows up in review as a readable diff (`cargo insta review` to accept one).

use proc_macro2::TokenStream;
use quote::quote;

fn pretty(tokens: TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(e) => panic!("the expansion is not valid Rust ({e}):\n{tokens}"),
    }
}

#[test]
fn events_module() {
    let out = crate::events::run(
        TokenStream::new(),
        quote! {
            pub mod shop {
                #[group(Coupon)]
                pub struct CouponIssued { #[tag] pub coupon: String, pub uses: u32 }
                #[group(Coupon, Cart)]
                #[event(name = "CouponUsed", version = 2, public)]
                pub struct CouponApplied { #[tag] pub coupon: String, #[tag("cart")] pub basket: String }
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn events_tags_as_a_set() {
    let out = crate::events::run(
        TokenStream::new(),
        quote! {
            pub mod orders {
                pub struct OrderPlaced { #[tag] pub order: String, #[tag("product", each)] pub products: Vec<String> }
                pub struct UsernameChanged { #[tag("username")] pub old: String, #[tag("username")] pub new: String }
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn fold_over_a_set() {
    let out = crate::fold::run(
        TokenStream::new(),
        quote! {
            impl Course {
                fn apply(&mut self, e: &courses::CourseEvent) {}
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn fold_with_an_any_handler() {
    let out = crate::fold::run(
        TokenStream::new(),
        quote! {
            impl CourseLog {
                fn defined(&mut self, e: &courses::CourseDefined) {}
                #[any]
                fn other(&mut self, stored: &factum::StoredEvent) {}
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn state_derive() {
    let out = crate::state::run(quote! {
        pub struct Coupon { #[id] pub coupon: String, pub remaining: u32 }
    });
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn fold() {
    let out = crate::fold::run(
        TokenStream::new(),
        quote! {
            impl Coupon {
                fn issued(&mut self, e: &shop::CouponIssued) { self.remaining = e.uses }
                fn applied(&mut self, _: &shop::CouponApplied, stored: &factum::StoredEvent) {
                    self.remaining -= 1;
                    self.last = Some(stored.position);
                }
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn decision_derive() {
    let out = crate::decision::run(quote! {
        #[decision(partition = coupon, idempotency = request, exclude = [shop::CouponApplied], retries = 5)]
        pub struct ApplyCoupon { pub cart: String, pub coupon: String, pub request: Uuid }
    });
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn errors_are_all_reported_with_the_item_kept() {
    let out = crate::decision::run(quote! {
        #[decision(partiton = coupon, idempotency = requst)]
        pub struct ApplyCoupon { pub coupon: String, pub request: Uuid }
    });
    let text = out.to_string();
    assert!(
        text.contains("impl :: factum :: Decision for ApplyCoupon"),
        "fallback impl kept: {text}"
    );
    assert_eq!(text.matches("compile_error").count(), 2, "{text}");
    assert!(text.contains("did you mean `partition`"), "{text}");
    assert!(text.contains("did you mean `request`"), "{text}");
}
