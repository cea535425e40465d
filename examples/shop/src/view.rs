//! The shop's read model: coupons with their uses, carts with their coupon. A projection
//! keeps it in the store's own database, exactly once (its tables and its checkpoint move
//! in one transaction), and the API reads it back.

use std::sync::{Arc, Mutex, PoisonError};

use factum::listen::HandlerError;
use factum::{Event, EventSet, Query, QueryItem, StoredEvent};
use factum_examples::coupons::events::{self, CartOpened, CouponApplied, CouponIssued};
use factum_postgres::PgProjection;
use factum_sqlite::SqliteProjection;
use serde::Serialize;

/// The projection's name: the key of its checkpoint.
pub const NAME: &str = "shop-view";

/// A coupon as the read model has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CouponView {
    /// The code.
    pub code: String,
    /// How many carts may use it.
    pub uses: u32,
    /// How many did.
    pub used: u32,
    /// How many still may.
    pub remaining: u32,
}

/// A cart as the read model has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CartView {
    /// The cart id.
    pub cart: String,
    /// The coupon applied to it, if any.
    pub coupon: Option<String>,
}

/// The projection writing the read model; `prefix` qualifies its tables (`""` on
/// SQLite, `"schema".` on PostgreSQL, so each store's read model sits next to its log).
#[derive(Clone, Debug)]
pub struct ShopView {
    prefix: String,
    /// The statements that apply events, written once for the store's dialect.
    issue: String,
    open: String,
    use_coupon: String,
    give_coupon: String,
}

impl ShopView {
    /// The projection for SQLite.
    pub fn sqlite() -> Self {
        // SQLite reads `$n` as a name, bound in order of appearance: `?n` it binds by
        // number, as PostgreSQL does `$n`.
        ShopView::with(String::new(), |sql| sql.replace('$', "?"))
    }

    /// The projection for PostgreSQL, its tables in `schema`.
    pub fn postgres(schema: &str) -> Self {
        ShopView::with(format!("\"{schema}\"."), |sql| sql)
    }

    fn with(prefix: String, dialect: fn(String) -> String) -> Self {
        let p = &prefix;
        ShopView {
            issue: dialect(format!(
                "INSERT INTO {p}shop_coupons (code, uses, used) VALUES ($1, $2, 0)
                 ON CONFLICT (code) DO NOTHING"
            )),
            open: dialect(format!(
                "INSERT INTO {p}shop_carts (cart) VALUES ($1) ON CONFLICT (cart) DO NOTHING"
            )),
            use_coupon: dialect(format!(
                "UPDATE {p}shop_coupons SET used = used + 1 WHERE code = $1"
            )),
            give_coupon: dialect(format!(
                "UPDATE {p}shop_carts SET coupon = $2 WHERE cart = $1"
            )),
            prefix,
        }
    }

    /// The tables, created if missing (the same statement on both stores).
    pub fn create_tables(&self) -> String {
        let p = &self.prefix;
        format!(
            "CREATE TABLE IF NOT EXISTS {p}shop_coupons (
                 code TEXT PRIMARY KEY, uses BIGINT NOT NULL, used BIGINT NOT NULL);
             CREATE TABLE IF NOT EXISTS {p}shop_carts (cart TEXT PRIMARY KEY, coupon TEXT);"
        )
    }

    fn drop_tables(&self) -> String {
        let p = &self.prefix;
        format!("DELETE FROM {p}shop_coupons; DELETE FROM {p}shop_carts;")
    }

    /// The statements and parameters that apply `event`.
    fn statements(&self, event: &StoredEvent) -> Result<Vec<(&str, Vec<Value>)>, HandlerError> {
        let event = events::Event::from_stored(event).map_err(HandlerError::permanent)?;
        Ok(match event {
            events::Event::CouponIssued(CouponIssued { coupon, uses }) => vec![(
                self.issue.as_str(),
                vec![Value::Text(coupon), Value::Int(i64::from(uses))],
            )],
            events::Event::CartOpened(CartOpened { cart }) => {
                vec![(self.open.as_str(), vec![Value::Text(cart)])]
            }
            events::Event::CouponApplied(CouponApplied { coupon, cart }) => vec![
                (self.use_coupon.as_str(), vec![Value::Text(coupon.clone())]),
                (
                    self.give_coupon.as_str(),
                    vec![Value::Text(cart), Value::Text(coupon)],
                ),
            ],
            // Outside the query: nothing to do.
            _ => Vec::new(),
        })
    }
}

/// A statement parameter.
enum Value {
    Text(String),
    Int(i64),
}

/// The events the read model is made of.
fn query() -> Query {
    Query::item(QueryItem::types([
        CouponIssued::TYPE,
        CouponApplied::TYPE,
        CartOpened::TYPE,
    ]))
}

impl SqliteProjection for ShopView {
    fn name(&self) -> &str {
        NAME
    }

    fn query(&self) -> Query {
        query()
    }

    fn apply(
        &mut self,
        conn: &rusqlite::Connection,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        for (sql, values) in self.statements(event)? {
            let params: Vec<&dyn rusqlite::ToSql> = values
                .iter()
                .map(|v| match v {
                    Value::Text(t) => t as &dyn rusqlite::ToSql,
                    Value::Int(i) => i as &dyn rusqlite::ToSql,
                })
                .collect();
            conn.execute(sql, params.as_slice())
                .map_err(HandlerError::transient)?;
        }
        Ok(())
    }

