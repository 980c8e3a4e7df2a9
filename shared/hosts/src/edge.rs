//! What every host wraps around the served router: response compression
//! (contract §8), and one line per response header.
//!
//! Catalog pages are JSON, repetitive and public: gzip or brotli takes a
//! 100-product page to a fraction of its size. tower-http's
//! `CompressionLayer` negotiates by `Accept-Encoding`, compresses bodies over
//! [`MIN_COMPRESSED_BYTES`] (below that the framing costs more than it saves)
//! and adds `Vary: Accept-Encoding`, so caches keep the variants apart.
//!
//! It lives here, not in `orderly_core::edge`, because tower-http's
//! compression brings tokio's io traits, which the core must not depend on.
//! The runner, each Lambda binary and each Spin component call [`served`]
//! on the same router the core builds: one layering, three hosts. Compression leaves the `ETag` as it is: the tag names the resource
//! state (a version), and `Vary: Accept-Encoding` keeps caches from mixing
//! the encodings.

use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};

/// Bodies up to this size go out as they are.
pub const MIN_COMPRESSED_BYTES: u16 = 1024;

/// `router`, answering gzip or br to clients that accept them, each header
/// on one line.
pub fn served(router: Router) -> Router {
    let when = DefaultPredicate::new().and(SizeAbove::new(MIN_COMPRESSED_BYTES));
    router
        .layer(CompressionLayer::new().gzip(true).br(true).no_deflate().no_zstd().compress_when(when))
        .layer(axum::middleware::map_response(one_line_per_header))
}

/// Several layers add to `Vary` (the representation, compression, CORS),
/// but not every host keeps a repeated header: API Gateway's payload 2.0
/// has one value per name and lambda_http serializes only the first, and
/// the Spin SDK's response conversion kept one as well (seen under
/// `wasmtime serve`), so `Vary: Origin` hid `Vary: Accept`. Repeated fields
/// are folded into one line, as RFC 9110 §5.3 allows for every field but
/// Set-Cookie (which payload 2.0 carries in its own `cookies` member).
pub async fn one_line_per_header(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    let repeated: Vec<axum::http::HeaderName> = headers
        .keys()
        .filter(|name| *name != axum::http::header::SET_COOKIE && headers.get_all(*name).iter().nth(1).is_some())
        .cloned()
        .collect();
    for name in repeated {
        let values: Vec<&[u8]> = headers.get_all(&name).iter().map(|v| v.as_bytes()).collect();
        if let Ok(folded) = axum::http::HeaderValue::from_bytes(&values.join(&b", "[..])) {
            headers.insert(name, folded);
        }
    }
    response
}
