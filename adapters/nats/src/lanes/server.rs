//! The server version the lanes need.

use super::LanesError;

/// The oldest NATS server the lanes work with: pinned-client priority groups arrived in
/// 2.11.
pub const MIN_SERVER_VERSION: &str = "2.11.0";

/// Checks that the server `client` is connected to is [`MIN_SERVER_VERSION`] or newer.
pub fn check_server(client: &async_nats::Client) -> Result<(), LanesError> {
    let found = client.server_info().version;
    if supports_pinned_consumers(&found) {
        Ok(())
    } else {
        Err(LanesError::ServerTooOld {
            found,
            needed: MIN_SERVER_VERSION,
        })
    }
}

/// Whether `version` (`major.minor.patch`, possibly with a suffix) is 2.11 or newer.
fn supports_pinned_consumers(version: &str) -> bool {
    let mut numbers = version
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .map(|part| part.parse::<u32>().ok());
    match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (2, 11),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::supports_pinned_consumers;

    #[test]
    fn versions() {
        assert!(!supports_pinned_consumers("2.9.10"));
        assert!(!supports_pinned_consumers("2.10.22"));
        assert!(supports_pinned_consumers("2.11.0"));
        assert!(supports_pinned_consumers("2.15.1"));
        assert!(supports_pinned_consumers("v2.12.0-beta.1"));
        assert!(supports_pinned_consumers("3.0.0"));
        assert!(!supports_pinned_consumers("garbage"));
    }
}
