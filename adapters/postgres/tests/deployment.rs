//! Running in a deployment: migrations as a step of their own, an application's own pool
//! or connection config, TLS as the URL's `sslmode` asks.

mod common;

use factum::EventStore;
use factum_postgres::{PostgresError, PostgresOptions, PostgresStore, SCHEMA_VERSION};

/// Options for a fresh schema (and its guard), migrated on connect only if `migrate`.
fn options(what: &str, migrate: bool) -> (PostgresOptions, common::SchemaGuard) {
    let schema = common::unique_schema(what);
    let guard = common::SchemaGuard {
        schema: schema.clone(),
    };
    let options = PostgresOptions {
        migrate_on_connect: migrate,
        application_name: common::application_name(&schema),
        ..PostgresOptions::from_env(&schema)
    };
    (options, guard)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_migrate_on_connect_a_fresh_schema_is_refused_until_migrated() {
    let (options, _guard) = options("no_migrate", false);
    let refused = PostgresStore::connect_with(options.clone()).await;
    match &refused {
        Err(e @ PostgresError::SchemaMissing { schema }) => {
            assert_eq!(schema, &options.schema);
            let text = e.to_string();
            assert!(text.contains("PostgresStore::migrate"), "{text}");
            assert!(e.is_retryable());
        }
        other => panic!("a missing schema must be refused, got {other:?}"),
    }
    // Checking changed nothing: the schema is still missing.
    let exists: bool = common::connect_raw()
        .await
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&options.schema],
        )
        .await
        .unwrap_or_else(|e| panic!("looking for the schema failed: {e}"))
        .get(0);
    assert!(
        !exists,
        "opening without migrating must not create the schema"
    );

    PostgresStore::migrate(&options)
        .await
        .unwrap_or_else(|e| panic!("migrating failed: {e}"));
    // Again: nothing to do.
    PostgresStore::migrate(&options)
        .await
        .unwrap_or_else(|e| panic!("migrating a second time failed: {e}"));
    let store = PostgresStore::connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("opening the migrated schema failed: {e}"));
    appends_and_reads_back(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_migrate_on_connect_an_older_schema_is_refused_until_migrated() {
    let (options, _guard) = options("too_old", true);
    drop(
        PostgresStore::connect_with(options.clone())
            .await
            .unwrap_or_else(|e| panic!("opening failed: {e}")),
    );
    // As if the previous release had migrated it: without the newest step's record.
    common::connect_raw()
        .await
        .execute(
            &format!(
                "DELETE FROM \"{}\".factum_migrations WHERE version = $1",
                options.schema
            ),
            &[&SCHEMA_VERSION],
        )
        .await
        .unwrap_or_else(|e| panic!("faking an older version failed: {e}"));
    let checked = PostgresOptions {
        migrate_on_connect: false,
        ..options.clone()
    };
    match &PostgresStore::connect_with(checked.clone()).await {
        Err(e @ PostgresError::SchemaTooOld { found, needed, .. }) => {
            assert_eq!((*found, *needed), (SCHEMA_VERSION - 1, SCHEMA_VERSION));
            assert!(e.to_string().contains("run the migration"), "{e}");
        }
        other => panic!("an older schema must be refused, got {other:?}"),
    }
    PostgresStore::migrate(&checked)
        .await
        .unwrap_or_else(|e| panic!("migrating failed: {e}"));
    PostgresStore::connect_with(checked)
        .await
        .unwrap_or_else(|e| panic!("opening the migrated schema failed: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_migrate_on_connect_a_foreign_schema_is_still_refused() {
    let (options, _guard) = options("foreign_check", false);
    common::connect_raw()
        .await
        .batch_execute(&format!(
            "CREATE SCHEMA \"{0}\"; CREATE TABLE \"{0}\".users (id int)",
            options.schema
        ))
        .await
        .unwrap_or_else(|e| panic!("creating a foreign schema failed: {e}"));
    let opened = PostgresStore::connect_with(options.clone()).await;
    assert!(
        matches!(opened, Err(PostgresError::ForeignSchema { .. })),
        "{opened:?}"
    );
    let migrated = PostgresStore::migrate(&options).await;
    assert!(
        matches!(migrated, Err(PostgresError::ForeignSchema { .. })),
        "{migrated:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_runs_on_the_applications_own_pool() {
    use factum_postgres::deadpool_postgres::{Manager, Pool};

    let (options, _guard) = options("own_pool", true);
    let mut config: tokio_postgres::Config = options
        .url
        .parse()
        .unwrap_or_else(|e| panic!("the test URL does not parse: {e}"));
    let pool_name = format!("{}-app", options.application_name);
    config.application_name(&pool_name);
    let pool = Pool::builder(Manager::new(config.clone(), tokio_postgres::NoTls))
        .max_size(2)
        .build()
        .unwrap_or_else(|e| panic!("building the pool failed: {e}"));
    let store = PostgresStore::connect_with_pool(
        pool.clone(),
        PostgresOptions {
            migrate_on_connect: true,
            ..PostgresOptions::from_config(config, &options.schema)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("opening on the pool failed: {e}"));
    // It migrated through the pool: the pool opened its first connection.
    assert_eq!(pool.status().size, 1);
    appends_and_reads_back(&store).await;
    // The statements ran on the application's connections, named as it named them.
    let client = pool
        .get()
        .await
        .unwrap_or_else(|e| panic!("a connection of the pool failed: {e}"));
    let name: String = client
        .query_one("SELECT current_setting('application_name')", &[])
        .await
        .unwrap_or_else(|e| panic!("reading application_name failed: {e}"))
        .get(0);
    assert_eq!(name, pool_name);
    drop(client);

    // The partition locks open their connections from the options, beside the pool.
    let lock = factum::PartitionLocks::lock_partition(&store, "p")
        .await
        .unwrap_or_else(|e| panic!("a partition lock failed: {e}"));
    assert!(lock.is_some());
    assert_eq!(
        pool.status().size,
        1,
        "a lock must not take a connection of the pool"
    );
    drop(lock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_opens_from_a_config() {
    let (options, _guard) = options("from_config", true);
    let config: tokio_postgres::Config = options
        .url
        .parse()
        .unwrap_or_else(|e| panic!("the test URL does not parse: {e}"));
    let store = PostgresStore::connect_with(PostgresOptions::from_config(config, &options.schema))
        .await
        .unwrap_or_else(|e| panic!("opening from a config failed: {e}"));
    store
        .append(vec![common::event("A", &[])], None)
        .await
        .unwrap_or_else(|e| panic!("an append failed: {e}"));
    assert_eq!(common::read_all(&store).await.len(), 1);

    // An unreachable server named by a config is named in the error, without a password.
    let mut unreachable = tokio_postgres::Config::new();
    unreachable
        .host("127.0.0.1")
        .port(1)
        .user("nobody")
        .password("secret")
        .dbname("test");
    match PostgresStore::connect_with(PostgresOptions::from_config(unreachable, "unreachable"))
        .await
    {
        Err(e @ PostgresError::Connect { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("host=127.0.0.1 port=1 user=nobody dbname=test"),
                "{text}"
            );
            assert!(!format!("{e:?}").contains("secret"), "{e:?}");
        }
        other => panic!("an unreachable server must be a connect error, got {other:?}"),
    }
}

/// An append to `store`, a fresh schema's first, is what a read of everything gives back.
async fn appends_and_reads_back(store: &PostgresStore) {
    let written = store
        .append(vec![common::event("A", &[])], None)
        .await
        .unwrap_or_else(|e| panic!("an append failed: {e}"));
    let read: Vec<_> = common::read_all(store)
        .await
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(read, written.positions);
}

/// The test server's URL with `sslmode` set to `mode`.
fn with_sslmode(url: &str, mode: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}sslmode={mode}")
}

#[cfg(not(feature = "rustls"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_rustls_feature_sslmode_require_is_refused_before_connecting() {
    let (options, _guard) = options("no_tls", true);
    let required = PostgresOptions {
        url: with_sslmode(&options.url, "require"),
        ..options.clone()
    };
    for refused in [
        PostgresStore::connect_with(required.clone())
            .await
            .map(drop),
        PostgresStore::migrate(&required).await,
    ] {
        match refused {
            Err(e @ PostgresError::TlsNotEnabled { .. }) => {
                assert!(e.to_string().contains("enable its `rustls` feature"), "{e}");
                assert!(!e.is_retryable());
            }
            other => panic!("sslmode=require without TLS must be refused, got {other:?}"),
        }
    }
    for mode in ["prefer", "disable"] {
        connected_in(&options, mode).await;
    }
}

/// A store on `options` with `sslmode=mode`, which takes an append.
async fn connected_in(options: &PostgresOptions, mode: &str) -> PostgresStore {
    let store = PostgresStore::connect_with(PostgresOptions {
        url: with_sslmode(&options.url, mode),
        ..options.clone()
    })
    .await
    .unwrap_or_else(|e| panic!("sslmode={mode} must connect: {e}"));
    store
        .append(vec![common::event("A", &[])], None)
        .await
        .unwrap_or_else(|e| panic!("an append with sslmode={mode} failed: {e}"));
    store
}

#[cfg(feature = "rustls")]
mod tls {
    use std::sync::Arc;

    use factum::listen::ListenerStore;
    use factum_postgres::rustls;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    use super::*;

    /// Whether each of the test store's connections (by `application_name` prefix) is
    /// encrypted, as the server sees them.
    async fn encrypted(application_name: &str) -> Vec<(String, bool)> {
        common::connect_raw()
            .await
            .query(
                "SELECT a.application_name, s.ssl FROM pg_stat_activity a \
                 JOIN pg_stat_ssl s ON s.pid = a.pid \
                 WHERE a.application_name LIKE $1 || '%' ORDER BY 1",
                &[&application_name],
            )
            .await
            .unwrap_or_else(|e| panic!("reading pg_stat_ssl failed: {e}"))
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sslmode_require_verifies_the_server_against_the_platforms_roots() {
        let (options, _guard) = options("tls_roots", true);
        let required = PostgresOptions {
            url: with_sslmode(&options.url, "require"),
            ..options.clone()
        };
        // The test server's certificate (none, or a self-signed one) is no platform's.
        match PostgresStore::connect_with(required).await {
            Err(e @ PostgresError::Connect { .. }) => {
                let chain = factum::ErrorChain(&e).to_string();
                assert!(chain.contains("TLS"), "{chain}");
            }
            Err(e @ PostgresError::Tls { .. }) => {
                assert!(e.to_string().contains("SSL_CERT_FILE"), "{e}");
            }
            other => panic!("an untrusted server must be refused, got {other:?}"),
        }
        // prefer (without a config of the application's) and disable connect in plaintext.
        for mode in ["prefer", "disable"] {
            let store = connected_in(&options, mode).await;
            let seen = encrypted(&options.application_name).await;
            assert!(seen.iter().all(|(_, ssl)| !ssl), "{seen:?}");
            drop(store);
        }
    }

    /// The test server's certificate, if it has TLS on and its certificate file is
    /// readable here (a server on this machine).
    async fn server_certificate() -> Option<CertificateDer<'static>> {
        let client = common::connect_raw().await;
        let on: String = client.query_one("SHOW ssl", &[]).await.ok()?.get(0);
        if on != "on" {
            return None;
        }
        let file: String = client
            .query_one("SHOW ssl_cert_file", &[])
            .await
            .ok()?
            .get(0);
        CertificateDer::from_pem_file(file).ok()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sslmode_require_with_the_applications_config_encrypts_every_connection() {
        let Some(certificate) = server_certificate().await else {
            eprintln!(
                "skipped: the test server has no TLS, or its certificate is not readable here"
            );
            return;
        };
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(certificate)
            .unwrap_or_else(|e| panic!("the server's certificate is no trust anchor: {e}"));
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("no TLS version: {e}"))
        .with_root_certificates(roots)
        .with_no_client_auth();

        let (options, _guard) = options("tls_config", true);
        let base: tokio_postgres::Config = options
            .url
            .parse()
            .unwrap_or_else(|e| panic!("the test URL does not parse: {e}"));
        // The name the server's certificate holds (Debian's snake-oil certificate is
        // for localhost), reached at the address of the test URL.
        let mut config = tokio_postgres::Config::new();
        config
            .ssl_mode(tokio_postgres::config::SslMode::Require)
            .host("localhost")
            .hostaddr(std::net::Ipv4Addr::LOCALHOST.into())
            .port(base.get_ports().first().copied().unwrap_or(5432))
            .user(base.get_user().unwrap_or("postgres"))
            .dbname(base.get_dbname().unwrap_or("test"));
        if let Some(password) = base.get_password() {
            config.password(password);
        }
        let options = PostgresOptions {
            tls: Some(Arc::new(client)),
            ..PostgresOptions::from_config(config, &options.schema)
        };
        let name = common::application_name(&options.schema);
        let options = PostgresOptions {
            application_name: name.clone(),
            ..options
        };
        let store = match PostgresStore::connect_with(options.clone()).await {
            Ok(store) => store,
            // The server's certificate names another host than localhost.
            Err(e)
                if factum::ErrorChain(&e)
                    .to_string()
                    .contains("NotValidForName") =>
            {
                eprintln!("skipped: the test server's certificate is not for localhost: {e}");
                return;
            }
            Err(e) => panic!(
                "sslmode=require with the server's certificate failed: {}",
                factum::ErrorChain(&e)
            ),
        };
        let mut head = store.watch_head();
        store
            .append(vec![common::event("A", &[])], None)
            .await
            .unwrap_or_else(|e| panic!("an append over TLS failed: {e}"));
        let lock = factum::PartitionLocks::lock_partition(&store, "p")
            .await
            .unwrap_or_else(|e| panic!("a partition lock over TLS failed: {e}"));
        assert!(lock.is_some());
        // The listening connection is up once it forwarded the head.
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            head.wait_for(Option::is_some),
        )
        .await
        .unwrap_or_else(|_| panic!("the head never arrived"))
        .unwrap_or_else(|e| panic!("the head channel closed: {e}"));
        let seen = encrypted(&name).await;
        assert!(
            seen.len() >= 3,
            "the pool, the lock and the listener: {seen:?}"
        );
        assert!(seen.iter().all(|(_, ssl)| *ssl), "{seen:?}");
        drop(lock);

        PostgresStore::migrate(&options)
            .await
            .unwrap_or_else(|e| panic!("migrating over TLS failed: {e}"));
    }
}
