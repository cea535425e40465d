//! The crate's modules depend on each other in one order only: each may use the modules
//! before it, never one after it. A back-edge is a failing test here, not a review
//! comment.

use std::path::{Path, PathBuf};

/// Lowest first. `error_chain` is a leaf every module may use.
const ORDER: &[&str] = &[
    "error_chain",
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

/// The `crate::name` paths the code (not the comments) of `source` uses, by line.
fn crate_paths(source: &str) -> Vec<(usize, String)> {
    let mut paths = Vec::new();
    for (number, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            paths.push((number + 1, name));
            rest = after;
        }
    }
    paths
}

#[test]
fn modules_use_only_the_modules_before_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut back_edges = Vec::new();
    let mut checked = 0;
    for module in ORDER {
        let mut files = Vec::new();
        let file = src.join(format!("{module}.rs"));
        if file.is_file() {
            files.push(file);
        }
        rust_files(&src.join(module), &mut files);
        for file in files {
            let Ok(source) = std::fs::read_to_string(&file) else {
                back_edges.push(format!("{}: unreadable", file.display()));
                continue;
            };
            checked += 1;
            let own = rank(module).unwrap_or_default();
            for (line, name) in crate_paths(&source) {
                let target = ROOT_ITEMS
                    .iter()
                    .find(|(item, _)| *item == name)
                    .map_or(name.as_str(), |(_, module)| *module);
                let shown = format!("{}:{line}: crate::{name}", file.display());
                match rank(target) {
                    Some(other) if other > own => back_edges.push(format!(
                        "{shown} ({module} may not use {target}, which comes after it)"
                    )),
                    Some(_) => {}
                    None => back_edges.push(format!(
                        "{shown} (name the module: `crate::<module>::{name}`, one of {ORDER:?})"
                    )),
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} files found under {}",
        src.display()
    );
    assert!(
        back_edges.is_empty(),
        "module order model → store → decide → lanes → listen → catalog broken:\n{}",
        back_edges.join("\n")
    );
}

#[test]
fn the_scan_sees_a_back_edge() {
    let source =
        "use crate::lanes::Dispatcher; // crate::catalog in a comment\n/// crate::listen\n";
    let found: Vec<String> = crate_paths(source).into_iter().map(|(_, n)| n).collect();
    assert_eq!(found, ["lanes"]);
}
