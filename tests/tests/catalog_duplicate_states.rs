//! Two different states, or decisions, with one name are catalog errors: exclusions and
//! the catalog name states by name.

use factum::catalog::Catalog;

#[factum::events]
pub mod accounts {
    pub struct Opened {
        #[tag]
        pub account: String,
    }
    pub struct Closed {
        #[tag]
        pub account: String,
    }
}

mod one {
    use super::accounts;

    #[derive(factum::State, Default)]
    pub struct Account {
        #[id]
        pub account: String,
    }

    #[factum::fold]
    impl Account {
        fn opened(&mut self, _: &accounts::Opened) {}
    }
}

mod two {
    use super::accounts;

    /// Another state with the same name, folding other types.
    #[derive(factum::State, Default)]
    pub struct Account {
        #[id]
        pub account: String,
    }

    #[factum::fold]
    impl Account {
        fn closed(&mut self, _: &accounts::Closed) {}
    }
}

#[test]
fn two_different_states_with_one_name_are_reported() {
    let catalog = Catalog::new()
        .state::<one::Account>()
        .state::<two::Account>();
    let errors = catalog.check().unwrap_err();
    assert!(
        errors.iter().any(|e| e.to_string()
            == "two different states are named `Account`: rename one with #[state(name = \"...\")]"),
        "{errors:?}"
    );
    // The same state registered twice is not a duplicate.
    let once = Catalog::new()
        .state::<one::Account>()
        .state::<one::Account>();
    assert!(once.check().is_ok());
}
