//! The HTTP edge every host shares.
//!
//! Lambda (`lambda_http`), Spin (a tower `Service` inside the component) and the
//! local runner all serve the same axum routers, so the rules of the edge —
//! problem+json errors, strict bodies, JWT on every request, request ids,
//! versioned representations — are written once, here.

mod auth;
mod caching;
mod context;
mod cors;
mod cursor;
mod json;
mod jwt_crypto;
mod path;
#[cfg(any(test, feature = "identity-provider"))]
pub use jwt_crypto::identity_provider;
mod problem;
mod query;
mod rate_limit;
mod routes;
mod versioning;

pub use auth::{AdminPrincipal, AuthConfig, AuthError, Authenticator, KeyConfig, KeyKind, Principal, mint_hs256};
pub use caching::{CachePolicy, Conditions, EntityTag, TagList, Validators};
pub use context::{BODY_LIMIT_BYTES, RequestContext, door_middleware, edge_middleware, tag_function};
pub use cors::{PREFLIGHT_MAX_AGE, cors_layer, preflight_no_content};
pub use cursor::Cursor;
pub use json::{BodyTimedOut, JsonBody, object_only, parse_json};
pub use path::PathText;
pub use problem::{ApiError, ErrorCause, Problem};
pub use query::{PageParams, QueryParams};
pub use rate_limit::{ClientIp, RateLimitLayer, RateLimitPolicy, RouteLimit, rate_limit_middleware};
pub use routes::{ApiRoutes, Describe};
pub use versioning::{ApiVersion, MEDIA_TYPE_V2, Representation};