    fn reset(&mut self, conn: &rusqlite::Connection) -> Result<(), HandlerError> {
        conn.execute_batch(&self.drop_tables())
            .map_err(HandlerError::transient)
    }
}

impl PgProjection for ShopView {
    fn name(&self) -> &str {
        NAME
    }

    fn query(&self) -> Query {
        query()
    }

    async fn apply(
        &mut self,
        client: &tokio_postgres::Client,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        for (sql, values) in self.statements(event)? {
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
                .iter()
                .map(|v| match v {
                    Value::Text(t) => t as &(dyn tokio_postgres::types::ToSql + Sync),
                    Value::Int(i) => i as &(dyn tokio_postgres::types::ToSql + Sync),
                })
                .collect();
            client
                .execute(sql, params.as_slice())
                .await
                .map_err(HandlerError::transient)?;
        }
        Ok(())
    }

    async fn reset(&mut self, client: &tokio_postgres::Client) -> Result<(), HandlerError> {
        client
            .batch_execute(&self.drop_tables())
            .await
            .map_err(HandlerError::transient)
    }
}

/// Why the read model could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the shop's read model")]
pub struct ReadError(#[source] Box<dyn std::error::Error + Send + Sync>);

/// Where the API reads the read model from.
#[derive(Clone)]
pub enum ReadModel {
    /// A connection of its own to the store's SQLite file.
    Sqlite(Arc<Mutex<rusqlite::Connection>>),
    /// The store's PostgreSQL pool, the tables in `schema`.
    Postgres {
        /// The pool the store runs on.
        pool: factum_postgres::deadpool_postgres::Pool,
        /// The store's schema, as the store checked it.
        schema: String,
    },
}

impl ReadModel {
    /// The coupon `code`, if issued.
    pub async fn coupon(&self, code: &str) -> Result<Option<CouponView>, ReadError> {
        let row = self
            .row(
                "SELECT code, uses, used FROM {p}shop_coupons WHERE code = $1",
                code,
                |get| {
                    let (uses, used) = (get.int(1)?, get.int(2)?);
                    Ok(CouponView {
                        code: get.text(0)?,
                        uses,
                        used,
                        remaining: uses.saturating_sub(used),
                    })
                },
            )
            .await?;
        Ok(row)
    }

    /// The cart `cart`, if open.
    pub async fn cart(&self, cart: &str) -> Result<Option<CartView>, ReadError> {
        self.row(
            "SELECT cart, coupon FROM {p}shop_carts WHERE cart = $1",
            cart,
            |get| {
                Ok(CartView {
                    cart: get.text(0)?,
                    coupon: get.optional_text(1)?,
                })
            },
        )
        .await
    }

    /// The first row of `sql` (`{p}` stands for the table prefix) for `key`, as `read`
    /// makes it.
    async fn row<T: Send + 'static>(
        &self,
        sql: &'static str,
        key: &str,
        read: fn(&Row<'_>) -> Result<T, ReadError>,
    ) -> Result<Option<T>, ReadError> {
        let key = key.to_owned();
        match self {
            ReadModel::Sqlite(conn) => {
                let conn = Arc::clone(conn);
                let sql = sql.replace("{p}", "").replace('$', "?");
                tokio::task::spawn_blocking(move || {
                    let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
                    let mut statement = conn.prepare_cached(&sql).map_err(boxed)?;
                    let mut rows = statement.query([&key]).map_err(boxed)?;
                    match rows.next().map_err(boxed)? {
                        Some(row) => read(&Row::Sqlite(row)).map(Some),
                        None => Ok(None),
                    }
                })
                .await
                .map_err(boxed)?
            }
            ReadModel::Postgres { pool, schema } => {
                let sql = sql.replace("{p}", &format!("\"{schema}\"."));
                let client = pool.get().await.map_err(boxed)?;
                let row = client.query_opt(&sql, &[&key]).await.map_err(boxed)?;
                row.map(|row| read(&Row::Postgres(&row))).transpose()
            }
        }
    }
}

fn boxed(e: impl std::error::Error + Send + Sync + 'static) -> ReadError {
    ReadError(Box::new(e))
}

/// A row of either database.
enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a tokio_postgres::Row),
}

impl Row<'_> {
    fn text(&self, index: usize) -> Result<String, ReadError> {
        match self {
            Row::Sqlite(row) => row.get(index).map_err(boxed),
            Row::Postgres(row) => row.try_get(index).map_err(boxed),
        }
    }

    fn optional_text(&self, index: usize) -> Result<Option<String>, ReadError> {
        match self {
            Row::Sqlite(row) => row.get(index).map_err(boxed),
            Row::Postgres(row) => row.try_get(index).map_err(boxed),
        }
    }

    fn int(&self, index: usize) -> Result<u32, ReadError> {
        let value: i64 = match self {
            Row::Sqlite(row) => row.get(index).map_err(boxed)?,
            Row::Postgres(row) => row.try_get(index).map_err(boxed)?,
        };
        u32::try_from(value).map_err(boxed)
    }
}
