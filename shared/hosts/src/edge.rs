//! What every host wraps around the served router: response compression
//! (contract §8).
//!
//! Catalog pages are JSON, repetitive and public: gzip or brotli takes a
//! 100-product page to a fraction of its size. tower-http's
//! `CompressionLayer` negotiates by `Accept-Encoding`, compresses bodies over
//! [`MIN_COMPRESSED_BYTES`] (below that the framing costs more than it saves)
//! and adds `Vary: Accept-Encoding`, so caches keep the variants apart.
//!
//! It lives here, not in `orderly_core::edge`, because tower-http's
//! compression brings tokio's io traits, which the core must not depend on.
//! The runner, each Lambda binary and each Spin component call
//! [`compressed`] on the same router the core builds: one layering, three
//! hosts. Compression leaves the `ETag` as it is: the tag names the resource
//! state (a version), and `Vary: Accept-Encoding` keeps caches from mixing
//! the encodings.

use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};

/// Bodies up to this size go out as they are.
pub const MIN_COMPRESSED_BYTES: u16 = 1024;

/// `router`, answering gzip or br to clients that accept them.
pub fn compressed(router: Router) -> Router {
    let when = DefaultPredicate::new().and(SizeAbove::new(MIN_COMPRESSED_BYTES));
    router.layer(CompressionLayer::new().gzip(true).br(true).no_deflate().no_zstd().compress_when(when))
}
