//! The JSON API: commands go through the dispatcher, queries to the read model.
//!
//! | method and path | body | answer |
//! | --- | --- | --- |
//! | `POST /coupons` | `{"code": "SPRING", "uses": 100}` | 201, [`Written`] |
//! | `POST /carts` | `{"cart": "c1"}` | 201, [`Written`] |
//! | `POST /carts/{cart}/coupon` | `{"coupon": "SPRING"}`, optional `Idempotency-Key: <uuid>` | 200, [`Written`] |
//! | `GET /coupons/{code}?after=<position>` | | 200, [`CouponView`] |
//! | `GET /carts/{cart}?after=<position>` | | 200, [`CartView`] |
//!
//! A write answers with the position of what it wrote; a read with `?after=` that
//! position waits (up to [`AppState::wait`]) until the read model holds it, so a client
//! reads its own writes. Errors are [`ApiError`]s.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use factum::lanes::Dispatcher;
use factum::{AnyStore, Decide, EventStore, Outcome, Position};
use factum_examples::coupons::{ApplyCoupon, IssueCoupon, OpenCart};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use crate::errors::ApiError;
use crate::view::{CartView, CouponView, ReadModel};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Decides the commands.
    pub dispatcher: Dispatcher<AnyStore>,
    /// The read model.
    pub reads: ReadModel,
    /// Where the read model is committed to.
    pub committed: watch::Receiver<Position>,
    /// How long a read with `?after=` waits for the read model.
    pub wait: Duration,
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/coupons", post(issue_coupon))
        .route("/coupons/{code}", get(coupon))
        .route("/carts", post(open_cart))
        .route("/carts/{cart}", get(cart))
        .route("/carts/{cart}/coupon", post(apply_coupon))
        .route("/health", get(health))
        .with_state(state)
}

/// What a write answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// The positions of the events it appended (none when nothing needed to happen).
    pub positions: Vec<u64>,
    /// The last of them: pass it as `?after=` to read this write back (every event these
    /// endpoints write is one the read model consumes, so its checkpoint reaches it).
    pub position: Option<u64>,
    /// Whether this is the answer of an earlier request with the same idempotency key.
    pub replayed: bool,
    /// How many read-decide-append attempts it took.
    pub attempts: u32,
}

impl<E> From<Outcome<E>> for Written {
    fn from(outcome: Outcome<E>) -> Self {
        let positions: Vec<u64> = outcome.positions.iter().map(|p| p.0).collect();
        Written {
            position: positions.last().copied(),
            positions,
            replayed: outcome.replayed,
            attempts: outcome.attempts,
        }
    }
}

/// `POST /coupons`.
#[derive(Deserialize)]
pub struct IssueBody {
    /// The coupon code.
    pub code: String,
    /// How many carts may use it.
    pub uses: u32,
}

/// `POST /carts`.
#[derive(Deserialize)]
pub struct OpenBody {
    /// The cart id.
    pub cart: String,
}

/// `POST /carts/{cart}/coupon`.
#[derive(Deserialize)]
pub struct ApplyBody {
    /// The coupon code.
    pub coupon: String,
}

/// `?after=` of a read.
#[derive(Deserialize)]
pub struct After {
    /// The position the read model must hold first.
    pub after: Option<u64>,
}

/// The body, or a 400 saying what is wrong with it (axum answers 415 or 422 by default).
fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(body)| body)
        .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
}

async fn decide<D: Decide<Error = factum_examples::coupons::CouponError>>(
    state: &AppState,
    decision: D,
) -> Result<Written, ApiError> {
    Ok(state.dispatcher.decide(decision).await?.into())
}

async fn issue_coupon(
    State(state): State<AppState>,
    request: Result<Json<IssueBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Written>), ApiError> {
    let IssueBody { code, uses } = body(request)?;
    let decision = IssueCoupon { coupon: code, uses };
    Ok((StatusCode::CREATED, Json(decide(&state, decision).await?)))
}

async fn open_cart(
    State(state): State<AppState>,
    request: Result<Json<OpenBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Written>), ApiError> {
    let OpenBody { cart } = body(request)?;
    let written = decide(&state, OpenCart { cart }).await?;
    Ok((StatusCode::CREATED, Json(written)))
}

/// The decision's idempotency key is the request's `Idempotency-Key` (a UUID): a client
/// that sends a request again after a lost answer gets the first answer back,
/// `replayed`, and nothing is applied twice.
async fn apply_coupon(
    State(state): State<AppState>,
    Path(cart): Path<String>,
    headers: HeaderMap,
    request: Result<Json<ApplyBody>, JsonRejection>,
) -> Result<Json<Written>, ApiError> {
    let ApplyBody { coupon } = body(request)?;
    let request = match headers.get("idempotency-key") {
        None => Uuid::now_v7(),
        Some(key) => key
            .to_str()
            .ok()
            .and_then(|key| Uuid::parse_str(key.trim()).ok())
            .ok_or_else(|| ApiError::BadRequest("Idempotency-Key must be a UUID".into()))?,
    };
    let decision = ApplyCoupon {
        coupon,
        cart,
        request,
    };
    Ok(Json(decide(&state, decision).await?))
}

/// Waits until the read model holds `after`, if asked to.
async fn reached(state: &AppState, after: Option<u64>) -> Result<(), ApiError> {
    let Some(after) = after else {
        return Ok(());
    };
    let mut committed = state.committed.clone();
    // The guard `wait_for` gives back is dropped at once: it must not live across the
    // head's read below.
    let waited = tokio::time::timeout(state.wait, committed.wait_for(|at| at.0 >= after))
        .await
        .map(|reached| reached.map(|_| ()));
    match waited {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(ApiError::ProjectionStopped),
        Err(_) => {
            // A position no write has reached: waiting longer will not help.
            let head = state.dispatcher.engine().store().head().await;
            match head {
                Ok(head) if head.is_none_or(|head| head.0 < after) => Err(ApiError::BadRequest(
                    format!("position {after} is past the end of the log"),
                )),
                _ => Err(ApiError::NotYet(after)),
            }
        }
    }
}

/// `GET /health`: 200 while the projection runs, 500 once it has stopped (its failure
/// is in the log).
async fn health(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    match state.committed.has_changed() {
        Ok(_) => Ok("ok"),
        Err(_) => Err(ApiError::ProjectionStopped),
    }
}

async fn coupon(
    State(state): State<AppState>,
    Path(code): Path<String>,
    Query(After { after }): Query<After>,
) -> Result<Json<CouponView>, ApiError> {
    reached(&state, after).await?;
    let found = state.reads.coupon(&code).await?;
    found
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("coupon {code} does not exist")))
}

async fn cart(
    State(state): State<AppState>,
    Path(cart): Path<String>,
    Query(After { after }): Query<After>,
) -> Result<Json<CartView>, ApiError> {
    reached(&state, after).await?;
    let found = state.reads.cart(&cart).await?;
    found
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("cart {cart} does not exist")))
}
