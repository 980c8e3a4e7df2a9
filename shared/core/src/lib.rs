//! # orderly-core
//!
//! The one business core that every Orderly host (local runner, AWS Lambda,
//! Spin) runs. It has no database, SDK, host or async runtime in it, and its
//! dependency graph proves it (`cargo tree -p orderly-core --all-features -e
//! normal`): adapters and hosts are other crates, which depend on this one.
//! It is split by what changes for which reason:
//!
//! - [`domain`]: the rules of a shop — SKUs, money, the order state machine,
//!   all-or-nothing stock reservation — in plain Rust with no I/O at all.
//! - [`events`]: the versioned event types that cross queues, their own wire
//!   types, and the CloudEvents-like envelope they travel in.
//! - [`ports`]: the traits the core talks to (stores, queues, clock, ids,
//!   notification provider). Hosts choose adapters; the core never knows which.
//! - [`messaging`]: host-agnostic plumbing for at-least-once delivery — the
//!   outbox relay and batch processing with partial failure.
//! - [`resilience`]: the circuit breaker and the token bucket, as state machines.
//! - [`http`], [`edge`], [`health`]: the HTTP edge every host shares
//!   (problem+json, JWT, request ids, API versioning, rate limits, the
//!   finished router, `/health`), so a rule like "missing `exp` is a 401" is
//!   written once.
//! - [`settings`]: the one settings model of every host.
//! - [`composition`]: the `Backend` a host provides, the `Function` each
//!   function crate wires from it, and what they share (breaker, limits).

pub mod api;
pub mod composition;
pub mod domain;
pub mod edge;
pub mod events;
pub mod health;
pub mod http;
pub mod messaging;
pub mod ports;
pub mod resilience;
pub mod secrets;
pub mod settings;
pub mod signing;
pub mod trace;
