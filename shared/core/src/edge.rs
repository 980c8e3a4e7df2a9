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
    ApiError, ApiRoutes, Authenticator, Describe, RateLimitLayer, cors_layer, door_middleware, edge_middleware,
    preflight_no_content, rate_limit_middleware,
};
use crate::settings::EdgeSettings;

/// Turns the functions' routes into the served API: `GET
/// /api/v1/openapi.json` (the document of exactly these routes),
/// problem+json for unknown routes and methods, the rate limits (when given),
/// the refusals made before any handler (413, 406: `door_middleware`, not
/// charged to the limits), a handler's panic answered as a 500 problem, CORS
/// for the configured origins (`crate::http` cors; outside the limits, so a
/// preflight is never charged, and around the refusals and the panic's
/// answer, so a browser can read them), and the edge middleware (request
/// ids, JWT, security headers, access log) around everything. Hosts add
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
    // Inside CORS, so that a browser script can read a refusal or a panic's
    // 500 (with neither, it sees a network error).
    router = router.layer(from_fn(door_middleware)).layer(CatchPanicLayer::custom(panic_answer));
    if let Some(cors) = cors_layer(&edge.cors_origins) {
        router = router.layer(cors).layer(from_fn(preflight_no_content));
    }
    router.layer(from_fn_with_state(authenticator, edge_middleware))
}

/// What a caught panic answers: a 500 problem that says nothing of the panic.
pub fn panic_answer(_panic: Box<dyn std::any::Any + Send>) -> Response {
    ApiError::Internal("handler panicked".into()).into_response()
}

async fn serve_document(document: Arc<(Describe, OnceLock<String>)>) -> Response {
    let (describe, rendered) = &*document;
    let render = || {
        let mut document = serde_json::to_value(describe()).ok()?;
        crate::api::add_versions(&mut document);
        serde_json::to_string(&document).ok()
    };
    let Some(json) = rendered.get().cloned().or_else(|| render().map(|j| rendered.get_or_init(|| j).clone())) else {
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

    /// The served API of one route, `GET /api/v1/boom`, whose handler panics.
    fn panicking_api(cors_origins: Vec<String>) -> Router {
        async fn boom() -> &'static str {
            panic!("a bug")
        }
        let routes = ApiRoutes::undocumented(Router::new().route("/api/v1/boom", axum::routing::get(boom)));
        let keys = AuthConfig { keys: KeyConfig::Hs256(vec![vec![7; 32]]), ..Default::default() };
        let authenticator = Arc::new(Authenticator::new(&keys).unwrap());
        let edge = EdgeSettings { catalog_max_age: std::time::Duration::ZERO, cors_origins };
        api_router(routes, authenticator, None, &edge)
    }

    #[tokio::test]
    async fn a_handler_that_panics_answers_a_500_problem_through_the_edge() {
        let router = panicking_api(Vec::new());
        let request = Request::builder().uri("/api/v1/boom").body(Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap_or_else(|never| match never {});
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        assert!(response.headers().contains_key("x-request-id"), "the edge answered it too");
    }

    #[tokio::test]
    async fn a_refusal_at_the_door_and_a_panics_500_carry_cors_headers_for_an_allowed_origin() {
        let origin = "https://shop.example";
        let router = panicking_api(vec![origin.into()]);
        let requests = [
            (Request::builder().uri("/api/v1/boom"), StatusCode::INTERNAL_SERVER_ERROR),
            (
                Request::builder().uri("/api/v1/boom").header(header::ACCEPT, "application/vnd.orderly.v9+json"),
                StatusCode::NOT_ACCEPTABLE,
            ),
            (
                Request::builder().method("POST").uri("/api/v1/boom").header(header::CONTENT_LENGTH, "70000"),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
        ];
        for (request, status) in requests {
            let request = request.header(header::ORIGIN, origin).body(Body::empty()).unwrap();
            let response = router.clone().oneshot(request).await.unwrap_or_else(|never| match never {});
            assert_eq!(response.status(), status);
            assert_eq!(response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], origin, "{status}");
            assert!(response.headers().contains_key("x-request-id"), "{status}");
        }
    }
}
