//! Step 2 of `#[factum::events]`: check the module model as a whole.

use std::collections::HashMap;

use super::model::Module;
use crate::errors::Errors;

/// The name of the enum of all the module's events.
pub const ALL: &str = "Event";

/// The enum name of a group.
pub fn group_enum(group: &syn::Ident) -> syn::Ident {
    quote::format_ident!("{}Event", group)
}

/// Records every whole-module mistake, and drops what would make generation fail.
pub fn check(module: &mut Module, errors: &mut Errors) {
    if module.events.is_empty() {
        errors.at(
            &module.item.ident,
            "this events module declares no event struct: add structs such as `pub struct CouponIssued { #[tag] pub coupon: String }`",
        );
        return;
    }
    let mut seen: HashMap<String, syn::Ident> = HashMap::new();
    let mut kept = Vec::new();
    for event in std::mem::take(&mut module.events) {
        if let Some(first) = seen.get(&event.name) {
            errors.push(syn::Error::new(
                event.name_span,
                format!(
                    "duplicate event type name `{}` (already used by `{}`): stored events are found by this name, so it must be unique; rename one with #[event(name = \"...\")]",
                    event.name, first
                ),
            ));
            continue;
        }
        seen.insert(event.name.clone(), event.ident.clone());
        kept.push(event);
    }
    module.events = kept;

    let structs: Vec<String> = module.events.iter().map(|e| e.ident.to_string()).collect();
    module.events.retain(|event| {
        if event.ident == ALL {
            errors.at(
                &event.ident,
                "an event struct cannot be called `Event`: #[factum::events] generates the module's `Event` enum; rename the struct",
            );
        }
        event.ident != ALL
    });
    let mut group_seen: Vec<String> = Vec::new();
    for event in &mut module.events {
        let mut own: Vec<String> = Vec::new();
        event.groups.retain(|group| {
            let enum_name = group_enum(group).to_string();
            if own.contains(&enum_name) {
                errors.at(group, format!("`{group}` is listed twice in this #[group(..)]"));
                return false;
            }
            own.push(enum_name.clone());
            if structs.contains(&enum_name) {
                errors.at(
                    group,
                    format!("group `{group}` would generate the enum `{enum_name}`, which is already an event struct: rename the group or the struct"),
                );
                return false;
            }
            if !group_seen.contains(&enum_name) {
                group_seen.push(enum_name);
            }
            true
        });
    }
}
