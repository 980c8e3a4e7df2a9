//! Errors as `application/problem+json` (RFC 9457).
//!
//! The body says what the client can act on and nothing else: never a stack
//! trace, SQL, SDK error text or an internal name. Internal detail goes to the
//! log, under the same request id the client sees in `X-Request-Id`.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::{FieldError, ValidationErrors};
use crate::ports::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("this needs the admin scope")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    NotAcceptable(String),
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("{0}")]
    Conflict(String),
    /// An `If-Match` that names no current representation (RFC 9110 §13.1.1).
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Validation(ValidationErrors),
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("too many requests")]
    TooManyRequests { retry_after: Duration },
    /// `detail` is sent; `cause` (the driver's or SDK's own error) is
    /// logged by the edge, never sent.
    #[error("{detail}")]
    Unavailable { detail: String, cause: String },
    /// The detail is logged by the edge, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What a 5xx response does not say: the error behind it, in the response's
/// extensions for the edge to log beside the request id
/// ([`super::edge_middleware`]). The client's body stays redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCause(pub String);

impl ApiError {
    /// A dependency failed: the client reads `detail`, the log gets `cause`.
    pub fn unavailable(detail: impl Into<String>, cause: impl std::fmt::Display) -> Self {
        Self::Unavailable { detail: detail.into(), cause: cause.to_string() }
    }
}

/// The problem document. `errors` lists invalid fields on a 422.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad-request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound(_) => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::NotAcceptable(_) => "not-acceptable",
            Self::RequestTimeout => "request-timeout",
            Self::Conflict(_) => "conflict",
            Self::PreconditionFailed(_) => "precondition-failed",
            Self::PayloadTooLarge { .. } => "payload-too-large",
            Self::UnsupportedMediaType(_) => "unsupported-media-type",
            Self::Validation(_) => "validation-error",
            Self::IdempotencyKeyReused => "idempotency-key-reused",
            Self::TooManyRequests { .. } => "rate-limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal(_) => "internal-error",
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            Self::Internal(_) => {
                "something went wrong on our side; quote the X-Request-Id when reporting it".to_owned()
            }
            other => other.to_string(),
        };
        Problem {
            problem_type: format!("https://orderly.dev/problems/{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            errors: match self {
                Self::Validation(errors) => errors.0.clone(),
                _ => Vec::new(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (status, body).into_response();
        if let Self::Internal(cause) | Self::Unavailable { cause, .. } = &self {
            response.extensions_mut().insert(ErrorCause(cause.clone()));
        }
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if matches!(self, Self::Unauthorized(_)) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        let retry_after = retry_after_of(&self);
        if !retry_after.is_zero() {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

fn retry_after_of(error: &ApiError) -> Duration {
    match error {
        ApiError::TooManyRequests { retry_after } => *retry_after,
        ApiError::Unavailable { .. } => Duration::from_secs(1),
        _ => Duration::ZERO,
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        Self::Validation(errors)
    }
}

impl From<StoreError> for ApiError {
    /// The client gets a redacted sentence; the store's own error (SDK error
    /// code and message, driver text) rides along for the log.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(detail) => Self::unavailable(
                format!("storage is unavailable, try again shortly ({})", redact(&detail)),
                format!("store unavailable: {detail}"),
            ),
            StoreError::Conflict => Self::Conflict("the resource changed concurrently; try again".into()),
            StoreError::Contended { .. } => {
                Self::unavailable("the resource is changing too often, try again shortly", error)
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

/// Store errors can carry driver text; the client gets only its first words
/// when they name a condition it can act on (disk full, read-only).
fn redact(detail: &str) -> &'static str {
    let lower = detail.to_ascii_lowercase();
    if lower.contains("full") {
        "out of space"
    } else if lower.contains("readonly") || lower.contains("read-only") || lower.contains("read only") {
        "read-only"
    } else {
        "temporary failure"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_never_leak_their_detail() {
        let problem = ApiError::Internal("SELECT * FROM orders: disk I/O error".into()).problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("SELECT"));
    }

    #[test]
    fn store_outages_are_503_without_driver_text() {
        let error = ApiError::from(StoreError::Unavailable("database or disk is full (code 13)".into()));
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        let detail = error.problem().detail;
        assert!(detail.contains("out of space") && !detail.contains("code 13"), "{detail}");
        let response = error.into_response();
        let cause = response.extensions().get::<ErrorCause>().expect("the cause, for the edge's log");
        assert!(cause.0.contains("database or disk is full (code 13)"), "{cause:?}");
    }

    #[test]
    fn a_record_too_contended_to_write_is_503_try_again() {
        let response = ApiError::from(StoreError::Contended { attempts: 32 }).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn validation_problems_list_the_fields() {
        let problem = ApiError::from(ValidationErrors::single("items[0].sku", "unknown SKU X")).problem();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors[0].field, "items[0].sku");
        assert!(problem.detail.contains("items[0].sku"));
    }
}
