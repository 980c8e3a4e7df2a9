//! # Analytics
//!
//! The read side of CQRS. Every event lands here and updates two read
//! models, each shaped for one query:
//!
//! - per-order views (the latest order snapshot, keyed for "a customer's
//!   orders, newest first") behind `GET /api/v1/orders`;
//! - counters behind `GET /api/v1/analytics/summary`, and the ranking behind
//!   `GET /api/v1/recommendations/popular` ([`popular`], which falls back
//!   to a last good or static list rather than fail).
//!
//! The projection is pure ([`projection`]): a view changes only when a newer
//! order version arrives, and the counters move by
//! `contributions(new) - contributions(old)`. So events may arrive twice or
//! out of order and the totals still equal the orders.

pub mod http;
pub mod wiring;

pub use wiring::wire;
pub mod popular;
pub mod projection;
pub mod projector;

pub use projector::Projector;

/// This function's consumer name.
pub const FUNCTION: &str = "analytics";
