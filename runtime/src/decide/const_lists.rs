//! Set operations on lists of names, at compile time: the macros check a model with them
//! in `const` items, where no collection is available.

/// Whether `list` holds `item`, at compile time.
pub const fn contains(list: &[&str], item: &str) -> bool {
    let mut i = 0;
    while i < list.len() {
        if str_eq(list[i], item) {
            return true;
        }
        i += 1;
    }
    false
}

/// Whether any list in `lists` holds `item`, at compile time.
pub const fn any_contains(lists: &[&[&str]], item: &str) -> bool {
    let mut i = 0;
    while i < lists.len() {
        if contains(lists[i], item) {
            return true;
        }
        i += 1;
    }
    false
}

/// Whether a decision reading the state kinds `states` (names), folding `types` (one
/// list per kind), still guards its append once `excluded` is removed from the states
/// `only_in` names (`None`: every state), at compile time: some kind keeps a type (or
/// folds every type), or the decision reads no state at all.
pub const fn guards_something(
    types: &[&[&str]],
    states: &[&str],
    excluded: &[&str],
    only_in: Option<&[&str]>,
) -> bool {
    if types.is_empty() {
        return true;
    }
    let mut i = 0;
    while i < types.len() {
        let spared = match only_in {
            Some(only) => i < states.len() && !contains(only, states[i]),
            None => false,
        };
        if spared || types[i].is_empty() || !contains_all(excluded, types[i]) {
            return true;
        }
        i += 1;
    }
    false
}

/// Whether every item of `needles` is in `list`, at compile time.
pub const fn contains_all(list: &[&str], needles: &[&str]) -> bool {
    let mut i = 0;
    while i < needles.len() {
        if !contains(list, needles[i]) {
            return false;
        }
        i += 1;
    }
    true
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
