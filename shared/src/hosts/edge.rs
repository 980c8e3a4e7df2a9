use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::http::{ApiError, Authenticator, edge_middleware};

/// Turns the functions' routes into the served API: `GET
/// /api/v1/openapi.json` (the document of exactly these routes),
/// problem+json for unknown routes and methods, the edge middleware (request
/// ids, JWT, security headers, access log) around everything, and a panic
/// answered as a 500 problem instead of a dropped connection.
pub fn api_router(
    api: OpenApiRouter,
    authenticator: Arc<Authenticator>,
) -> Result<(Router, utoipa::openapi::OpenApi), serde_json::Error> {
    let (router, openapi) = api.split_for_parts();
    let document = Arc::new(openapi.to_json()?);
    let router = router
        .route("/api/v1/openapi.json", axum::routing::get(move || serve_document(document.clone())))
        .fallback(|| async { ApiError::NotFound("no such resource".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(from_fn_with_state(authenticator, edge_middleware))
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal("handler panicked".into()).into_response()));
    Ok((router, openapi))
}

async fn serve_document(document: Arc<String>) -> Response {
    let mut response = (StatusCode::OK, document.as_str().to_owned()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
