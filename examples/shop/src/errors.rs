//! What the API answers when something goes wrong: a status, a JSON body
//! `{"error": "...", "kind": "..."}`, and `Retry-After` where trying again later helps.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use factum::DecideError;
use factum_examples::coupons::CouponError;
use serde::Serialize;

use crate::view::ReadError;

/// An answer other than success.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request is malformed: a body that is not the JSON asked for, a bad header.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing under that name.
    #[error("{0}")]
    NotFound(String),
    /// The decision failed.
    #[error(transparent)]
    Decision(#[from] DecideError<CouponError>),
    /// The read model has not reached the position asked for within the wait.
    #[error("the read model has not reached position {0} yet")]
    NotYet(u64),
    /// The read model could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
}

#[derive(Serialize)]
struct Body {
    error: String,
    kind: &'static str,
}

impl ApiError {
    /// The status, the body's `kind`, and whether to send `Retry-After`.
    fn parts(&self) -> (StatusCode, &'static str, bool) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request", false),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", false),
            ApiError::NotYet(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_yet", true),
            ApiError::Read(_) => (StatusCode::SERVICE_UNAVAILABLE, "read_model", true),
            ApiError::Decision(DecideError::Domain(e)) => (refusal(e), "refused", false),
            ApiError::Decision(DecideError::IdempotencyKeyReused { .. }) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                false,
            ),
            ApiError::Decision(DecideError::Unstorable { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "unstorable", false)
            }
            // A conflict that outlasted the retries, a shutdown, a store that may come
            // back: the same request may go through later.
            ApiError::Decision(e) if e.is_retryable() => {
                (StatusCode::SERVICE_UNAVAILABLE, "try_again", true)
            }
            ApiError::Decision(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", false),
        }
    }
}

/// A domain refusal's status: 404 for what does not exist, 422 for a command that can
/// never succeed, 409 for one the current state refuses.
fn refusal(error: &CouponError) -> StatusCode {
    match error {
        CouponError::CouponNotFound { .. } | CouponError::CartNotFound { .. } => {
            StatusCode::NOT_FOUND
        }
        CouponError::NoUses { .. }
        | CouponError::ZeroPrice { .. }
        | CouponError::NoItems { .. }
        | CouponError::NoPrice { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::CONFLICT,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, retry) = self.parts();
        if status.is_server_error() {
            tracing::warn!(error = %factum::ErrorChain(&self), "request failed");
        }
        // A failure of the service's own is logged, not shown.
        let error = if status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal error".to_owned()
        } else {
            factum::ErrorChain(&self).to_string()
        };
        let body = Body { error, kind };
        let mut response = (status, Json(body)).into_response();
        if retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
