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
    /// The projection keeping the read model stopped (its failure is logged): reads
    /// that wait for a position never get it until the service is restarted.
    #[error("the read model's projection stopped")]
    ProjectionStopped,
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
            ApiError::ProjectionStopped => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "projection_stopped",
                false,
            ),
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
        CouponError::CouponAlreadyIssued { .. }
        | CouponError::CouponUsedUp { .. }
        | CouponError::CartAlreadyOpen { .. }
        | CouponError::CartHasCoupon { .. } => StatusCode::CONFLICT,
    }
}

impl ApiError {
    /// Whether its text is for the client: everything but a store's or a database's
    /// failure.
    fn is_public(&self) -> bool {
        !matches!(
            self,
            ApiError::Read(_)
                | ApiError::Decision(
                    DecideError::Store(_)
                        | DecideError::Decode(_)
                        | DecideError::Encode(_)
                        | DecideError::LaneFailed { .. }
                        | DecideError::Panicked { .. }
                        | DecideError::UndeclaredEmit { .. }
                )
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, retry) = self.parts();
        if status.is_server_error() && !matches!(self, ApiError::NotYet(_)) {
            tracing::warn!(error = %factum::ErrorChain(&self), "request failed");
        }
        // A failure of the service's own (a store's, a database's) is logged, not
        // shown: its text may name hosts and tables.
        let error = if self.is_public() {
            factum::ErrorChain(&self).to_string()
        } else if retry {
            "the service is unavailable, try again".to_owned()
        } else {
            "internal error".to_owned()
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

#[cfg(test)]
mod tests {
    use super::*;
    use factum::{Position, StoreError};

    fn answer(error: ApiError) -> (StatusCode, Option<String>, String) {
        let response = error.into_response();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let status = response.status();
        let body = futures::executor::block_on(axum::body::to_bytes(response.into_body(), 4096))
            .expect("a body");
        (status, retry, String::from_utf8_lossy(&body).into_owned())
    }

    #[test]
    fn a_conflict_after_the_retries_is_503_with_retry_after() {
        let conflict = DecideError::Conflict {
            decision: "ApplyCoupon",
            attempts: 101,
            position: Position(7),
            event_type: "CouponApplied".into(),
        };
        let (status, retry, body) = answer(ApiError::Decision(conflict));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert!(body.contains("\"kind\":\"try_again\""), "{body}");
    }

    #[test]
    fn a_stores_failure_is_logged_not_shown() {
        let failure = StoreError::backend(std::io::Error::other("db.internal:5432 refused"));
        let (status, retry, body) = answer(ApiError::Decision(DecideError::Store(failure)));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert!(!body.contains("db.internal"), "{body}");
        let (status, _, body) = answer(ApiError::Decision(DecideError::Panicked {
            decision: "ApplyCoupon",
        }));
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("internal error"), "{body}");
    }

    #[test]
    fn refusals_say_why() {
        let used_up = CouponError::CouponUsedUp {
            coupon: "S".into(),
            uses: 1,
        };
        let (status, retry, body) = answer(ApiError::Decision(DecideError::Domain(used_up)));
        assert_eq!((status, retry), (StatusCode::CONFLICT, None));
        assert!(body.contains("coupon S is used up"), "{body}");
    }
}
