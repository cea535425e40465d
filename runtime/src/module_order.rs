//! The crate's modules depend on each other in one order only: each may use the modules
//! before it, never one after it. A back-edge is a failing test here, not a review
//! comment.

use std::path::{Path, PathBuf};

/// Lowest first. `error_chain` is a leaf every module may use; `macro_support` (the
/// `__private` module) is what the macros' output names.
const ORDER: &[&str] = &[
    "error_chain",
    "telemetry",
    "model",
    "store",
    "decide",
    "lanes",
    "listen",
    "catalog",
    "testing",
    "conformance",
    "macro_support",
];

/// Root items (re-exports and macros) a module may name as `crate::X`, and the module
/// each one belongs to.
const ROOT_ITEMS: &[(&str, &str)] = &[
    ("ErrorChain", "error_chain"),
    ("conformance_tests", "conformance"),
    ("listener_conformance_tests", "conformance"),
    ("projection_sink_conformance_tests", "conformance"),
];

fn rank(module: &str) -> Option<usize> {
    ORDER.iter().position(|m| *m == module)
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// How many `super::` steps lead from the file at `relative` (below `src/`) to the
/// crate root: `store/memory.rs` is `crate::store::memory`, two steps.
fn depth(relative: &Path) -> usize {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.len()
}

/// The top-level modules the code (not the comments) of a file `depth` steps below the
/// crate root names: through `crate::x` and `$crate::x`, and through a `super::` chain
/// that climbs to the root. By line.
fn top_level_paths(source: &str, depth: usize) -> Vec<(usize, String)> {
    let name_at = |rest: &str| -> String {
        rest.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut paths = Vec::new();
    for (number, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            paths.push((number + 1, name_at(rest)));
        }
        let mut rest = code;
        while let Some(at) = rest.find("super::") {
            let mut after = &rest[at..];
            let mut steps = 0;
            while let Some(next) = after.strip_prefix("super::") {
                steps += 1;
                after = next;
            }
            if steps >= depth {
                paths.push((number + 1, name_at(after)));
            }
            rest = after;
        }
    }
    paths
}

/// The back-edges of the file at `relative` (below `src/`) of `module`, as messages.
fn back_edges(module: &str, relative: &Path, source: &str) -> Vec<String> {
    let own = rank(module).unwrap_or_default();
    let mut found = Vec::new();
    for (line, name) in top_level_paths(source, depth(relative)) {
        let target = ROOT_ITEMS
            .iter()
            .find(|(item, _)| *item == name)
            .map_or(name.as_str(), |(_, module)| *module);
        let shown = format!("{}:{line}: {name}", relative.display());
        match rank(target) {
            Some(other) if other > own => found.push(format!(
                "{shown} ({module} may not use {target}, which comes after it)"
            )),
            Some(_) => {}
            None => found.push(format!(
                "{shown} (name the module: `crate::<module>::{name}`, one of {ORDER:?})"
            )),
        }
    }
    found
}

#[test]
fn modules_use_only_the_modules_before_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut checked = 0;
    for module in ORDER {
        let mut files = Vec::new();
        let file = src.join(format!("{module}.rs"));
        if file.is_file() {
            files.push(file);
        }
        rust_files(&src.join(module), &mut files);
        for file in files {
            let relative = file.strip_prefix(&src).unwrap_or(&file);
            match std::fs::read_to_string(&file) {
                Ok(source) => found.extend(back_edges(module, relative, &source)),
                Err(e) => found.push(format!("{}: unreadable: {e}", file.display())),
            }
            checked += 1;
        }
    }
    assert!(
        checked > 50,
        "only {checked} files found under {}",
        src.display()
    );
    assert!(
        found.is_empty(),
        "module order model → store → decide → lanes → listen → catalog broken:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_top_level_module_has_its_place() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| {
            let l = l.trim_start_matches("pub ").trim();
            l.strip_prefix("mod ")?.strip_suffix(';')
        })
        .filter(|m| *m != "module_order" && *m != "__private")
        .collect();
    assert!(declared.len() >= 8, "{declared:?}");
    for module in declared {
        assert!(
            rank(module).is_some(),
            "lib.rs declares `{module}`, missing from ORDER"
        );
    }
}

#[test]
fn a_back_edge_is_reported_with_its_file_and_line() {
    let store = "use crate::model::Query; // crate::catalog in a comment\n/// crate::listen\nuse crate::lanes::Dispatcher;\n";
    let found = back_edges("store", Path::new("store/memory.rs"), store);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("store/memory.rs:3: lanes"),
        "{found:?}"
    );

    // A `super::` chain that climbs out of the module counts; one that stays in it not.
    let decide = "use super::super::lanes::Strategy;\nuse super::Engine;\n";
    let found = back_edges("decide", Path::new("decide/engine/load.rs"), decide);
    assert!(found.is_empty(), "two steps stay in decide: {found:?}");
    let decide = "use super::super::super::lanes::Strategy;\n";
    let found = back_edges("decide", Path::new("decide/engine/load.rs"), decide);
    assert_eq!(found.len(), 1, "{found:?}");
    let found = back_edges(
        "decide",
        Path::new("decide/mod.rs"),
        "use super::lanes::X;\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");

    // A root re-export hides which module it is.
    let found = back_edges("model", Path::new("model/query.rs"), "use crate::Engine;\n");
    assert!(found[0].contains("name the module"), "{found:?}");
}
