//! The examples' models as `describe` prints them: snapshot tests of the tables, and the
//! pages under `docs/model/` (graph and tables) kept equal to what the code says.
//!
//! After a change to a domain, review and accept the new tables with
//! `cargo insta review` (or `INSTA_UPDATE=always`), and rewrite the pages with
//! `FACTUM_UPDATE_DOCS=1 cargo test -p factum-examples --test model`.

use std::path::PathBuf;

use factum::Catalog;
use factum_examples::{bank, coupons, courses, sprints};

fn models() -> [(&'static str, Catalog); 4] {
    [
        ("coupons", coupons::catalog()),
        ("courses", courses::catalog()),
        ("bank", bank::catalog()),
        ("sprints", sprints::catalog()),
    ]
}

#[test]
fn every_example_catalog_is_whole() {
    for (name, catalog) in models() {
        assert_eq!(catalog.check(), Ok(()), "{name}");
        // Whatever the application registers through `inventory` is in it too.
        let everywhere = Catalog::from_inventory();
        for d in catalog.decisions() {
            assert_eq!(everywhere.decision_info(d.meta.name), Some(d), "{name}");
        }
    }
}

#[test]
fn the_tables_of_each_example() {
    for (name, catalog) in models() {
        insta::assert_snapshot!(format!("describe_{name}"), catalog.describe());
    }
}

#[test]
fn the_warnings_of_each_example() {
    for (name, catalog) in models() {
        let warnings: Vec<String> = catalog
            .analyze()
            .warnings
            .iter()
            .map(|w| format!("{}: {w}", w.kind()))
            .collect();
        insta::assert_snapshot!(format!("warnings_{name}"), warnings.join("\n"));
    }
}

#[test]
fn the_model_pages_in_the_docs_are_current() {
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/model");
    let update = std::env::var_os("FACTUM_UPDATE_DOCS").is_some();
    let mut stale = Vec::new();
    for (name, catalog) in models() {
        let path = docs.join(format!("{name}.md"));
        let page = catalog.document(&format!("The {name} model"));
        if update {
            std::fs::create_dir_all(&docs).expect("create docs/model");
            std::fs::write(&path, &page).expect("write the page");
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != page {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale model pages: {stale:?}; run `FACTUM_UPDATE_DOCS=1 cargo test -p factum-examples --test model` and review the diff"
    );
}
