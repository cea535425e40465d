//! TLS as the URL's `sslmode` asks: with the `rustls` feature, rustls verifying the server
//! against the platform's trusted roots or the application's `ClientConfig`; without it,
//! plaintext only, and a URL requiring TLS refused.
//!
//! Every connection of a store (both pools, the LISTEN and NOTIFY connections, the cancel
//! requests of partition locks, the migration's) connects with the one [`Tls`] and
//! [`Config`] [`connector`] returns.

use tokio_postgres::Config;
use tokio_postgres::config::SslMode;

use crate::{PostgresError, PostgresOptions};

/// The connector of this build.
#[cfg(feature = "rustls")]
type Connector = tokio_postgres_rustls::MakeRustlsConnect;
/// The connector of this build: no TLS.
#[cfg(not(feature = "rustls"))]
type Connector = tokio_postgres::NoTls;

/// How the store's connections negotiate TLS.
#[derive(Clone)]
pub(crate) struct Tls(Connector);

impl Tls {
    /// The connector a connection is opened with.
    pub(crate) fn connector(&self) -> Connector {
        // A copy without the feature, a shared config with it.
        #[allow(clippy::clone_on_copy)]
        self.0.clone()
    }
}

/// The connector for `config` (of the server named `url` in messages), which it adjusts.
///
/// Without the `rustls` feature: `sslmode=require` is [`PostgresError::TlsNotEnabled`]
/// (never a plaintext connection); `prefer` and `disable` connect in plaintext.
#[cfg(not(feature = "rustls"))]
pub(crate) fn connector(
    config: &mut Config,
    _options: &PostgresOptions,
    url: &str,
) -> Result<Tls, PostgresError> {
    match config.get_ssl_mode() {
        SslMode::Disable | SslMode::Prefer => Ok(Tls(tokio_postgres::NoTls)),
        _ => Err(PostgresError::TlsNotEnabled {
            url: url.to_owned(),
        }),
    }
}

/// The connector for `config` (of the server named `url` in messages), which it adjusts.
///
/// With the `rustls` feature:
/// - `sslmode=disable`: plaintext;
/// - `sslmode=prefer` (tokio-postgres's default): TLS when the server offers it if the
///   application passed a `ClientConfig` ([`PostgresOptions::tls`]), else plaintext, as
///   without the feature: an opportunistic TLS session that would fail on any
///   certificate the platform does not trust (every self-signed one) or accept one it
///   cannot verify would be a trap or a false comfort;
/// - `sslmode=require`: TLS, verified with the application's `ClientConfig` or else the
///   platform's trusted roots (and the server's name); a server without TLS, or whose
///   certificate does not verify, fails to connect.
#[cfg(feature = "rustls")]
pub(crate) fn connector(
    config: &mut Config,
    options: &PostgresOptions,
    _url: &str,
) -> Result<Tls, PostgresError> {
    use tokio_postgres_rustls::MakeRustlsConnect;

    let mode = config.get_ssl_mode();
    if let Some(client) = &options.tls {
        return Ok(Tls(MakeRustlsConnect::new(client.as_ref().clone())));
    }
    let roots = match mode {
        SslMode::Disable => rustls::RootCertStore::empty(),
        SslMode::Prefer => {
            config.ssl_mode(SslMode::Disable);
            rustls::RootCertStore::empty()
        }
        _ => platform_roots()?,
    };
    // With empty roots the config is never used: the mode is `disable`.
    Ok(Tls(MakeRustlsConnect::new(client_config(roots)?)))
}

/// A client config trusting `roots`, on the process's default crypto provider if the
/// application installed one, else ring's.
#[cfg(feature = "rustls")]
fn client_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, PostgresError> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| std::sync::Arc::new(rustls::crypto::ring::default_provider()));
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PostgresError::Tls {
            reason: format!("the crypto provider supports no safe TLS version ({e})"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The certificates the platform trusts (its CA store, or the bundle `SSL_CERT_FILE` or
/// the directory `SSL_CERT_DIR` names).
#[cfg(feature = "rustls")]
fn platform_roots() -> Result<rustls::RootCertStore, PostgresError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(PostgresError::Tls {
            reason: format!(
                "no trusted root certificate found in the platform's store{}; install the \
                 CA certificates (e.g. the ca-certificates package), point SSL_CERT_FILE at a \
                 PEM bundle, or pass a rustls::ClientConfig as PostgresOptions::tls",
                if errors.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", errors.join("; "))
                }
            ),
        });
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> Config {
        url.parse()
            .unwrap_or_else(|e| panic!("{url} does not parse: {e}"))
    }

    #[cfg(not(feature = "rustls"))]
    #[test]
    fn without_the_feature_require_is_refused_and_the_rest_is_plaintext() {
        let options = PostgresOptions::new("", "s");
        let mut required = config("postgres://h/db?sslmode=require");
        match connector(&mut required, &options, "postgres://h/db?sslmode=require") {
            Err(e @ PostgresError::TlsNotEnabled { .. }) => {
                let text = e.to_string();
                assert!(text.contains("`rustls` feature"), "{text}");
                assert!(text.contains("sslmode=require"), "{text}");
            }
            Err(other) => {
                panic!("sslmode=require must be refused with TlsNotEnabled, got {other:?}")
            }
            Ok(_) => panic!("sslmode=require must be refused without the feature"),
        }
        for url in [
            "postgres://h/db",
            "postgres://h/db?sslmode=prefer",
            "postgres://h/db?sslmode=disable",
        ] {
            assert!(connector(&mut config(url), &options, url).is_ok(), "{url}");
        }
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn with_the_feature_prefer_is_plaintext_unless_the_application_passed_a_config() {
        let mut options = PostgresOptions::new("", "s");
        let mut preferred = config("postgres://h/db");
        assert!(connector(&mut preferred, &options, "").is_ok());
        assert_eq!(preferred.get_ssl_mode(), SslMode::Disable);
        let mut disabled = config("postgres://h/db?sslmode=disable");
        assert!(connector(&mut disabled, &options, "").is_ok());
        assert_eq!(disabled.get_ssl_mode(), SslMode::Disable);

        let client = client_config(rustls::RootCertStore::empty())
            .unwrap_or_else(|e| panic!("a client config failed: {e}"));
        options.tls = Some(std::sync::Arc::new(client));
        let mut preferred = config("postgres://h/db?sslmode=prefer");
        assert!(connector(&mut preferred, &options, "").is_ok());
        assert_eq!(preferred.get_ssl_mode(), SslMode::Prefer);
        let mut required = config("postgres://h/db?sslmode=require");
        assert!(connector(&mut required, &options, "").is_ok());
        assert_eq!(required.get_ssl_mode(), SslMode::Require);
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn with_the_feature_require_trusts_the_platforms_roots() {
        // The machine running the tests has a CA store (the tests reach the registries
        // over TLS); when it has none, the error says how to provide one.
        match platform_roots() {
            Ok(roots) => assert!(!roots.is_empty()),
            Err(e) => assert!(e.to_string().contains("SSL_CERT_FILE"), "{e}"),
        }
        let options = PostgresOptions::new("", "s");
        let mut required = config("postgres://h/db?sslmode=require");
        if connector(&mut required, &options, "").is_ok() {
            assert_eq!(required.get_ssl_mode(), SslMode::Require);
        }
    }
}
