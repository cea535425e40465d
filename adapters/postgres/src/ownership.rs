//! Which schemas a store may take, and drop: never PostgreSQL's own, never `public`,
//! never one holding anything but a factum store.
//!
//! A store creates its schema if it is missing and drops it whole on
//! [`drop_schema`](crate::PostgresStore::drop_schema), so a schema it takes must be its
//! own. `public` is refused by name although it may be empty: it is the database's
//! default schema (the first of every role's `search_path`), where other applications and
//! tools put their tables without naming a schema, so a store there would mix its tables
//! with theirs and `drop_schema()` would take theirs along. An existing schema is a store
//! if it has the `factum_migrations` table (whatever read models applications added next
//! to it); one that exists without it may be taken only if it holds nothing.

use tokio_postgres::GenericClient;

use crate::PostgresError;

/// What an existing schema holds, read from the catalogs.
pub(crate) enum Contents {
    /// There is no schema of that name.
    Missing,
    /// It holds a factum store (its migrations table).
    Store,
    /// It exists and holds nothing.
    Empty,
    /// It holds other objects and no factum store: described, the first few and a count.
    Foreign(String),
}

/// Refuses PostgreSQL's schemas and `public` (in any case: quoted, `"PG_Catalog"` would
/// be another schema, but never one a store should want).
pub(crate) fn check_name(schema: &str) -> Result<(), PostgresError> {
    let lower = schema.to_ascii_lowercase();
    let reason = if lower == "information_schema" || lower.starts_with("pg_") {
        "it is a system schema of PostgreSQL (pg_catalog, information_schema, pg_toast, \
         pg_temp_*: every name starting with pg_)"
    } else if lower == "public" {
        "public is the database's default schema, shared with other applications, and a \
         store drops its schema whole on drop_schema()"
    } else {
        return Ok(());
    };
    Err(PostgresError::ReservedSchema {
        schema: schema.to_owned(),
        reason,
    })
}

/// The first objects a foreign schema's error names.
const SHOWN: i64 = 5;

/// What `schema` holds. Every object of a schema depends on it in `pg_depend` (kind
/// `n`): tables, views, sequences, functions, types, operators...; indexes and triggers
/// through their table.
pub(crate) async fn contents(
    client: &impl GenericClient,
    schema: &str,
) -> Result<Contents, PostgresError> {
    let row = client
        .query_one(
            "WITH objects AS ( \
               SELECT d.classid, d.objid, d.objsubid FROM pg_depend d \
               JOIN pg_namespace n ON d.refclassid = 'pg_namespace'::regclass \
                 AND d.refobjid = n.oid AND d.deptype = 'n' \
               WHERE n.nspname = $1) \
             SELECT \
               EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), \
               EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                       WHERE n.nspname = $1 AND c.relname = 'factum_migrations' \
                         AND c.relkind IN ('r', 'p')), \
               (SELECT count(*) FROM objects), \
               ARRAY(SELECT pg_describe_object(classid, objid, objsubid) FROM objects \
                     ORDER BY 1 LIMIT $2)",
            &[&schema, &SHOWN],
        )
        .await?;
    let (exists, store, count, shown): (bool, bool, i64, Vec<String>) = (
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
    );
    Ok(match (exists, store, count) {
        (false, _, _) => Contents::Missing,
        (true, true, _) => Contents::Store,
        (true, false, 0) => Contents::Empty,
        (true, false, count) => {
            let more = if count > SHOWN { ", ..." } else { "" };
            Contents::Foreign(format!(
                "{count} object{} of another application ({}{more})",
                if count == 1 { "" } else { "s" },
                shown.join(", ")
            ))
        }
    })
}

/// Refuses to migrate `schema` unless it is missing, empty or a store.
pub(crate) async fn check_takeable(
    client: &impl GenericClient,
    schema: &str,
) -> Result<(), PostgresError> {
    match contents(client, schema).await? {
        Contents::Missing | Contents::Store | Contents::Empty => Ok(()),
        Contents::Foreign(found) => Err(PostgresError::ForeignSchema {
            schema: schema.to_owned(),
            found,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_schemas_and_public_are_reserved() {
        for name in [
            "pg_catalog",
            "information_schema",
            "pg_toast",
            "pg_temp_3",
            "pg_toast_temp_1",
            "PG_x",
            "public",
            "Public",
        ] {
            assert!(
                matches!(check_name(name), Err(PostgresError::ReservedSchema { .. })),
                "{name}"
            );
        }
        for name in ["shop", "pgx", "public_events", "_pg_", "factum"] {
            assert!(check_name(name).is_ok(), "{name}");
        }
    }
}
