//! What every host does the same way around the functions: the finished API
//! router (fallbacks, rate limits, the edge middleware) and the health
//! report. Each host's glue lives in a module of its own behind its feature
//! (`lambda`, `spin`); what they wire is the one composition
//! (`crate::composition`).

mod edge;
pub mod health;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(feature = "spin")]
pub mod spin;

pub use edge::api_router;
