//! Port implementations, one module per technology, each behind a feature so
//! that the core builds without them (and for `wasm32-wasip2`).

pub mod log_provider;
#[cfg(feature = "memory-cache")]
pub mod memory_cache;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "webhook")]
pub mod webhook;
