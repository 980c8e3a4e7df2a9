//! CORS (contract §8): which browser origins may call the API, and what
//! their scripts may send and read.
//!
//! A storefront on another origin calls the API from the browser. The
//! browser asks first (a preflight `OPTIONS`) and only lets the script see a
//! response that names its origin. The rules are tower-http's `CorsLayer`;
//! this module only configures it from the settings: the allowed origins
//! (none by default, and then no CORS header at all), the headers a client
//! sends (its token, its idempotency key, its preconditions) and the headers
//! its script may read (ids, validators, rate limits, versioning hints).
//!
//! The layer sits inside the edge middleware, so a preflight has its
//! request id and access-log line like any request, and outside the rate
//! limits: a preflight costs nothing and carries no principal to charge.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may reuse a preflight's answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Headers a browser script may send besides the CORS-safelisted ones.
const ALLOWED_HEADERS: [HeaderName; 7] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    HeaderName::from_static("idempotency-key"),
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    HeaderName::from_static("x-request-id"),
    HeaderName::from_static("traceparent"),
];

/// Response headers a browser script may read (contract §8).
const EXPOSED_HEADERS: [HeaderName; 11] = [
    header::LOCATION,
    header::ETAG,
    header::RETRY_AFTER,
    HeaderName::from_static("ratelimit-limit"),
    HeaderName::from_static("ratelimit-remaining"),
    HeaderName::from_static("ratelimit-reset"),
    HeaderName::from_static("x-request-id"),
    HeaderName::from_static("idempotent-replayed"),
    HeaderName::from_static("deprecation"),
    HeaderName::from_static("sunset"),
    header::LINK,
];

/// The CORS layer for `origins` (already checked by the settings), or
/// `None` when there are none: then the API sends no CORS header at all.
pub fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::OPTIONS])
            .allow_headers(ALLOWED_HEADERS)
            .expose_headers(EXPOSED_HEADERS)
            .max_age(PREFLIGHT_MAX_AGE),
    )
}

/// A preflight's answer has no content: 204, as the contract says
/// (`CorsLayer` answers 200 with an empty body).
pub async fn preflight_no_content(request: Request, next: Next) -> Response {
    let preflight =
        request.method() == Method::OPTIONS && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = next.run(request).await;
    if preflight && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}
