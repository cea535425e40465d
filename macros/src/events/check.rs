//! Step 2 of `#[factum::events]`: check the module model as a whole.

use std::collections::HashMap;

use super::model::{EventModel, Module, Upcast};
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
    for event in &mut module.events {
        check_upcasts(event, errors);
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
            // Marked as erroneous (see `EventModel::reported`), so folds and decisions
            // naming it report nothing more.
            event.reported = true;
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

/// The upcasters of one event must each read a version below the event's, once each, and
/// together form one unbroken chain up to it; the ones that break a rule are dropped.
fn check_upcasts(event: &mut EventModel, errors: &mut Errors) {
    if event.upcasts.is_empty() || event.reported {
        return;
    }
    let version = event.version;
    let mut kept: Vec<Upcast> = Vec::new();
    for upcast in std::mem::take(&mut event.upcasts) {
        if upcast.from >= version {
            let how = if event.version_span.is_none() {
                format!(
                    "`{}` has no #[event(version = ..)], so it is at version 1 and nothing is older: raise its version, like #[event(version = {})]",
                    event.ident,
                    upcast.from + 1
                )
            } else {
                format!(
                    "`{}` is at version {version}, so a step reads an older version: `from` must be below {version}",
                    event.ident
                )
            };
            errors.at(
                &upcast.from_lit,
                format!(
                    "an upcaster from version {} leads to version {}, but {how}",
                    upcast.from,
                    upcast.from + 1
                ),
            );
            continue;
        }
        if kept.iter().any(|k| k.from == upcast.from) {
            errors.at(
                &upcast.from_lit,
                format!("a second upcaster from version {}: each stored version has one step to the next; keep one", upcast.from),
            );
            continue;
        }
        kept.push(upcast);
    }
    kept.sort_by_key(|u| u.from);
    if let Some(oldest) = kept.first().map(|u| u.from) {
        let missing: Vec<u32> = (oldest..version)
            .filter(|v| !kept.iter().any(|u| u.from == *v))
            .collect();
        if !missing.is_empty() {
            let list = missing
                .iter()
                .map(|v| format!("#[upcast(from = {v}, with = ..)]"))
                .collect::<Vec<_>>()
                .join(", ");
            let span = event.version_span.unwrap_or_else(|| event.ident.span());
            errors.push(syn::Error::new(
                span,
                format!(
                    "the upcasters of `{}` do not form a chain from version {oldest} to version {version}: a stored v{oldest} event could not reach the current version; add {list}",
                    event.ident
                ),
            ));
        }
    }
    event.upcasts = kept;
}
