//! The finished API router every host serves: the functions' routes, the
//! OpenAPI document, problem+json fallbacks, rate limits and the edge
//! middleware.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;

use crate::http::{
    ApiError, Authenticator, RateLimitLayer, cors_layer, edge_middleware, preflight_no_content, rate_limit_middleware,
};
use crate::settings::EdgeSettings;

/// Turns the functions' routes into the served API: `GET
/// /api/v1/openapi.json` (the document of exactly these routes),
/// problem+json for unknown routes and methods, the rate limits (when given),
/// CORS for the configured origins (`crate::http` cors; outside the limits,
/// so a preflight is never charged) and the edge middleware (request ids,
/// JWT, security headers, access log) around everything. Hosts add what is
/// theirs (sockets, panics, timeouts) and compression (`orderly_hosts::edge`).
pub fn api_router(
    api: OpenApiRouter,
    authenticator: Arc<Authenticator>,
    limits: Option<Arc<RateLimitLayer>>,
    edge: &EdgeSettings,
) -> Result<(Router, utoipa::openapi::OpenApi), serde_json::Error> {
    let (router, openapi) = api.split_for_parts();
    // Rendered on first request, not here: a Spin instance serves one
    // request, and almost never this one.
    let document = Arc::new((openapi.clone(), OnceLock::new()));
    let mut router = router
        .route("/api/v1/openapi.json", axum::routing::get(move || serve_document(document.clone())))
        .fallback(|| async { ApiError::NotFound("no such resource".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    if let Some(limits) = limits {
        router = router.layer(from_fn_with_state(limits, rate_limit_middleware));
    }
    if let Some(cors) = cors_layer(&edge.cors_origins) {
        router = router.layer(cors).layer(from_fn(preflight_no_content));
    }
    Ok((router.layer(from_fn_with_state(authenticator, edge_middleware)), openapi))
}

async fn serve_document(document: Arc<(utoipa::openapi::OpenApi, OnceLock<String>)>) -> Response {
    let (openapi, rendered) = &*document;
    let Some(json) =
        rendered.get().cloned().or_else(|| openapi.to_json().ok().map(|j| rendered.get_or_init(|| j).clone()))
    else {
        return ApiError::Internal("the API document could not be rendered".into()).into_response();
    };
    let mut response = (StatusCode::OK, json).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
