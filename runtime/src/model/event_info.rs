//! What the catalog knows of an event type.

/// An event type as the catalog knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventInfo {
    /// Stable type name.
    pub name: &'static str,
    /// Schema version.
    pub version: u32,
    /// Tag keys it carries.
    pub tag_keys: &'static [&'static str],
    /// Groups it belongs to.
    pub groups: &'static [&'static str],
    /// Whether it is an integration event (`#[event(public)]`).
    pub public: bool,
    /// The Rust path of the module that declares it.
    pub module: &'static str,
}
