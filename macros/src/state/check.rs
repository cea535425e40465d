//! Step 2 of `#[derive(State)]`: check the model.

use super::model::StateModel;
use crate::errors::Errors;

pub fn check(model: &StateModel, errors: &mut Errors) {
    let mut keys: Vec<&str> = Vec::new();
    for id in &model.ids {
        if keys.contains(&id.key.as_str()) {
            errors.push(syn::Error::new(
                id.key_span,
                format!(
                    "two #[id] fields match the tag key `{}`: each id names a different tag key; rename one with #[id(\"key\")]",
                    id.key
                ),
            ));
        }
        keys.push(&id.key);
    }
    for initial in &model.initials {
        if initial.on_id {
            errors.at(
                &initial.attr,
                format!(
                    "`{}` is an #[id]: its value comes from the constructor's arguments; remove #[initial(..)]",
                    initial.field
                ),
            );
        } else if !model.constructor {
            errors.at(
                &initial.attr,
                "#[initial(..)] gives the generated constructor's value, but this state has none (`constructor = false`): set the value in your own constructor, or drop `constructor = false`",
            );
        }
    }
}
