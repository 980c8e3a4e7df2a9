//! What every host does the same way around the functions: the finished API
//! router (fallbacks, rate limits, the edge middleware) and the health
//! report. The AWS-backed hosts share their wiring too (`aws`: settings, SDK
//! clients, a function's parts); each host's glue lives in a module of its
//! own behind its feature (`lambda`, `spin`).

#[cfg(feature = "aws")]
pub mod aws;
mod edge;
pub mod health;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(feature = "spin")]
pub mod spin;

pub use edge::api_router;
