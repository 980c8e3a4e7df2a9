//! Rate limits at the edge: a token bucket per principal, shared by every
//! instance of the function (the buckets live in the store).
//!
//! The principal is the verified token's `sub`, or the client IP for
//! anonymous callers (a token that does not verify counts as anonymous here;
//! the handler will refuse it). Anonymous callers get smaller buckets than
//! authenticated ones, writes smaller than reads, and any route can have its
//! own limits. Answers carry `RateLimit-Limit`, `RateLimit-Remaining` and
//! `RateLimit-Reset`; a refusal is a 429 with `Retry-After`.
//!
//! A take is a round trip to the store (a conditional write in DynamoDB).
//! For a *safe* request (`GET`, `HEAD`: RFC 9110 §9.2.1, no effect on the
//! server) the handler does not wait for it: the take and the handler run
//! side by side, and the handler's answer is kept only if the take allows
//! it. A read then pays one round trip where it paid two (on Spin, where an
//! instance can keep no connection, that is ~40 % of a product read). What a
//! client sees does not change: a refused request still gets the 429 (the
//! handler's work is dropped the moment the refusal arrives), an unavailable
//! limiter still fails open or closed. What the store sees does: a refused
//! read may have started its own read before the refusal came. A write
//! (anything unsafe) still runs only once its token is taken.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::future::{self, Either};

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
    let take = layer.limiter.take(&key, &bucket, layer.clock.now());
    // A safe request's handler starts now, beside the take (see the module doc).
    let (taken, handled) = if request.method().is_safe() {
        let handler = next.run(request);
        match future::select(take, Box::pin(handler)).await {
            Either::Left((taken, handler)) => (taken, Handler::Started(handler)),
            Either::Right((response, take)) => (take.await, Handler::Done(response)),
        }
    } else {
        (take.await, Handler::Waiting(next, request))
    };
    let decision = match taken {
        Ok(decision) => decision,
        Err(error) if layer.policy.fail_open => {
            metrics::counter!("orderly_rate_limit_store_errors_total").increment(1);
            tracing::warn!(%error, "rate limiter unavailable; failing open");
            return handled.answer().await;
        }
        Err(error) => {
            metrics::counter!("orderly_rate_limit_store_errors_total").increment(1);
            return ApiError::unavailable("the rate limiter is unavailable, try again shortly", error).into_response();
        }
    };
    let mut response = if decision.allowed {
        handled.answer().await
    } else {
        metrics::counter!("orderly_rate_limited_total", "class" => class).increment(1);
        ApiError::TooManyRequests { retry_after: decision.retry_after }.into_response()
    };
    set_headers(&mut response, &decision);
    response
}

/// Where the handler stands when the take's answer is in: dropped unanswered
/// on a refusal (a started one is cancelled).
enum Handler<F> {
    /// A write: not started before its token is taken.
    Waiting(Next, Request),
    /// A read still running.
    Started(F),
    /// A read that finished first.
    Done(Response),
}

impl<F: Future<Output = Response>> Handler<F> {
    async fn answer(self) -> Response {
        match self {
            Handler::Waiting(next, request) => next.run(request).await,
            Handler::Started(handler) => handler.await,
            Handler::Done(response) => response,
        }
    }
}

