//! One event type name declared in two modules is a catalog error, found by both
//! registration paths.

use factum::catalog::Catalog;

#[factum::events]
pub mod accounts {
    pub struct Opened {
        #[tag]
        pub account: String,
    }
}

#[factum::events]
pub mod legacy {
    #[event(name = "Opened")]
    pub struct AccountOpened {
        #[tag]
        pub account: String,
    }
}

#[test]
fn the_catalog_reports_one_type_name_declared_in_two_modules() {
    let explicit = Catalog::new()
        .events::<legacy::Event>()
        .events::<accounts::Event>();
    let errors = explicit.check().unwrap_err();
    assert_eq!(errors.len(), 1);
    let text = errors[0].to_string();
    assert_eq!(
        text,
        "event type name `Opened` is declared twice, in `catalog_duplicates::accounts` and `catalog_duplicates::legacy`: rename one with #[event(name = \"...\")]"
    );
    // Registration order does not change the result.
    let reversed = Catalog::new()
        .events::<accounts::Event>()
        .events::<legacy::Event>();
    assert_eq!(reversed, explicit);
    assert_eq!(Catalog::from_inventory(), explicit);
}
