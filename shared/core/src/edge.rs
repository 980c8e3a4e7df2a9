//! The finished API router every host serves: the functions' routes, the
//! OpenAPI document, problem+json fallbacks, rate limits and the edge
//! middleware.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;

use crate::http::{
    ApiError, ApiRoutes, Authenticator, Describe, RateLimitLayer, cors_layer, edge_middleware, preflight_no_content,
    rate_limit_middleware,
};
use crate::settings::EdgeSettings;

/// Turns the functions' routes into the served API: `GET
/// /api/v1/openapi.json` (the document of exactly these routes),
/// problem+json for unknown routes and methods, the rate limits (when given),
/// CORS for the configured origins (`crate::http` cors; outside the limits,
/// so a preflight is never charged), a handler's panic answered as a 500
/// problem, and the edge middleware (request ids, JWT, security headers,
/// access log) around everything, the panic's answer included. Hosts add
/// what is theirs (sockets, timeouts) and compression
/// (`orderly_hosts::edge`).
pub fn api_router(
    api: ApiRoutes,
    authenticator: Arc<Authenticator>,
    limits: Option<Arc<RateLimitLayer>>,
    edge: &EdgeSettings,
) -> Router {
    let (router, describe) = api.into_parts();
    // Described and rendered on first request, not here: a Spin instance
    // serves one request, and almost never this one (see `http::ApiRoutes`).
    let document = Arc::new((describe, OnceLock::new()));
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
    router.layer(CatchPanicLayer::custom(panic_answer)).layer(from_fn_with_state(authenticator, edge_middleware))
}

/// What a caught panic answers: a 500 problem that says nothing of the panic.
pub fn panic_answer(_panic: Box<dyn std::any::Any + Send>) -> Response {
    ApiError::Internal("handler panicked".into()).into_response()
}

async fn serve_document(document: Arc<(Describe, OnceLock<String>)>) -> Response {
    let (describe, rendered) = &*document;
    let Some(json) =
        rendered.get().cloned().or_else(|| describe().to_json().ok().map(|j| rendered.get_or_init(|| j).clone()))
    else {
        return ApiError::Internal("the API document could not be rendered".into()).into_response();
    };
    let mut response = (StatusCode::OK, json).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::http::{AuthConfig, KeyConfig};

    #[tokio::test]
    async fn a_handler_that_panics_answers_a_500_problem_through_the_edge() {
        async fn boom() -> &'static str {
            panic!("a bug")
        }
        let routes = ApiRoutes::undocumented(Router::new().route("/api/v1/boom", axum::routing::get(boom)));
        let keys = AuthConfig { keys: KeyConfig::Hs256(vec![vec![7; 32]]), ..Default::default() };
        let authenticator = Arc::new(Authenticator::new(&keys).unwrap());
        let edge = EdgeSettings { catalog_max_age: std::time::Duration::ZERO, cors_origins: Vec::new() };
        let router = api_router(routes, authenticator, None, &edge);
        let request = Request::builder().uri("/api/v1/boom").body(Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap_or_else(|never| match never {});
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        assert!(response.headers().contains_key("x-request-id"), "the edge answered it too");
    }
}
