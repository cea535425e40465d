//! What the macros' generated code names, and nothing else uses: not part of the API.

#[cfg(feature = "inventory")]
pub use inventory;
pub use serde;
pub use serde_json;

pub use crate::decide::const_lists::{any_contains, contains, contains_all, guards_something};
pub use crate::decide::foldable::{
    concat_types, decode_folded, query_types, reads_every_type, shares_any, total_len,
};
pub use crate::model::dedup_tags;

/// A state that keeps snapshots: stored as JSON through its serde derives.
#[diagnostic::on_unimplemented(
    message = "`{Self}` keeps snapshots (`snapshot_every`), so it must derive `Serialize` and `Deserialize`",
    label = "no serde derives for this state's snapshots",
    note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to the state, or drop `snapshot_every`"
)]
pub trait SnapshotState: Sized {
    /// The state as snapshot bytes.
    fn encode(&self) -> Result<Vec<u8>, String>;
    /// The state from snapshot bytes.
    fn decode(bytes: &[u8]) -> Result<Self, String>;
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> SnapshotState for T {
    /// Refuses a state its decode would not give back (a NaN, an infinity, nesting
    /// past serde_json's reader), like an event payload: the engine then keeps no
    /// snapshot of it, with a warning, and folds it from the log.
    fn encode(&self) -> Result<Vec<u8>, String> {
        // The path of a refused field starts at the state's name: `Balance.total`.
        let path = std::any::type_name::<T>();
        let path = path.split('<').next().unwrap_or(path);
        let name = path.rsplit("::").next().unwrap_or(path);
        crate::model::Codec::Json
            .encode(name, self)
            .map(|payload| payload.bytes)
            .map_err(|e| e.reason.to_string())
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// A decision with an idempotency key: fingerprinted through its serde derive.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has an idempotency key (`idempotency = ..`), so it must derive `Serialize`",
    label = "no `Serialize` to fingerprint this decision's content with",
    note = "a request that reuses a key with other content is told apart by a fingerprint of the decision's serialized fields: add `#[derive(serde::Serialize)]` to the decision (`#[serde(skip)]` leaves a field out), or drop `idempotency`"
)]
pub trait Fingerprinted {
    /// The fingerprint of the decision named `decision`; `None` when its `Serialize`
    /// fails (logged: its key is then checked without fingerprint).
    fn fingerprint(&self, decision: &str) -> Option<crate::model::idempotency::Fingerprint>;
}

impl<T: serde::Serialize> Fingerprinted for T {
    fn fingerprint(&self, decision: &str) -> Option<crate::model::idempotency::Fingerprint> {
        match crate::model::idempotency::Fingerprint::of(decision, self) {
            Ok(fingerprint) => Some(fingerprint),
            Err(e) => {
                tracing::warn!(decision, error = %crate::ErrorChain(&e), "the decision's key is checked without fingerprint");
                None
            }
        }
    }
}

/// The starting value of a state field that is not an `#[id]`: its `Default`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no default, so the generated `new` cannot start this state field",
    label = "no `Default` for this field's type",
    note = "give the field its starting value with `#[initial(expr)]`, or a type with `Default` (such as `Option<{Self}>`), or write your own constructor and put `#[state(constructor = false)]` on the state"
)]
pub trait FieldDefault {
    /// The field's starting value.
    fn field_default() -> Self;
}

impl<T: Default> FieldDefault for T {
    fn field_default() -> Self {
        T::default()
    }
}

/// A state's field, compared to tell whether two states start from the same value
/// (see [`StateId::same_start`](crate::StateId::same_start)).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be compared with `==`, and a state's fields must be",
    label = "no `PartialEq`",
    note = "a serial lane or a snapshot stands in for a state only when it was folded from the same starting value, which factum checks field by field: derive or implement `PartialEq` for `{Self}`"
)]
pub trait StartValue {
    /// Whether `self` equals `other`.
    fn same_value(&self, other: &Self) -> bool;
}

impl<T: PartialEq> StartValue for T {
    fn same_value(&self, other: &Self) -> bool {
        self == other
    }
}