/// An anonymous caller's bucket: its IPv4 address, or its IPv6 /64. One
/// subscriber is given a whole /64 and may send each request from a new
/// address in it, so keying on the full address would give it a fresh
/// bucket each time.
fn client_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("ip:{}/64", std::net::Ipv6Addr::from(prefix))
        }
        std::net::IpAddr::V6(v6) => format!("ip:{}", v6.to_canonical()),
        std::net::IpAddr::V4(v4) => format!("ip:{v4}"),
    }
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
        Some(ClientIp(ip)) => client_key(*ip),
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
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::Router;
    use axum::body::Body;
    use axum::middleware::from_fn_with_state;
    use axum::routing::get;
    use chrono::{DateTime, Utc};
    use tokio::sync::Notify;
    use tower::ServiceExt;

    use super::*;
    use crate::ports::{StoreError, SystemClock};

    /// A limiter that answers only once the handler has started (when
    /// `wait_for_handler`), then allows, refuses or fails.
    struct Gate {
        answer: Result<bool, ()>,
        wait_for_handler: bool,
        handler_started: Arc<Notify>,
        taken: AtomicBool,
    }

    #[async_trait::async_trait]
    impl RateLimiter for Gate {
        async fn take(&self, _key: &str, _bucket: &Bucket, _now: DateTime<Utc>) -> Result<Decision, StoreError> {
            if self.wait_for_handler {
                self.handler_started.notified().await;
            }
            self.taken.store(true, Ordering::SeqCst);
            let allowed = self.answer.map_err(|()| StoreError::Unavailable("the limiter's table".into()))?;
            let retry_after = if allowed { Duration::ZERO } else { Duration::from_secs(2) };
            Ok(Decision { allowed, limit: 10, remaining: 0, reset_after: Duration::from_secs(5), retry_after })
        }
    }

    struct Case {
        gate: Arc<Gate>,
        router: Router,
        handler_ran: Arc<AtomicBool>,
    }

    /// `/r`: GET and POST answer 200 "handled" (noting that they ran and
    /// telling the gate), or never answer when `handler_hangs`.
    fn case(answer: Result<bool, ()>, wait_for_handler: bool, handler_hangs: bool, fail_open: bool) -> Case {
        let handler_started = Arc::new(Notify::new());
        let gate =
            Arc::new(Gate { answer, wait_for_handler, handler_started: handler_started.clone(), taken: false.into() });
        let handler_ran = Arc::new(AtomicBool::new(false));
        let handler = {
            let (ran, started) = (handler_ran.clone(), handler_started);
            move || async move {
                ran.store(true, Ordering::SeqCst);
                started.notify_one();
                if handler_hangs {
                    std::future::pending::<()>().await;
                }
                "handled"
            }
        };
        let layer = Arc::new(RateLimitLayer {
            limiter: gate.clone(),
            policy: RateLimitPolicy { fail_open, ..RateLimitPolicy::default() },
            clock: Arc::new(SystemClock),
        });
        let router = Router::new()
            .route("/r", get(handler.clone()).post(handler))
            .layer(from_fn_with_state(layer, rate_limit_middleware));
        Case { gate, router, handler_ran }
    }

    /// The answer, or a failure if none comes within a few seconds (a read
    /// waiting for a take that waits for it never answers).
    async fn send(router: Router, method: Method) -> Response {
        let request = Request::builder().method(method).uri("/r").body(Body::empty()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), router.oneshot(request))
            .await
            .expect("an answer before the deadline")
            .unwrap_or_else(|never| match never {})
    }

    #[tokio::test]
    async fn a_read_runs_beside_its_bucket_take() {
        let case = case(Ok(true), true, false, true);
        let response = send(case.router, Method::GET).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-limit"], "10");
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"handled");
    }

    #[tokio::test]
    async fn a_refused_read_answers_429_not_the_handlers_answer() {
        let case = case(Ok(false), true, false, true);
        let response = send(case.router, Method::GET).await;
        assert!(case.handler_ran.load(Ordering::SeqCst));
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }

    #[tokio::test]
    async fn a_refusal_does_not_wait_for_the_read_it_cancels() {
        let case = case(Ok(false), false, true, true);
        assert_eq!(send(case.router, Method::GET).await.status(), 429);
    }

    #[tokio::test]
    async fn a_write_starts_only_once_its_token_is_taken() {
        let refused = case(Ok(false), false, false, true);
        assert_eq!(send(refused.router, Method::POST).await.status(), 429);
        assert!(!refused.handler_ran.load(Ordering::SeqCst), "a refused write never reaches its handler");

        let allowed = case(Ok(true), false, false, true);
        assert_eq!(send(allowed.router, Method::POST).await.status(), 200);
        assert!(allowed.gate.taken.load(Ordering::SeqCst) && allowed.handler_ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_read_whose_limiter_fails_fails_open_or_closed_as_set() {
        let open = case(Err(()), true, false, true);
        assert_eq!(send(open.router, Method::GET).await.status(), 200);
        let closed = case(Err(()), true, false, false);
        assert_eq!(send(closed.router, Method::GET).await.status(), 503);
    }

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

    #[test]
    fn an_ipv6_caller_is_one_bucket_per_64_and_an_ipv4_caller_one_per_address() {
        let key = |raw: &str| client_key(raw.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff::9"));
        assert_eq!(key("2001:db8:1:2::1"), "ip:2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"), "a mapped IPv4 caller is that IPv4 caller");
    }
}
