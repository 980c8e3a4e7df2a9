//! Per-request context and the edge middleware that every route runs under.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::ErrorCause;
use super::{ApiError, ApiVersion, Authenticator, Principal};
use crate::trace::{TraceContext, continue_trace};
use tracing::Instrument;

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// What the edge knows about a request, shared by extractors, handlers and
/// the access log: ids for correlation, the verifier, and — once a handler has
/// authenticated — the caller.
#[derive(Clone)]
pub struct RequestContext(Arc<Inner>);

struct Inner {
    request_id: String,
    trace: TraceContext,
    authenticator: Arc<Authenticator>,
    principal: OnceLock<Principal>,
    function: OnceLock<&'static str>,
}

impl RequestContext {
    pub fn new(request_id: String, trace: TraceContext, authenticator: Arc<Authenticator>) -> Self {
        Self(Arc::new(Inner {
            request_id,
            trace,
            authenticator,
            principal: OnceLock::new(),
            function: OnceLock::new(),
        }))
    }

    pub fn from_parts(parts: &Parts) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("route served without the edge middleware".into()))
    }

    pub fn request_id(&self) -> &str {
        &self.0.request_id
    }

    pub fn trace(&self) -> &TraceContext {
        &self.0.trace
    }

    /// The `traceparent` to stamp on events caused by this request: this
    /// request's span is their parent.
    pub fn event_traceparent(&self) -> String {
        self.0.trace.to_header()
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.0.authenticator
    }

    pub fn principal(&self) -> Option<Principal> {
        self.0.principal.get().cloned()
    }

    pub fn set_principal(&self, principal: &Principal) {
        let _ = self.0.principal.set(principal.clone());
    }

    pub fn function(&self) -> Option<&'static str> {
        self.0.function.get().copied()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::from_parts(parts)
    }
}

/// What every API route refuses before its handler runs (and before it is
/// charged a rate-limit token), whether or not it reads a body or has more
/// than one representation: a declared body over the limit (413), and a
/// version of the API we do not serve (406). A layer of its own inside
/// CORS, so that a browser script can read the refusal.
pub async fn door_middleware(request: Request, next: Next) -> Response {
    match refused_at_the_door(&request) {
        Some(refused) => refused.into_response(),
        None => next.run(request).await,
    }
}

fn refused_at_the_door(request: &Request) -> Option<ApiError> {
    if !request.uri().path().starts_with("/api/") {
        return None;
    }
    if declared_too_large(request.headers()) {
        return Some(ApiError::PayloadTooLarge { limit: BODY_LIMIT_BYTES });
    }
    ApiVersion::negotiate(request.headers()).err()
}

/// Whether `Content-Length` announces more than [`BODY_LIMIT_BYTES`].
pub(crate) fn declared_too_large(headers: &axum::http::HeaderMap) -> bool {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    declared.is_some_and(|length| length > BODY_LIMIT_BYTES as u64)
}

/// A metric label for `method`: HTTP's own methods by name, anything else
/// as `other`. Any token is a valid method, so the raw one would let a
/// client add series without end.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Request id, trace context, security headers and one JSON access-log line
/// per request. Install with
/// `router.layer(axum::middleware::from_fn_with_state(authenticator, edge_middleware))`.
pub async fn edge_middleware(
    State(authenticator): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let incoming = request.headers().get(&TRACEPARENT).and_then(|v| v.to_str().ok()).and_then(TraceContext::parse);
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "(unmatched)".to_owned());
    let span = tracing::info_span!("request", otel.name = %format!("{method} {route}"), request_id = %request_id);
    let trace = continue_trace(&span, incoming.as_ref());
    let context = RequestContext::new(request_id.clone(), trace, authenticator);
    request.extensions_mut().insert(context.clone());

    let mut response = next.run(request).instrument(span).await;
    let cause = response.extensions_mut().remove::<ErrorCause>();

    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(X_REQUEST_ID.clone(), value);
    }
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));

    let elapsed = started.elapsed().as_secs_f64();
    let latency_ms = elapsed * 1000.0;
    let status = response.status().as_u16();
    let customer_id = context.principal().map(|p| p.customer_id.to_string());
    let function = context.function().unwrap_or("edge");
    metrics::counter!(
        "orderly_http_requests_total",
        "function" => function, "method" => method_label(&method), "route" => route.clone(), "status" => status.to_string()
    )
    .increment(1);
    if status >= 500 {
        metrics::counter!("orderly_http_errors_total", "function" => function, "route" => route.clone()).increment(1);
    }
    metrics::histogram!("orderly_http_request_duration_seconds", "function" => function, "route" => route.clone())
        .record(elapsed);
    tracing::info!(
        target: "orderly::access",
        request_id = %request_id,
        trace_id = %context.trace().trace_id,
        customer_id = customer_id.as_deref(),
        function,
        method = %method,
        route = %route,
        status,
        latency_ms,
        "request"
    );
    // The error behind a 5xx, which the client's problem document leaves out.
    if let Some(ErrorCause(cause)) = cause {
        if status >= 500 && status != 503 {
            tracing::error!(request_id = %request_id, function, route = %route, status, %cause, "request failed");
        } else {
            tracing::warn!(request_id = %request_id, function, route = %route, status, %cause, "request failed");
        }
    }
    response
}

/// Names the capability that serves a router's routes, for logs and metrics.
/// Install with `router.layer(axum::middleware::from_fn_with_state("inventory", tag_function))`.
pub async fn tag_function(State(function): State<&'static str>, request: Request, next: Next) -> Response {
    if let Some(context) = request.extensions().get::<RequestContext>() {
        let _ = context.0.function.set(function);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::method_label;

    #[test]
    fn a_methods_metric_label_is_one_of_a_fixed_set() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::from_bytes(b"A1").unwrap()), "other");
        assert_eq!(method_label(&Method::from_bytes(b"PROPFIND").unwrap()), "other");
    }
}
