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
    for event in &mut module.events {
        if let Some(first) = seen.get(&event.name) {
            let how = if event.ident == event.name {
                "rename one with #[event(name = \"...\")]"
            } else {
                "choose another name in this #[event(name = \"...\")]"
            };
            errors.push(syn::Error::new(
                event.name_span,
                format!(
                    "duplicate event type name `{}`: `{first}` already has it, and stored events are found by this name, so it must be unique; {how}",
                    event.name
                ),
            ));
            event.in_enums = false;
            // Mark it as erroneous (see `EventModel::version`), so folds and decisions
            // naming it report nothing more.
            event.version = 0;
            continue;
        }
        seen.insert(event.name.clone(), event.ident.clone());
    }

    // The module's enum is called `Event`: an item of that name would clash with it, so
    // the enum (and what refers to it) is not generated.
    if let Some(taken) = module.item_names.iter().find(|i| *i == ALL) {
        errors.at(
            taken,
            "this module cannot have an item called `Event`: #[factum::events] generates the module's `Event` enum of all its events; rename this one",
        );
        module.all_enum = false;
    }
    let structs: Vec<String> = module.item_names.iter().map(ToString::to_string).collect();
    let mut group_seen: Vec<String> = Vec::new();
    let mut reported: Vec<String> = Vec::new();
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
                if reported.contains(&enum_name) {
                    return false;
                }
                reported.push(enum_name.clone());
                errors.at(
                    group,
                    format!("group `{group}` would generate the enum `{enum_name}`, but this module already has an item called `{enum_name}`: rename the group or that item"),
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
