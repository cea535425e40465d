//! Step 3 of `#[factum::events]`: generate the impls and enums from the checked model.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{Ident, Item, parse_quote};

use super::check::{ALL, group_enum};
use super::model::{EventModel, Module};

/// The derives every event struct needs; the ones the user already wrote are kept as is.
const DERIVES: [&str; 5] = ["Debug", "Clone", "PartialEq", "Serialize", "Deserialize"];

pub fn expand(mut module: Module) -> TokenStream {
    let events = &module.events;
    let mut generated: Vec<Item> = Vec::new();
    if let Some((_, items)) = module.item.content.as_mut() {
        for event in events {
            if let Item::Struct(s) = &mut items[event.item_index] {
                add_derives(s);
            }
        }
    }
    for event in events {
        generated.push(Item::Verbatim(if event.valid_shape {
            event_impls(event)
        } else {
            fallback_impls(event)
        }));
    }
    let members: Vec<&EventModel> = events.iter().filter(|e| e.in_enums).collect();
    let all = format_ident!("{}", ALL);
    let all_enum = module.all_enum && !members.is_empty();
    if all_enum {
        generated.push(Item::Verbatim(event_enum(
            &all,
            &members,
            "Every event type of this module.",
        )));
    }
    for group in groups(&members) {
        let in_group: Vec<&EventModel> = members
            .iter()
            .copied()
            .filter(|e| e.groups.contains(&group))
            .collect();
        let doc = format!("The events of group `{group}`.");
        let name = group_enum(&group);
        generated.push(Item::Verbatim(event_enum(&name, &in_group, &doc)));
        if all_enum {
            generated.push(Item::Verbatim(group_conversions(&name, &all, &in_group)));
        }
    }
    // The module's enum registers its members; any other event type registers alone
    // (one left out of the enums because of an error).
    if all_enum {
        generated.push(Item::Verbatim(quote! {
            ::factum::__submit! {
                ::factum::catalog::EventEntry(<#all as ::factum::EventSet>::infos)
            }
        }));
    }
    for event in events
        .iter()
        .filter(|e| e.valid_shape && !(all_enum && e.in_enums))
    {
        let ident = &event.ident;
        generated.push(Item::Verbatim(quote! {
            ::factum::__submit! {
                ::factum::catalog::EventEntry(<#ident as ::factum::EventSet>::infos)
            }
        }));
    }
    if let Some((_, items)) = module.item.content.as_mut() {
        items.extend(generated);
    }
    let item = &module.item;
    quote!(#item)
}

fn groups(events: &[&EventModel]) -> Vec<Ident> {
    let mut groups: Vec<Ident> = Vec::new();
    for g in events.iter().flat_map(|e| &e.groups) {
        if !groups.contains(g) {
            groups.push(g.clone());
        }
    }
    groups
}

fn add_derives(s: &mut syn::ItemStruct) {
    let mut present: Vec<String> = Vec::new();
    for attr in s.attrs.iter().filter(|a| a.path().is_ident("derive")) {
        let _ = attr.parse_nested_meta(|meta| {
            if let Some(last) = meta.path.segments.last() {
                present.push(last.ident.to_string());
            }
            Ok(())
        });
    }
    let missing: Vec<TokenStream> = DERIVES
        .iter()
        .filter(|d| !present.iter().any(|p| p == *d))
        .map(|d| match *d {
            "Serialize" => quote!(::factum::__private::serde::Serialize),
            "Deserialize" => quote!(::factum::__private::serde::Deserialize),
            "Debug" => quote!(::core::fmt::Debug),
            "Clone" => quote!(::core::clone::Clone),
            _ => quote!(::core::cmp::PartialEq),
        })
        .collect();
    if !missing.is_empty() {
        s.attrs.push(parse_quote!(#[derive(#(#missing),*)]));
    }
    s.attrs
        .push(parse_quote!(#[serde(crate = "::factum::__private::serde")]));
}

fn event_impls(event: &EventModel) -> TokenStream {
    let ident = &event.ident;
    let name = &event.name;
    let version = event.version;
    let public = event.public;
    let mut keys: Vec<&str> = Vec::new();
    for t in &event.tags {
        if !keys.contains(&t.key.as_str()) {
            keys.push(&t.key);
        }
    }
    let tags = tags_body(event);
    let groups: Vec<String> = event.groups.iter().map(ToString::to_string).collect();
    let upcasters = event.upcasts.iter().map(|u| {
        let from = u.from;
        let with = &u.with;
        // Spanned at the path, so a function of the wrong type is reported there.
        let upcast = quote::quote_spanned!(with.span()=> #with);
        quote!(::factum::Upcaster { from: #from, upcast: #upcast })
    });
    let reported = if event.reported {
        quote!(
            const MACRO_REPORTED_ERROR: bool = true;
        )
    } else {
        quote!()
    };
    let upcasters = if event.upcasts.is_empty() {
        quote!()
    } else {
        quote!(const UPCASTERS: &'static [::factum::Upcaster] = &[#(#upcasters),*];)
    };
    quote! {
        #[automatically_derived]
        impl ::factum::Event for #ident {
            const TYPE: &'static str = #name;
            const VERSION: u32 = #version;
            const TAG_KEYS: &'static [&'static str] = &[#(#keys),*];
            const PUBLIC: bool = #public;
            #upcasters
            #reported
        }

        #[automatically_derived]
        impl ::factum::EventSet for #ident {
            const TYPES: &'static [&'static str] = &[#name];

            fn event_type(&self) -> &'static str {
                #name
            }

            fn tags(&self) -> ::std::vec::Vec<::factum::Tag> {
                #tags
            }

            fn to_new_event(
                &self,
                codec: ::factum::Codec,
            ) -> ::std::result::Result<::factum::NewEvent, ::factum::model::EncodeError> {
                ::factum::NewEvent::encode(self, codec)
            }

            fn from_stored(
                event: &::factum::StoredEvent,
            ) -> ::std::result::Result<Self, ::factum::DecodeError> {
                event.decode::<Self>()
            }

            fn infos() -> ::std::vec::Vec<::factum::catalog::EventInfo> {
                ::std::vec![::factum::catalog::EventInfo {
                    name: #name,
                    version: #version,
                    tag_keys: <Self as ::factum::Event>::TAG_KEYS,
                    groups: &[#(#groups),*],
                    public: #public,
                    module: ::std::module_path!(),
                }]
            }
        }
    }
}

/// The body of `EventSet::tags`: one tag per plain `#[tag]` field and one per element of
/// each `#[tag(each)]` field, without repeats (tags are a set: `UsernameChanged { old,
/// new }` with `old == new` is tagged once). Only fields sharing a key can repeat a tag,
/// so an event whose keys all differ skips the deduplication.
fn tags_body(event: &EventModel) -> TokenStream {
    let plain = event.tags.iter().filter(|t| !t.each).map(|t| {
        let key = &t.key;
        let field = crate::spans::field_ref(&t.field, &t.ty);
        quote!(::factum::Tag::new(#key, #field))
    });
    let each: Vec<TokenStream> = event
        .tags
        .iter()
        .filter(|t| t.each)
        .map(|t| {
            let key = &t.key;
            // Spanned on the field's type, so a type that is not a collection of tag
            // values is reported there.
            let field = crate::spans::field_ref(&t.field, &t.ty);
            let (start, _) = crate::spans::bounds(&t.ty);
            let call = quote::quote_spanned!(start=> ::factum::TagValues::push_tags);
            quote!(#call(#field, #key, &mut tags);)
        })
        .collect();
    let mut keys: Vec<&str> = Vec::new();
    let repeats = event.tags.iter().any(|t| {
        let seen = keys.contains(&t.key.as_str());
        keys.push(&t.key);
        seen
    });
    if each.is_empty() && !repeats {
        return quote!(::std::vec![#(#plain),*]);
    }
    quote! {
        let mut tags = ::std::vec![#(#plain),*];
        #(#each)*
        ::factum::__private::dedup_tags(&mut tags);
        tags
    }
}

/// Impls for a struct that cannot be an event (generic, tuple struct), emitted beside the
/// error so that folds and decisions naming it report nothing more:
/// `MACRO_REPORTED_ERROR` tells the generated checks to stay quiet about it; the methods
/// are never called, as the crate does not compile.
fn fallback_impls(event: &EventModel) -> TokenStream {
    let ident = &event.ident;
    let name = &event.name;
    let mut event_generics = event.generics.clone();
    let mut set_generics = event.generics.clone();
    if !event.generics.params.is_empty() {
        event_generics
            .make_where_clause()
            .predicates
            .push(parse_quote!(
                Self: ::factum::EventSet
                    + ::factum::__private::serde::Serialize
                    + ::factum::__private::serde::de::DeserializeOwned
            ));
        set_generics
            .make_where_clause()
            .predicates
            .push(parse_quote!(
                Self: ::std::clone::Clone
                    + ::std::fmt::Debug
                    + ::std::cmp::PartialEq
                    + ::std::marker::Send
                    + ::std::marker::Sync
                    + 'static
            ));
    }
    let (impl_generics, ty_generics, where_clause) = event_generics.split_for_impl();
    let (set_impl_generics, _, set_where_clause) = set_generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics ::factum::Event for #ident #ty_generics #where_clause {
            const TYPE: &'static str = #name;
            const VERSION: u32 = 1;
            const TAG_KEYS: &'static [&'static str] = &[];
            const MACRO_REPORTED_ERROR: bool = true;
        }

        #[automatically_derived]
        impl #set_impl_generics ::factum::EventSet for #ident #ty_generics #set_where_clause {
            const TYPES: &'static [&'static str] = &[#name];

            fn event_type(&self) -> &'static str {
                #name
            }

            fn tags(&self) -> ::std::vec::Vec<::factum::Tag> {
                ::std::unreachable!()
            }

            fn to_new_event(
                &self,
                _: ::factum::Codec,
            ) -> ::std::result::Result<::factum::NewEvent, ::factum::model::EncodeError> {
                ::std::unreachable!()
            }

            fn from_stored(
                _: &::factum::StoredEvent,
            ) -> ::std::result::Result<Self, ::factum::DecodeError> {
                ::std::unreachable!()
            }

            fn infos() -> ::std::vec::Vec<::factum::catalog::EventInfo> {
                ::std::vec::Vec::new()
            }
        }
    }
}

fn event_enum(name: &Ident, members: &[&EventModel], doc: &str) -> TokenStream {
    let variants: Vec<&Ident> = members.iter().map(|e| &e.ident).collect();
    let type_names: Vec<&str> = members.iter().map(|e| e.name.as_str()).collect();
    // The keys every member carries: what a state folding the whole enum can have as ids.
    let common: Vec<&str> = members.first().map_or_else(Vec::new, |first| {
        let mut common: Vec<&str> = Vec::new();
        for t in &first.tags {
            let key = t.key.as_str();
            if !common.contains(&key) && members.iter().all(|e| e.tags.iter().any(|o| o.key == key))
            {
                common.push(key);
            }
        }
        common
    });
    quote! {
        #[doc = #doc]
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            ::core::cmp::PartialEq,
            ::factum::__private::serde::Serialize,
            ::factum::__private::serde::Deserialize,
        )]
        #[serde(crate = "::factum::__private::serde", tag = "type", content = "data")]
        pub enum #name {
            #(
                #[allow(missing_docs)]
                #[serde(rename = #type_names)]
                #variants(#variants),
            )*
        }

        #[automatically_derived]
        impl ::factum::EventSet for #name {
            const TYPES: &'static [&'static str] = &[#(#type_names),*];

            fn event_type(&self) -> &'static str {
                match self {
                    #(Self::#variants(e) => ::factum::EventSet::event_type(e),)*
                }
            }

            fn tags(&self) -> ::std::vec::Vec<::factum::Tag> {
                match self {
                    #(Self::#variants(e) => ::factum::EventSet::tags(e),)*
                }
            }

            fn to_new_event(
                &self,
                codec: ::factum::Codec,
            ) -> ::std::result::Result<::factum::NewEvent, ::factum::model::EncodeError> {
                match self {
                    #(Self::#variants(e) => ::factum::EventSet::to_new_event(e, codec),)*
                }
            }

            fn from_stored(
                event: &::factum::StoredEvent,
            ) -> ::std::result::Result<Self, ::factum::DecodeError> {
                #(
                    if event.event_type == <#variants as ::factum::Event>::TYPE {
                        return event.decode::<#variants>().map(Self::#variants);
                    }
                )*
                ::std::result::Result::Err(event.error(::factum::model::DecodeReason::UnknownType {
                    expected: <Self as ::factum::EventSet>::TYPES.to_vec(),
                }))
            }

            fn infos() -> ::std::vec::Vec<::factum::catalog::EventInfo> {
                let mut infos = ::std::vec::Vec::new();
                #(infos.extend(<#variants as ::factum::EventSet>::infos());)*
                infos
            }
        }

        #[automatically_derived]
        impl ::factum::decide::Foldable for #name {
            const FOLDED_TYPES: &'static [&'static str] = <Self as ::factum::EventSet>::TYPES;
            const COMMON_TAG_KEYS: &'static [&'static str] = &[#(#common),*];
            const IS_SET: bool = true;
            const CHECKED: bool = true #(&& !<#variants as ::factum::Event>::MACRO_REPORTED_ERROR)*;
        }

        #(
            #[automatically_derived]
            impl ::std::convert::From<#variants> for #name {
                fn from(event: #variants) -> Self {
                    Self::#variants(event)
                }
            }

            #[automatically_derived]
            impl ::std::convert::TryFrom<#name> for #variants {
                type Error = #name;
                fn try_from(event: #name) -> ::std::result::Result<Self, #name> {
                    match event {
                        #name::#variants(e) => ::std::result::Result::Ok(e),
                        #[allow(unreachable_patterns)]
                        other => ::std::result::Result::Err(other),
                    }
                }
            }
        )*
    }
}

fn group_conversions(group: &Ident, all: &Ident, members: &[&EventModel]) -> TokenStream {
    let variants: Vec<&Ident> = members.iter().map(|e| &e.ident).collect();
    quote! {
        #[automatically_derived]
        impl ::std::convert::From<#group> for #all {
            fn from(event: #group) -> Self {
                match event {
                    #(#group::#variants(e) => Self::#variants(e),)*
                }
            }
        }

        #[automatically_derived]
        impl ::std::convert::TryFrom<#all> for #group {
            type Error = #all;
            fn try_from(event: #all) -> ::std::result::Result<Self, #all> {
                match event {
                    #(#all::#variants(e) => ::std::result::Result::Ok(Self::#variants(e)),)*
                    #[allow(unreachable_patterns)]
                    other => ::std::result::Result::Err(other),
                }
            }
        }
    }
}
