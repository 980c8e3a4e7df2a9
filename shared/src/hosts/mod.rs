//! What every host does the same way around the functions: the finished API
//! router (OpenAPI document, problem+json fallbacks, the edge middleware) and
//! the health report. Host-specific glue (the Lambda event dispatcher) lives
//! in a module of its own behind its feature.

mod edge;
pub mod health;
#[cfg(feature = "lambda")]
pub mod lambda;

pub use edge::api_router;
