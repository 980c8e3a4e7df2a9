//! Rate limits at the edge: a token bucket per principal, shared by every
//! instance of the function (the buckets live in the store).
//!
//! The principal is the verified token's `sub`, or the client IP for
//! anonymous callers (a token that does not verify counts as anonymous here;
//! the handler will refuse it). Anonymous callers get smaller buckets than
//! authenticated ones, writes smaller than reads, and any route can have its
//! own limits. Answers carry `RateLimit-Limit`, `RateLimit-Remaining` and
//! `RateLimit-Reset`; a refusal is a 429 with `Retry-After`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, RequestContext};
use crate::ports::{Clock, RateLimiter};
use crate::resilience::rate_limit::{Bucket, Decision};

/// The caller's address, put in request extensions by the host (from the
/// socket, or from the API gateway's request context).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Limits for one route (`METHOD /path/{pattern}`), overriding the classes.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteLimit {
    pub method: Method,
    pub route: String,
    pub authenticated: Bucket,
    pub anonymous: Bucket,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitPolicy {
    pub anonymous_read: Bucket,
    pub anonymous_write: Bucket,
    pub authenticated_read: Bucket,
    pub authenticated_write: Bucket,
    pub routes: Vec<RouteLimit>,
    /// When the limiter's store fails: let requests through (true) or 503.
    pub fail_open: bool,
    /// Routes never limited (health checks, the API document).
    pub exempt: Vec<String>,
}

impl Default for RateLimitPolicy {
    fn default() -> Self {
        Self {
            anonymous_read: Bucket { per_second: 50.0, burst: 150 },
            anonymous_write: Bucket { per_second: 10.0, burst: 30 },
            authenticated_read: Bucket { per_second: 200.0, burst: 400 },
            authenticated_write: Bucket { per_second: 100.0, burst: 200 },
            routes: Vec::new(),
            fail_open: true,
            exempt: vec!["/health".into(), "/metrics".into(), "/api/v1/openapi.json".into()],
        }
    }
}

impl RateLimitPolicy {
    /// Parses route overrides: `POST /api/v1/orders=10/s:20,2/s:5; GET /x=...`
    /// (authenticated limit, then optionally the anonymous one).
    pub fn parse_routes(raw: &str) -> Result<Vec<RouteLimit>, String> {
        raw.split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|entry| {
                let (target, limits) =
                    entry.split_once('=').ok_or_else(|| format!("{entry:?}: expected METHOD /path=limit"))?;
                let (method, route) =
                    target.trim().split_once(' ').ok_or_else(|| format!("{entry:?}: expected METHOD /path"))?;
                let method =
                    Method::from_bytes(method.trim().as_bytes()).map_err(|_| format!("{entry:?}: bad method"))?;
                let mut buckets = limits.split(',').map(Bucket::parse);
                let authenticated = buckets.next().ok_or_else(|| format!("{entry:?}: no limit"))??;
                let anonymous = buckets.next().transpose()?.unwrap_or(authenticated);
                Ok(RouteLimit { method, route: route.trim().to_owned(), authenticated, anonymous })
            })
            .collect()
    }

    fn bucket(&self, method: &Method, route: &str, authenticated: bool) -> (Bucket, String) {
        if let Some(r) = self.routes.iter().find(|r| r.method == method && r.route == route) {
            return (if authenticated { r.authenticated } else { r.anonymous }, format!("{method} {route}"));
        }
        let write = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let bucket = match (authenticated, write) {
            (false, false) => self.anonymous_read,
            (false, true) => self.anonymous_write,
            (true, false) => self.authenticated_read,
            (true, true) => self.authenticated_write,
        };
        (bucket, if write { "write".into() } else { "read".into() })
    }
}

pub struct RateLimitLayer {
    pub limiter: Arc<dyn RateLimiter>,
    pub policy: RateLimitPolicy,
    pub clock: Arc<dyn Clock>,
}

pub async fn rate_limit_middleware(State(layer): State<Arc<RateLimitLayer>>, request: Request, next: Next) -> Response {
    // Unmatched paths are limited too (as "(unmatched)"): probing costs tokens.
    let route = request.extensions().get::<MatchedPath>().map_or("(unmatched)", |p| p.as_str()).to_owned();
    if layer.policy.exempt.contains(&route) {
        return next.run(request).await;
    }
    let principal = principal_of(&request).await;
    let (bucket, class) = layer.policy.bucket(request.method(), &route, principal.starts_with("sub:"));
    let key = format!("{principal}|{class}");
    let decision = match layer.limiter.take(&key, &bucket, layer.clock.now()).await {
        Ok(decision) => decision,
        Err(error) if layer.policy.fail_open => {
            metrics::counter!("orderly_rate_limit_store_errors_total").increment(1);
            tracing::warn!(%error, "rate limiter unavailable; failing open");
            return next.run(request).await;
        }
        Err(error) => {
            metrics::counter!("orderly_rate_limit_store_errors_total").increment(1);
            return ApiError::unavailable("the rate limiter is unavailable, try again shortly", error).into_response();
        }
    };
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        metrics::counter!("orderly_rate_limited_total", "class" => class).increment(1);
        ApiError::TooManyRequests { retry_after: decision.retry_after }.into_response()
    };
    set_headers(&mut response, &decision);
    response
}

/// The verified `sub`, else the client's address. Verifying here also caches
/// the principal for the handler, so a token is checked once per request.
fn principal_of(request: &Request) -> impl Future<Output = String> + Send + 'static {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let client = match request.extensions().get::<ClientIp>() {
        Some(ClientIp(ip)) => format!("ip:{ip}"),
        None => "ip:unknown".into(),
    };
    // Owned before awaiting: the request (its body) is not `Sync`.
    let context = request.extensions().get::<RequestContext>().cloned();
    async move {
        if let (Some(context), Some(token)) = (context, bearer)
            && let Ok(principal) = context.authenticator().verify(&token).await
        {
            context.set_principal(&principal);
            return format!("sub:{}", principal.customer_id);
        }
        client
    }
}

fn set_headers(response: &mut Response, decision: &Decision) {
    let seconds = |d: Duration| d.as_secs_f64().ceil() as u64;
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(seconds(decision.reset_after)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_route_overrides() {
        let routes =
            RateLimitPolicy::parse_routes("POST /api/v1/orders=10/s:20,1/s:2; GET /api/v1/products=50/s").unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].method, Method::POST);
        assert_eq!(routes[0].authenticated, Bucket { per_second: 10.0, burst: 20 });
        assert_eq!(routes[0].anonymous, Bucket { per_second: 1.0, burst: 2 });
        assert_eq!(routes[1].anonymous, routes[1].authenticated);
        assert!(RateLimitPolicy::parse_routes("POST=1/s").is_err());
        assert!(RateLimitPolicy::parse_routes("POST /x=fast").is_err());
    }

    #[test]
    fn writes_and_anonymous_callers_get_smaller_buckets_by_default() {
        let policy = RateLimitPolicy::default();
        let (anon_write, _) = policy.bucket(&Method::POST, "/api/v1/orders", false);
        let (auth_write, class) = policy.bucket(&Method::POST, "/api/v1/orders", true);
        let (auth_read, _) = policy.bucket(&Method::GET, "/api/v1/orders", true);
        assert!(anon_write.burst < auth_write.burst && auth_write.burst < auth_read.burst);
        assert_eq!(class, "write");
    }
}
