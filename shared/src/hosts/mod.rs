//! What every host does the same way around the functions: the finished API
//! router (fallbacks, rate limits, the edge middleware) and the health
//! report. Host-specific glue lives in a module of its own behind its
//! feature (`spin`: the Spin / wasm32-wasip2 components).

mod edge;
pub mod health;
#[cfg(feature = "spin")]
pub mod spin;

pub use edge::api_router;
